"""Decoding of producer input lines into ``Event`` records.

Two formats are accepted: the native one (one JSON object per line, described
in docs/protocol.md) and the reference platform's server-to-server objects
(``--format kochava``), which carry no id, attribution or country.
"""

from __future__ import annotations

import difflib
import hashlib
import math
import re
import urllib.parse
from datetime import datetime
from typing import Annotated, Any, Literal

import iso3166
import msgspec

from postbackd.eventlog import Attribution, Event

InputFormat = Literal["native", "kochava"]

# Event times further ahead of the received time than this are replaced by the
# received time: device clocks run ahead, and a future time would open
# SessionBegin windows early.
MAX_FUTURE_SKEW = 300.0

# Maximum length of string fields such as ids and names, in characters.
MAX_ID_LENGTH = 512


class InputError(ValueError):
    """An input line is invalid; the message names the field and the fix."""


class _NativeAttribution(msgspec.Struct, forbid_unknown_fields=True):
    network: str | None = None
    agency: str | None = None
    campaign_id: str | None = None
    tracker_id: str | None = None
    click_id: str | None = None
    site_id: str | None = None
    creative_id: str | None = None


class _NativeInput(msgspec.Struct, forbid_unknown_fields=True):
    type: Literal["install", "reengagement", "event"]
    id: str
    app: str
    device: str
    # msgspec parses RFC 3339 times with an offset in C. Other strings, such
    # as epoch seconds in quotes, fail here and go to _LenientNativeInput.
    time: Annotated[datetime, msgspec.Meta(tz=True)] | int | float
    name: str | None = None
    country: str | None = None
    data_controlled: bool = False
    device_ids: dict[str, str] = {}
    ip: str | None = None
    user_agent: str | None = None
    attribution: _NativeAttribution | None = None
    data: dict[str, Any] = {}


class _LenientNativeInput(_NativeInput):
    """The native input with any string as its time, parsed by ``parse_time``."""

    time: str | int | float


class _KochavaData(msgspec.Struct):
    event_name: str | None = None
    event_data: dict[str, Any] | None = None
    device_ids: dict[str, str] | None = None
    origination_ip: str | None = None
    device_ua: str | None = None
    usertime: int | float | str | None = None


class _KochavaInput(msgspec.Struct):
    action: Literal["install", "event"]
    kochava_app_id: str
    kochava_device_id: str
    device_ids: dict[str, str] | None = None
    origination_ip: str | None = None
    device_ua: str | None = None
    usertime: int | float | str | None = None
    data: _KochavaData | None = None


_native_decoder = msgspec.json.Decoder(_NativeInput)
_lenient_native_decoder = msgspec.json.Decoder(_LenientNativeInput)
_kochava_decoder = msgspec.json.Decoder(_KochavaInput)


_UNKNOWN_FIELD = re.compile(r"Object contains unknown field `([^`]*)`(?: - at `\$(\.attribution)?`)?")
_ENUM_VALUE = re.compile(r"Invalid enum value '([^']*)' - at `\$\.(type|action)`")
_ENUM_CHOICES = {"type": ("install", "reengagement", "event"), "action": ("install", "event")}


def _explain(exc: msgspec.ValidationError, prefix: str) -> InputError:
    """Turn a msgspec validation error into an InputError that names the fix."""
    message = str(exc)
    unknown = _UNKNOWN_FIELD.match(message)
    if unknown is not None:
        name, nested = unknown.groups()
        struct = _NativeAttribution if nested else _NativeInput
        known = msgspec.structs.fields(struct)
        names = [field.name for field in known]
        close = difflib.get_close_matches(name, names, n=1)
        where = "attribution field" if nested else "field"
        hint = f"Did you mean {close[0]!r}? " if close else ""
        return InputError(f"Unknown {where} {name!r}. {hint}Known {where}s: {', '.join(names)}.")
    enum = _ENUM_VALUE.match(message)
    if enum is not None:
        value, field = enum.groups()
        return InputError(f"Invalid `{field}` {value!r}: use one of {', '.join(_ENUM_CHOICES[field])}.")
    return InputError(f"{prefix}: {message}.")


def _parse_rfc3339(text: str, value: str, field: str) -> float:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise InputError(
            f"Invalid `{field}` {value!r}: expected RFC 3339 such as '2026-12-04T19:52:19Z', or epoch seconds."
        ) from None
    if parsed.tzinfo is None:
        raise InputError(
            f"Invalid `{field}` {value!r}: the time has no UTC offset. Add 'Z' or an offset such as '+02:00'."
        )
    return parsed.timestamp()


def parse_time(value: datetime | str | int | float, field: str = "time") -> float:
    """Parse an RFC 3339 string or epoch seconds into epoch seconds."""
    if isinstance(value, bool):
        raise InputError(f"Invalid `{field}` {value!r}: expected an RFC 3339 string or epoch seconds.")
    if isinstance(value, datetime):
        seconds = value.timestamp()
    elif isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = value.strip()
        # Dates are tried first because most producers send them: a failed
        # float() on every RFC 3339 line cost several percent of ingest.
        if "-" in text[1:] or ":" in text:
            seconds = _parse_rfc3339(text, value, field)
        else:
            try:
                seconds = float(text)
            except ValueError:
                seconds = _parse_rfc3339(text, value, field)
    if not math.isfinite(seconds) or seconds < 0 or seconds > 253402300799:
        raise InputError(f"Invalid `{field}` {value!r}: epoch seconds must be between 0 and year 9999.")
    return seconds


def normalize_country(value: str, field: str = "country") -> str:
    """Return an ISO 3166-1 alpha-2 code in upper case, or raise InputError."""
    code = value.strip().upper()
    if len(code) != 2 or code not in iso3166.countries_by_alpha2:
        raise InputError(
            f"Invalid `{field}` {value!r}: expected an ISO 3166-1 alpha-2 country code such as 'US' or 'DE'."
        )
    return code


def _check_text(value: str, field: str) -> str:
    if not value:
        raise InputError(f"Invalid `{field}`: it is empty. Give a non-empty string.")
    if len(value) > MAX_ID_LENGTH:
        raise InputError(f"Invalid `{field}`: {len(value)} characters, at most {MAX_ID_LENGTH} are allowed.")
    return value


def _clamp_future(event_time: float, received: float) -> tuple[float, float | None]:
    if event_time > received + MAX_FUTURE_SKEW:
        return received, event_time
    return event_time, None


def decode_native(line: bytes, received: float) -> Event:
    """Decode one native input line; raise InputError with the field and the fix."""
    raw: _NativeInput
    try:
        raw = _native_decoder.decode(line)
    except msgspec.ValidationError:
        # The lenient decoder takes any time string. Its error messages for
        # other problems are the ones producers have always seen.
        try:
            raw = _lenient_native_decoder.decode(line)
        except msgspec.ValidationError as exc:
            raise _explain(exc, "Invalid input") from None
    except msgspec.DecodeError as exc:
        raise InputError(f"Invalid JSON: {exc}.") from None

    _check_text(raw.id, "id")
    _check_text(raw.app, "app")
    _check_text(raw.device, "device")
    if raw.type == "event":
        if raw.name is None:
            raise InputError("Missing `name`: an input of type 'event' needs the event name.")
        _check_text(raw.name, "name")
        if raw.name == "install":
            raise InputError(
                "Invalid `name` 'install': that name is reserved for the install postback. "
                "Send installs with type 'install', or rename the event."
            )
    elif raw.name is not None:
        raise InputError(f"Unexpected `name` {raw.name!r}: only inputs of type 'event' have a name.")
    if raw.attribution is not None and raw.type == "event":
        raise InputError("Unexpected `attribution`: only installs and reengagements carry an attribution.")
    if raw.type == "reengagement" and (raw.attribution is None or not raw.attribution.network):
        raise InputError(
            "Missing `attribution.network`: a reengagement is a conversion on a network's traffic, "
            "so it needs the network that won it."
        )

    event_time, reported = _clamp_future(parse_time(raw.time), received)
    country = normalize_country(raw.country) if raw.country is not None else None
    attribution = None
    if raw.attribution is not None and raw.attribution.network:
        attribution = Attribution(**msgspec.structs.asdict(raw.attribution))

    return Event(
        app=raw.app,
        id=raw.id,
        type=raw.type,
        device=raw.device,
        time=event_time,
        name=raw.name,
        country=country,
        data_controlled=raw.data_controlled,
        device_ids=raw.device_ids,
        ip=raw.ip,
        user_agent=raw.user_agent,
        attribution=attribution,
        data=raw.data,
        reported_time=reported,
    )


def decode_kochava(line: bytes, received: float) -> Event:
    """Decode one server-to-server object of the reference platform.

    Device fields may sit at the top level or inside ``data``; the top level
    wins. The object has no id, so the id is a digest of the line's content:
    sending the same file twice gives the same ids, and the second copy is
    acknowledged as duplicate.
    """
    try:
        raw = _kochava_decoder.decode(line)
    except msgspec.ValidationError as exc:
        raise _explain(exc, "Invalid server-to-server object") from None
    except msgspec.DecodeError as exc:
        raise InputError(f"Invalid JSON: {exc}.") from None

    data = raw.data or _KochavaData()
    _check_text(raw.kochava_app_id, "kochava_app_id")
    _check_text(raw.kochava_device_id, "kochava_device_id")
    usertime = raw.usertime if raw.usertime is not None else data.usertime
    if usertime is None:
        raise InputError("Missing `usertime`: give the event time in epoch seconds, at the top level or in `data`.")
    name = None
    if raw.action == "event":
        if not data.event_name:
            raise InputError("Missing `data.event_name`: an object with action 'event' needs the event name.")
        name = _check_text(data.event_name, "data.event_name")
        if name == "install":
            raise InputError(
                "Invalid `data.event_name` 'install': that name is reserved for the install postback. "
                "Send installs with action 'install', or rename the event."
            )

    user_agent = raw.device_ua if raw.device_ua is not None else data.device_ua
    if user_agent is not None:
        user_agent = urllib.parse.unquote(user_agent)

    event_time, reported = _clamp_future(parse_time(usertime, "usertime"), received)
    canonical = msgspec.json.encode(msgspec.json.decode(line), order="sorted")
    digest = hashlib.blake2b(canonical, digest_size=12).hexdigest()

    return Event(
        app=raw.kochava_app_id,
        id="k_" + digest,
        type=raw.action,
        device=raw.kochava_device_id,
        time=event_time,
        name=name,
        device_ids=raw.device_ids or data.device_ids or {},
        ip=raw.origination_ip or data.origination_ip,
        user_agent=user_agent,
        data=data.event_data or {},
        source="kochava",
        reported_time=reported,
    )


def decode_input(line: bytes, received: float, input_format: InputFormat) -> Event:
    if input_format == "kochava":
        return decode_kochava(line, received)
    return decode_native(line, received)
