"""Daemon settings: durations, the settings file and command-line overrides.

The effective settings come from, highest precedence first: command-line options, the settings
file (TOML), the environment variables POSTBACKD_DATA_DIR and POSTBACKD_SOCKET_DIR, and the
defaults on `Settings`.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import tomli_w

DEFAULT_CONFIG_PATH = Path("/etc/postbackd/postbackd.toml")

# Retry attempts per postback in the per-partner settings go up to 10, so more delays than that
# could never be used.
MAX_RETRY_DELAYS = 10

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

DURATION_FORMS = (
    "'realtime' or numbers with the units h, m and s in that order, e.g. '30s', '2m', '1h30m', '1.5s'"
)

_NUMBER = r"(\d+(?:\.\d+)?)"
_DURATION_RE = re.compile(rf"(?:{_NUMBER}h)?(?:{_NUMBER}m)?(?:{_NUMBER}s)?")


class SettingsError(ValueError):
    """An invalid settings file, setting or command-line option. The message names the fix."""


def parse_duration(text: str) -> float:
    """Parse a duration such as "30s", "2m", "1h30m", "1.5s" or "realtime" into seconds."""
    normalized = text.strip().lower()
    if normalized == "realtime":
        return 0.0

    match = _DURATION_RE.fullmatch(normalized)
    if not normalized or match is None or not any(match.groups()):
        hint = ""
        if re.fullmatch(_NUMBER, normalized):
            # A zero would make a hint that settings needing a positive duration reject.
            example = normalized if float(normalized) > 0 else "10"
            hint = f" Add a unit, e.g. '{example}s'."
        raise ValueError(f"Invalid duration {text!r}: expected {DURATION_FORMS}.{hint}")

    hours, minutes, seconds = (Decimal(group) if group else Decimal(0) for group in match.groups())
    # Summing in Decimal and converting once keeps parse_duration(format_duration(x)) == x.
    return float(hours * 3600 + minutes * 60 + seconds)


def format_duration(seconds: float) -> str:
    """Format seconds as the shortest duration text that parse_duration reads back exactly."""
    # repr gives the shortest decimal text that converts back to the same float.
    total = Decimal(repr(float(seconds)))
    if not total.is_finite() or total < 0:
        raise ValueError(f"Cannot format duration {seconds!r}: expected a finite number of seconds >= 0.")
    if total == 0:
        return "0s"

    hours, rest = divmod(total, 3600)
    minutes, rest = divmod(rest, 60)
    parts = []
    if hours:
        parts.append(f"{hours:f}h")
    if minutes:
        parts.append(f"{minutes:f}m")
    if rest:
        parts.append(f"{rest.normalize():f}s")
    return "".join(parts)


class Settings(msgspec.Struct, frozen=True):
    """Effective daemon settings after the settings file and command-line options are applied."""

    data_dir: Path
    socket_dir: Path
    # Seconds to wait before each retry attempt. Entry i is the delay before retry i + 1.
    retry_delays: tuple[float, ...] = (30, 120, 600, 1800, 3600, 7200, 14400, 28800, 43200, 86400)
    # Seconds one HTTP request of a postback may take before the attempt counts as failed.
    attempt_timeout: float = 10.0
    # Maximum concurrent requests per partner when the integration sets no limit of its own.
    concurrency: int = 8
    # Whether postbacks may go to loopback, private and link-local addresses.
    allow_private_endpoints: bool = False
    # A snapshot of the actor state is written after this many new log records...
    snapshot_every_records: int = 100_000
    # ...or after this many seconds, whichever comes first.
    snapshot_every_seconds: float = 300.0
    # Group given access to the control socket. None leaves it to the daemon's user only.
    control_group: str | None = None
    # Group given access to the ingest socket. None leaves it to the daemon's user only.
    ingest_group: str | None = None
    log_level: str = "INFO"
    # Seconds a graceful stop waits for in-flight work before cancelling it.
    shutdown_grace: float = 10.0


def default_data_dir() -> Path:
    """Return $POSTBACKD_DATA_DIR, else $XDG_STATE_HOME/postbackd, else ~/.local/state/postbackd."""
    explicit = os.environ.get("POSTBACKD_DATA_DIR")
    if explicit:
        return Path(explicit).expanduser()
    state_home = os.environ.get("XDG_STATE_HOME")
    if state_home:
        return Path(state_home).expanduser() / "postbackd"
    return Path.home() / ".local" / "state" / "postbackd"


def _describe(value: Any) -> str:
    return repr(value) if isinstance(value, str) else f"{value!r} ({type(value).__name__})"


def _convert_duration(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as '30s', got {_describe(value)}")
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"expected a number of seconds >= 0 or a duration such as '30s', got {value!r}")
        return float(value)
    if isinstance(value, str):
        return parse_duration(value)
    raise ValueError(f"expected a duration such as '30s', got {_describe(value)}")


def _convert_retry_delays(value: Any) -> tuple[float, ...]:
    if isinstance(value, str):
        items: list[Any] = value.split(",")
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise ValueError(f"expected durations such as '30s,2m,10m' or a list of them, got {_describe(value)}")

    delays = []
    for item in items:
        if isinstance(item, str) and not item.strip():
            raise ValueError(
                f"empty entry in {value!r}. Separate durations with single commas, e.g. '30s,2m'"
            )
        delays.append(_convert_duration(item))
    if not delays:
        raise ValueError("expected at least one retry delay, e.g. '30s,2m,10m'")
    if len(delays) > MAX_RETRY_DELAYS:
        raise ValueError(
            f"got {len(delays)} retry delays but at most {MAX_RETRY_DELAYS} are used. Remove the extra ones"
        )
    for delay in delays:
        if delay <= 0:
            raise ValueError(f"retry delay {format_duration(delay)} is not positive. Use at least '1s'")
    return tuple(delays)


def _convert_positive_duration(value: Any) -> float:
    seconds = _convert_duration(value)
    if seconds <= 0:
        raise ValueError(f"{_describe(value)} is not positive. Use a duration of at least '1s'")
    return seconds


def _convert_positive_int(value: Any) -> int:
    if isinstance(value, str) and re.fullmatch(r"\s*\d+\s*", value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected a whole number, got {_describe(value)}")
    if value < 1:
        raise ValueError(f"{value} is less than 1. Use 1 or more")
    return value


def _convert_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise ValueError(f"expected true or false, got {_describe(value)}")


def _convert_group(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected a group name such as 'postbackd-ingest', got {_describe(value)}")
    return value.strip()


def _convert_log_level(value: Any) -> str:
    if isinstance(value, str) and value.strip().upper() in LOG_LEVELS:
        return value.strip().upper()
    raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}, got {_describe(value)}")


def _path_converter(base_dir: Path | None) -> Callable[[Any], Path]:
    def convert(value: Any) -> Path:
        if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
            raise ValueError(f"expected a directory path, got {_describe(value)}")
        path = Path(value).expanduser()
        if base_dir is not None and not path.is_absolute():
            path = base_dir / path
        return path.absolute()

    return convert


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "retry_delays": _convert_retry_delays,
    "attempt_timeout": _convert_positive_duration,
    "concurrency": _convert_positive_int,
    "allow_private_endpoints": _convert_bool,
    "snapshot_every_records": _convert_positive_int,
    "snapshot_every_seconds": _convert_positive_duration,
    "control_group": _convert_group,
    "ingest_group": _convert_group,
    "log_level": _convert_log_level,
    "shutdown_grace": _convert_duration,
}
_PATH_KEYS = ("data_dir", "socket_dir")
_DURATION_KEYS = ("attempt_timeout", "snapshot_every_seconds", "shutdown_grace")
KNOWN_KEYS = (*_PATH_KEYS, *_CONVERTERS)


def _read_file(path: Path, *, explicit: bool) -> dict[str, Any]:
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except FileNotFoundError:
        if explicit:
            raise SettingsError(
                f"Settings file {str(path)!r} not found. Create it or pass an existing file to --config."
            ) from None
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: invalid TOML: {exc}. Fix the syntax at that line.") from None
    except OSError as exc:
        raise SettingsError(f"Cannot read settings file {str(path)!r}: {exc.strerror}.") from None


def _apply(
    values: Mapping[str, Any],
    source: Callable[[str], str],
    base_dir: Path | None,
    into: dict[str, Any],
) -> None:
    seen: dict[str, str] = {}
    for raw_key, value in values.items():
        key = raw_key.replace("-", "_")
        if key not in KNOWN_KEYS:
            close = difflib.get_close_matches(key, KNOWN_KEYS, n=1)
            hint = f"Did you mean {close[0]!r}? " if close else ""
            raise SettingsError(
                f"{source(raw_key)}: unknown setting. {hint}Known settings: {', '.join(KNOWN_KEYS)}."
            )
        if key in seen:
            raise SettingsError(
                f"{source(raw_key)}: set twice, also as {seen[key]!r}. Keep one of them."
            )
        seen[key] = raw_key
        if value is None:
            continue

        convert = _path_converter(base_dir) if key in _PATH_KEYS else _CONVERTERS[key]
        try:
            into[key] = convert(value)
        except ValueError as exc:
            raise SettingsError(f"{source(raw_key)}: invalid value {_describe(value)}: {exc}") from None


def load_settings(
    overrides: Mapping[str, Any],
    config_path: Path | None,
    *,
    config_path_explicit: bool,
) -> Settings:
    """Build the effective settings from the settings file and command-line overrides.

    `config_path` None means DEFAULT_CONFIG_PATH. A missing file is an error only when
    `config_path_explicit` is true. Override keys use the settings' names with underscores or
    dashes; None values are options not given. Raises SettingsError naming the source, the key,
    the value and the fix.
    """
    path = config_path if config_path is not None else DEFAULT_CONFIG_PATH
    file_values = _read_file(path, explicit=config_path_explicit)

    chosen: dict[str, Any] = {}
    # Relative paths in the file are relative to the file's directory, so the file means the same
    # from any working directory. Relative paths on the command line follow the working directory.
    _apply(file_values, lambda key: f"{path}: {key}", path.absolute().parent, chosen)
    _apply(overrides, lambda key: f"command-line option --{key.replace('_', '-')}", None, chosen)

    if "data_dir" not in chosen:
        chosen["data_dir"] = default_data_dir().absolute()
    if "socket_dir" not in chosen:
        socket_dir = os.environ.get("POSTBACKD_SOCKET_DIR")
        chosen["socket_dir"] = Path(socket_dir).expanduser().absolute() if socket_dir else chosen["data_dir"]
    return Settings(**chosen)


def settings_to_toml(settings: Settings) -> str:
    """Render the settings as a TOML settings file with durations as text, leaving out None values."""
    document: dict[str, Any] = {}
    for key in msgspec.structs.fields(Settings):
        value = getattr(settings, key.name)
        if value is None:
            continue
        if key.name in _PATH_KEYS:
            value = str(value)
        elif key.name == "retry_delays":
            value = [format_duration(delay) for delay in value]
        elif key.name in _DURATION_KEYS:
            value = format_duration(value)
        document[key.name] = value
    return tomli_w.dumps(document)
