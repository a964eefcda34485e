import calendar
import io
import logging
import os
import re

import pytest

from postbackd.daemon._logging import RateLimitedLog, is_journal_stream, setup_logging

TIMESTAMP_LINE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z WARNING postbackd\.test: partner acme failed 3 times")


@pytest.fixture(autouse=True)
def restore_root_logger():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    quiet_levels = {name: logging.getLogger(name).level for name in ("httpx", "httpcore")}
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    for name, quiet_level in quiet_levels.items():
        logging.getLogger(name).setLevel(quiet_level)


def journal_environ(file) -> dict[str, str]:
    status = os.fstat(file.fileno())
    return {"JOURNAL_STREAM": f"{status.st_dev}:{status.st_ino}"}


def read_back(file) -> str:
    file.flush()
    file.seek(0)
    return file.read()


def test_plain_format_has_utc_timestamp():
    stream = io.StringIO()
    setup_logging("INFO", stream=stream, environ={})
    logging.getLogger("postbackd.test").warning("partner %s failed %d times", "acme", 3)
    assert TIMESTAMP_LINE.fullmatch(stream.getvalue().rstrip("\n"))


def test_plain_format_timestamp_is_utc():
    handler = setup_logging("INFO", stream=io.StringIO(), environ={})
    record = logging.LogRecord("postbackd.test", logging.INFO, __file__, 1, "started", None, None)
    record.created = calendar.timegm((2026, 12, 4, 19, 52, 19)) + 0.123
    record.msecs = 123.0
    assert handler.format(record) == "2026-12-04T19:52:19.123Z INFO postbackd.test: started"


def test_journal_format_has_priority_prefix(tmp_path):
    with open(tmp_path / "journal", "w+") as file:
        setup_logging("DEBUG", stream=file, environ=journal_environ(file))
        logger = logging.getLogger("postbackd.test")
        logger.debug("d")
        logger.info("i")
        logger.warning("w")
        logger.error("e")
        logger.critical("c")
        assert read_back(file).splitlines() == [
            "<7>DEBUG postbackd.test: d",
            "<6>INFO postbackd.test: i",
            "<4>WARNING postbackd.test: w",
            "<3>ERROR postbackd.test: e",
            "<2>CRITICAL postbackd.test: c",
        ]


def test_journal_format_prefixes_traceback_lines(tmp_path):
    with open(tmp_path / "journal", "w+") as file:
        setup_logging("INFO", stream=file, environ=journal_environ(file))
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logging.getLogger("postbackd.test").exception("delivery failed")
        lines = read_back(file).splitlines()
    assert lines[0] == "<3>ERROR postbackd.test: delivery failed"
    assert lines[-1] == "<3>RuntimeError: boom"
    assert len(lines) > 3
    assert all(line.startswith("<3>") for line in lines)


def test_journal_stream_mismatch_uses_timestamps(tmp_path):
    with open(tmp_path / "journal", "w+") as journal, open(tmp_path / "redirected", "w+") as file:
        environ = journal_environ(journal)
        assert is_journal_stream(journal, environ)
        assert not is_journal_stream(file, environ)
        setup_logging("INFO", stream=file, environ=environ)
        logging.getLogger("postbackd.test").warning("partner %s failed %d times", "acme", 3)
        assert TIMESTAMP_LINE.fullmatch(read_back(file).rstrip("\n"))


def test_journal_stream_without_file_descriptor():
    assert not is_journal_stream(io.StringIO(), {"JOURNAL_STREAM": "1:2"})


def test_level_filters_and_one_handler():
    stream = io.StringIO()
    setup_logging("info", stream=io.StringIO(), environ={})
    setup_logging("warning", stream=stream, environ={})
    assert len(logging.getLogger().handlers) == 1
    logging.getLogger("postbackd.test").info("hidden")
    logging.getLogger("postbackd.test").warning("shown")
    assert "hidden" not in stream.getvalue()
    assert "shown" in stream.getvalue()


def test_http_request_lines_stay_hidden():
    stream = io.StringIO()
    setup_logging("DEBUG", stream=stream, environ={})
    logging.getLogger("httpx").info("HTTP Request: GET https://example.invalid/?key=secret")
    logging.getLogger("httpcore.connection").debug("connect_tcp.started")
    assert stream.getvalue() == ""


def test_invalid_level_rejected():
    with pytest.raises(ValueError, match=r"Invalid log level 'LOUD': expected one of DEBUG, INFO"):
        setup_logging("LOUD", stream=io.StringIO(), environ={})


def test_rate_limit_one_line_per_interval():
    limiter = RateLimitedLog(interval=60)
    assert limiter.should_log("acme", 0.0) == (True, 0)
    assert limiter.should_log("acme", 10.0) == (False, 1)
    assert limiter.should_log("acme", 59.9) == (False, 2)
    assert limiter.should_log("other", 30.0) == (True, 0)
    assert limiter.should_log("acme", 60.0) == (True, 2)
    assert limiter.should_log("acme", 61.0) == (False, 1)
    assert limiter.should_log("acme", 120.0) == (True, 1)
    assert limiter.should_log("acme", 500.0) == (True, 0)


def test_rate_limit_forget_reports_suppressed():
    limiter = RateLimitedLog()
    limiter.should_log("acme", 0.0)
    limiter.should_log("acme", 1.0)
    limiter.should_log("acme", 2.0)
    assert limiter.forget("acme") == 2
    assert limiter.should_log("acme", 3.0) == (True, 0)
    assert limiter.forget("never-seen") == 0


@pytest.mark.parametrize("interval", [0, -1, float("nan")])
def test_rate_limit_invalid_interval(interval):
    with pytest.raises(ValueError, match="expected seconds > 0"):
        RateLimitedLog(interval)
