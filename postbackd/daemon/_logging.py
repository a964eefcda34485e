"""Log output for the daemon: one stderr handler, journald-aware, and a per-key rate limiter."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Hashable, Mapping
from typing import IO

# syslog priorities that journald reads from a "<N>" line prefix (sd-daemon(3)).
_SYSLOG_PRIORITIES = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}

LEVEL_NAMES = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

# httpx logs every request URL at INFO, and httpcore traces connections at DEBUG. Postback URLs
# carry network-specific fields, some of them secrets, so both stay at WARNING whatever the level.
_QUIET_LOGGERS = ("httpx", "httpcore")


class _TimestampFormatter(logging.Formatter):
    """Format records as `2026-12-04T19:52:19.123Z LEVEL logger: message` in UTC."""

    converter = time.gmtime

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", self.converter(record.created))
        return f"{stamp}.{int(record.msecs):03d}Z"


class _JournalFormatter(logging.Formatter):
    """Format records for journald: a `<N>` priority on every line and no timestamp.

    journald stores each line of a stream as its own entry, so the lines of a traceback get the
    record's priority too instead of the stream's default.
    """

    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        priority = _SYSLOG_PRIORITIES.get(record.levelno)
        if priority is None:
            priority = _priority_for_custom_level(record.levelno)
        prefix = f"<{priority}>"
        return "\n".join(prefix + line for line in super().format(record).splitlines())


def _priority_for_custom_level(levelno: int) -> int:
    for level in sorted(_SYSLOG_PRIORITIES, reverse=True):
        if levelno >= level:
            return _SYSLOG_PRIORITIES[level]
    return _SYSLOG_PRIORITIES[logging.DEBUG]


def is_journal_stream(stream: IO[str], environ: Mapping[str, str] = os.environ) -> bool:
    """Return whether `stream` is the journald stream that systemd named in $JOURNAL_STREAM.

    systemd sets JOURNAL_STREAM to "device:inode" of the stream it connected to stdout and stderr.
    Comparing it with the stream's own device and inode detects a redirected stderr, for
    example `postbackd run 2>file` started from a shell inside a service.
    """
    expected = environ.get("JOURNAL_STREAM")
    if not expected:
        return False
    try:
        status = os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return False
    return expected == f"{status.st_dev}:{status.st_ino}"


def setup_logging(
    level: str,
    *,
    stream: IO[str] | None = None,
    environ: Mapping[str, str] = os.environ,
) -> logging.Handler:
    """Replace the root logger's handlers with one handler writing to `stream` (default stderr).

    Returns the installed handler. Raises ValueError for an unknown level name.
    """
    level_name = level.strip().upper()
    if level_name not in LEVEL_NAMES:
        raise ValueError(f"Invalid log level {level!r}: expected one of {', '.join(LEVEL_NAMES)}.")
    if stream is None:
        stream = sys.stderr

    handler = logging.StreamHandler(stream)
    if is_journal_stream(stream, environ):
        handler.setFormatter(_JournalFormatter())
    else:
        handler.setFormatter(_TimestampFormatter())

    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level_name)
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    return handler


class RateLimitedLog:
    """Decide when a repeated message for one key (such as a partner) is logged.

    At most one line per key per `interval` seconds is logged. The ones in between are counted so
    the next logged line can report how many were left out. `now` is any monotonic clock in seconds,
    for example `trio.current_time()`.
    """

    def __init__(self, interval: float = 60.0) -> None:
        if not interval > 0:
            raise ValueError(f"Invalid rate limit interval {interval!r}: expected seconds > 0.")
        self.interval = interval
        self._last_logged: dict[Hashable, float] = {}
        self._suppressed: dict[Hashable, int] = {}

    def should_log(self, key: Hashable, now: float) -> tuple[bool, int]:
        """Return whether to log now, and how many lines for `key` were suppressed since its last
        logged line (counting this one when it is suppressed too)."""
        last = self._last_logged.get(key)
        if last is not None and now - last < self.interval:
            suppressed = self._suppressed.get(key, 0) + 1
            self._suppressed[key] = suppressed
            return False, suppressed
        self._last_logged[key] = now
        return True, self._suppressed.pop(key, 0)

    def forget(self, key: Hashable) -> int:
        """Reset `key`, for example when its partner recovers, and return the number of lines
        suppressed since its last logged line so the caller can report them."""
        self._last_logged.pop(key, None)
        return self._suppressed.pop(key, 0)
