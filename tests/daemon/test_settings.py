import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postbackd.cli._client import default_socket_dir
from postbackd.daemon._settings import (
    DEFAULT_CONFIG_PATH,
    Settings,
    SettingsError,
    default_data_dir,
    format_duration,
    load_settings,
    parse_duration,
    settings_to_toml,
)

EXAMPLE_FILE = Path(__file__).resolve().parents[2] / "contrib" / "systemd" / "postbackd.toml.example"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    for name in ("POSTBACKD_DATA_DIR", "POSTBACKD_SOCKET_DIR", "XDG_STATE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "postbackd.toml"
    path.write_text(text)
    return path


def load(overrides=None, path=None):
    return load_settings(overrides or {}, path, config_path_explicit=path is not None)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("realtime", 0.0),
        ("0s", 0.0),
        ("30s", 30.0),
        ("2m", 120.0),
        ("1h", 3600.0),
        ("24h", 86400.0),
        ("1h30m", 5400.0),
        ("1h0m5s", 3605.0),
        ("1.5s", 1.5),
        (" 10M ", 600.0),
    ],
)
def test_parse_duration_forms(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "s", "30", "-5s", "5x", "1m1h", "2m2m", "1e3s", "1,5s", "real time"])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError) as info:
        parse_duration(text)
    message = str(info.value)
    assert repr(text) in message
    assert "'1h30m'" in message


def test_parse_duration_bare_number_hint():
    with pytest.raises(ValueError, match=re.escape("Add a unit, e.g. '30s'.")):
        parse_duration("30")


@pytest.mark.parametrize("text", ["0", "0.0"])
def test_parse_duration_bare_zero_hint_is_positive(text):
    with pytest.raises(ValueError) as info:
        parse_duration(text)
    assert "Add a unit, e.g. '10s'." in str(info.value)
    assert "'0s'" not in str(info.value)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (30, "30s"), (120, "2m"), (5400, "1h30m"), (86400, "24h"), (1.5, "1.5s"), (90.25, "1m30.25s")],
)
def test_format_duration_forms(seconds, text):
    assert format_duration(seconds) == text


@pytest.mark.parametrize("seconds", [-1.0, float("inf"), float("nan")])
def test_format_duration_rejects(seconds):
    with pytest.raises(ValueError, match="finite number of seconds"):
        format_duration(seconds)


@given(st.floats(min_value=0, max_value=1e12, allow_nan=False))
def test_duration_round_trip(seconds):
    assert parse_duration(format_duration(seconds)) == seconds


def test_defaults_without_file(tmp_path):
    settings = load_settings({}, tmp_path / "absent.toml", config_path_explicit=False)
    state_dir = tmp_path / "home" / ".local" / "state" / "postbackd"
    assert settings == Settings(data_dir=state_dir, socket_dir=state_dir)


def test_default_config_path_is_etc():
    assert DEFAULT_CONFIG_PATH == Path("/etc/postbackd/postbackd.toml")


def test_default_data_dir_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert default_data_dir() == tmp_path / "state" / "postbackd"
    monkeypatch.setenv("POSTBACKD_DATA_DIR", str(tmp_path / "data"))
    assert default_data_dir() == tmp_path / "data"


def test_socket_dir_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("POSTBACKD_DATA_DIR", str(tmp_path / "data"))
    assert load().socket_dir == tmp_path / "data"
    monkeypatch.setenv("POSTBACKD_SOCKET_DIR", str(tmp_path / "sockets"))
    assert load().socket_dir == tmp_path / "sockets"


def test_file_values_loaded(tmp_path):
    path = write_config(
        tmp_path,
        """
        data_dir = "/srv/postbackd"
        socket-dir = "sockets"
        retry_delays = "30s, 2m,1h"
        attempt-timeout = "2.5s"
        concurrency = 3
        allow_private_endpoints = true
        snapshot_every_records = 500
        snapshot_every_seconds = 60
        control_group = "admins"
        ingest_group = "apps"
        log_level = "debug"
        shutdown_grace = "realtime"
        """,
    )
    assert load(path=path) == Settings(
        data_dir=Path("/srv/postbackd"),
        socket_dir=tmp_path / "sockets",
        retry_delays=(30.0, 120.0, 3600.0),
        attempt_timeout=2.5,
        concurrency=3,
        allow_private_endpoints=True,
        snapshot_every_records=500,
        snapshot_every_seconds=60.0,
        control_group="admins",
        ingest_group="apps",
        log_level="DEBUG",
        shutdown_grace=0.0,
    )


def test_retry_delays_list_form(tmp_path):
    path = write_config(tmp_path, 'retry_delays = ["1m", 90, 1.5]\n')
    assert load(path=path).retry_delays == (60.0, 90.0, 1.5)


def test_overrides_win_over_file(tmp_path):
    path = write_config(tmp_path, 'data_dir = "/srv/a"\nconcurrency = 3\nlog_level = "ERROR"\n')
    settings = load({"data_dir": "/srv/b", "concurrency": None, "log-level": "warning"}, path)
    assert settings.data_dir == Path("/srv/b")
    assert settings.socket_dir == Path("/srv/b")
    assert settings.concurrency == 3
    assert settings.log_level == "WARNING"


def test_overrides_relative_to_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load({"data_dir": "state"}).data_dir == tmp_path / "state"


def test_file_beats_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("POSTBACKD_DATA_DIR", "/srv/from-env")
    path = write_config(tmp_path, 'data_dir = "/srv/from-file"\n')
    assert load(path=path).data_dir == Path("/srv/from-file")


def test_explicit_missing_file_rejected(tmp_path):
    missing = tmp_path / "missing.toml"
    with pytest.raises(SettingsError) as info:
        load_settings({}, missing, config_path_explicit=True)
    message = str(info.value)
    assert str(missing) in message
    assert "--config" in message


def test_invalid_toml_rejected(tmp_path):
    path = write_config(tmp_path, "concurrency = = 3\n")
    with pytest.raises(SettingsError) as info:
        load(path=path)
    message = str(info.value)
    assert str(path) in message
    assert "invalid TOML" in message
    assert "line 1" in message


def test_unreadable_file_rejected(tmp_path):
    with pytest.raises(SettingsError, match="Cannot read settings file"):
        load_settings({}, tmp_path, config_path_explicit=True)


def test_unknown_key_rejected(tmp_path):
    path = write_config(tmp_path, 'retry_delay = "30s"\n')
    with pytest.raises(SettingsError) as info:
        load(path=path)
    message = str(info.value)
    assert f"{path}: retry_delay: unknown setting" in message
    assert "Did you mean 'retry_delays'?" in message


def test_unknown_override_rejected():
    with pytest.raises(SettingsError, match="command-line option --colour: unknown setting"):
        load({"colour": "red"})


def test_key_in_both_spellings_rejected(tmp_path):
    path = write_config(tmp_path, 'log_level = "INFO"\nlog-level = "DEBUG"\n')
    with pytest.raises(SettingsError, match="set twice"):
        load(path=path)


BAD_VALUES = [
    ("retry_delays", '""', "empty entry"),
    ("retry_delays", "[]", "at least one retry delay"),
    ("retry_delays", '"30s,,2m"', "empty entry"),
    ("retry_delays", '"1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s"', "got 11 retry delays but at most 10 are used"),
    ("retry_delays", '"30s,realtime"', "retry delay 0s is not positive"),
    ("retry_delays", '"30s,soon"', "Invalid duration 'soon'"),
    ("retry_delays", "30", "expected durations such as '30s,2m,10m'"),
    ("retry_delays", "[-5]", "expected a number of seconds >= 0"),
    ("retry_delays", "[inf]", "expected a number of seconds >= 0"),
    ("attempt_timeout", '"0s"', "is not positive"),
    ("attempt_timeout", '"ten"', "Invalid duration 'ten'"),
    ("attempt_timeout", "true", "expected a duration"),
    ("snapshot_every_seconds", "0", "is not positive"),
    ("shutdown_grace", "-1", "expected a number of seconds >= 0"),
    ("shutdown_grace", "nan", "expected a number of seconds >= 0"),
    ("shutdown_grace", '"-1s"', "Invalid duration '-1s'"),
    ("concurrency", "0", "less than 1"),
    ("concurrency", "2.5", "expected a whole number"),
    ("concurrency", '"many"', "expected a whole number"),
    ("snapshot_every_records", "true", "expected a whole number"),
    ("allow_private_endpoints", '"yes"', "expected true or false"),
    ("control_group", '""', "expected a group name"),
    ("ingest_group", "5", "expected a group name"),
    ("log_level", '"VERBOSE"', "expected one of DEBUG, INFO, WARNING, ERROR"),
    ("data_dir", "7", "expected a directory path"),
    ("socket_dir", '""', "expected a directory path"),
]


@pytest.mark.parametrize(("key", "toml_value", "expected"), BAD_VALUES)
def test_bad_file_value_rejected(tmp_path, key, toml_value, expected):
    path = write_config(tmp_path, f"{key} = {toml_value}\n")
    with pytest.raises(SettingsError) as info:
        load(path=path)
    message = str(info.value)
    assert message.startswith(f"{path}: {key}: invalid value ")
    assert expected in message


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("retry_delays", "30s,0s", "not positive"),
        ("attempt_timeout", "-3s", "Invalid duration '-3s'"),
        ("concurrency", "0", "less than 1"),
        ("log_level", "TRACE", "expected one of"),
    ],
)
def test_bad_override_rejected(key, value, expected):
    with pytest.raises(SettingsError) as info:
        load({key: value})
    message = str(info.value)
    assert message.startswith(f"command-line option --{key.replace('_', '-')}: invalid value {value!r}")
    assert expected in message


def test_settings_to_toml_round_trip(tmp_path):
    settings = Settings(
        data_dir=tmp_path / "data",
        socket_dir=tmp_path / "run",
        retry_delays=(1.5, 90.0, 5400.0),
        attempt_timeout=0.25,
        ingest_group="apps",
        shutdown_grace=0.0,
    )
    text = settings_to_toml(settings)
    assert 'retry_delays = [\n    "1.5s",\n    "1m30s",\n    "1h30m",\n]' in text
    assert 'attempt_timeout = "0.25s"' in text
    assert 'shutdown_grace = "0s"' in text
    assert "control_group" not in text
    path = write_config(tmp_path, text)
    assert load(path=path) == settings


def test_example_file_as_shipped_is_defaults():
    assert load_settings({}, EXAMPLE_FILE, config_path_explicit=True) == load()


def test_example_file_values_valid(tmp_path):
    uncommented = re.sub(r"(?m)^# ([a-z_]+ = )", r"\1", EXAMPLE_FILE.read_text())
    path = write_config(tmp_path, uncommented)
    assert load(path=path) == Settings(
        data_dir=Path("/var/lib/postbackd"),
        socket_dir=Path("/run/postbackd"),
        ingest_group="postbackd-ingest",
        control_group="postbackd-admin",
    )


def test_cli_default_socket_dir_matches_daemon(monkeypatch, tmp_path):
    monkeypatch.delenv("POSTBACKD_SOCKET_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("POSTBACKD_DATA_DIR", "~/state")
    settings = load_settings({}, tmp_path / "absent.toml", config_path_explicit=False)

    assert default_socket_dir() == tmp_path / "state"
    assert settings.socket_dir == default_socket_dir()
