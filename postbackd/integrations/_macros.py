"""Macro names, their values for one postback, and how values are looked up.

A macro is written ``{name}`` in a template. Besides the plain names in
``KNOWN_MACROS`` there are two families: ``{field.NAME}`` for a
network-specific field of the integration and ``{event_data.KEY}`` for any key
of the event's data.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Mapping
from datetime import datetime, timezone
from typing import Any, Literal, NamedTuple

import msgspec

from postbackd.eventlog import AppConfig, Decision, Event
from postbackd.integrations._errors import RenderError, TemplateError

KNOWN_MACROS: frozenset[str] = frozenset(
    {
        "event_name",
        "event_id",
        "postback_id",
        "device_id",
        "idfa",
        "idfv",
        "adid",
        "android_id",
        "ip",
        "user_agent",
        "country",
        "time",
        "timestamp",
        "app_id",
        "app_name",
        "bundle_id",
        "platform",
        "network",
        "agency",
        "campaign_id",
        "tracker_id",
        "click_id",
        "site_id",
        "creative_id",
        "attribution_type",
        "revenue",
        "currency",
        "partner_event_name",
    }
)

FIELD_PREFIX = "field."
EVENT_DATA_PREFIX = "event_data."

# The event name that install postbacks carry in {event_name}.
INSTALL_EVENT_NAME = "_install"

_DEVICE_ID_MACROS = ("idfa", "idfv", "adid", "android_id")
_ATTRIBUTION_MACROS = ("campaign_id", "tracker_id", "click_id", "site_id", "creative_id")

# Control characters cannot appear in a macro name; everything else except
# braces can, because event data keys are free-form.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# A JSON number, so a value outside a JSON string can be sent as a number.
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?\Z")


class Macro(NamedTuple):
    """One macro of a template: ``written`` as in the template, with braces."""

    written: str
    kind: Literal["plain", "field", "event_data"]
    key: str


def classify_macro(name: str, field_names: Collection[str]) -> Macro:
    """Return the macro for ``name`` (without braces), or raise ``TemplateError``."""
    written = "{" + name + "}"
    if _CONTROL.search(name) or not name.strip():
        raise TemplateError(
            f"The macro {written!r} is empty or contains a control character. "
            "Write a macro name such as {event_name}, or '{{' and '}}' for literal braces.",
            needle=written,
        )
    if name.startswith(FIELD_PREFIX):
        field = name[len(FIELD_PREFIX) :]
        if field not in field_names:
            known = ", ".join(sorted(field_names)) or "none"
            raise TemplateError(
                f"Unknown network-specific field in macro {written}: the integration declares no field "
                f"{field!r}. Declared fields: {known}. Add a [[fields]] entry named {field!r} or fix the name.",
                needle=written,
            )
        return Macro(written, "field", field)
    if name.startswith(EVENT_DATA_PREFIX):
        key = name[len(EVENT_DATA_PREFIX) :]
        if not key:
            raise TemplateError(
                f"The macro {written} names no key. Write {{event_data.KEY}}, for example {{event_data.level}}.",
                needle=written,
            )
        return Macro(written, "event_data", key)
    if name in KNOWN_MACROS:
        return Macro(written, "plain", name)
    raise TemplateError(_unknown_macro_message(name), needle=written)


def _unknown_macro_message(name: str) -> str:
    written = "{" + name + "}"
    message = f"Unknown macro {written}."
    close = difflib.get_close_matches(name.lower(), sorted(KNOWN_MACROS), n=1)
    if close:
        message += f" Did you mean {{{close[0]}}}?"
    if "." in name:
        message += " Network-specific fields are written {field.NAME} and event data {event_data.KEY}."
    known = ", ".join(sorted(KNOWN_MACROS))
    return f"{message} Known macros: {known}, plus {{field.NAME}} and {{event_data.KEY}}."


class MacroValues:
    """The values of every macro for one postback request.

    A macro whose value is unknown has the empty string as its text.
    """

    def __init__(self, macros: Mapping[str, str], fields: Mapping[str, str], event_data: Mapping[str, Any]) -> None:
        self._macros = macros
        self._fields = fields
        self._event_data = event_data

    def text(self, macro: Macro) -> str:
        """Return the value as text: event data that is not a string is JSON-encoded (7 becomes "7")."""
        if macro.kind == "plain":
            return self._macros.get(macro.key) or ""
        if macro.kind == "field":
            return self._fields.get(macro.key) or ""
        value = self._event_data.get(macro.key)
        if value is None:
            return ""
        if isinstance(value, str):
            return value
        return _encode_json(value, macro).decode()

    def json(self, macro: Macro) -> str:
        """Return the value as one JSON value, for a macro outside a JSON string.

        Event data keeps its JSON type. Other values become a JSON number when
        the text is one, ``null`` when empty, and a JSON string otherwise.
        """
        if macro.kind == "event_data":
            return _encode_json(self._event_data.get(macro.key), macro).decode()
        text = self.text(macro)
        if not text:
            return "null"
        if _JSON_NUMBER.match(text):
            return text
        return msgspec.json.encode(text).decode()


def _encode_json(value: Any, macro: Macro) -> bytes:
    try:
        return msgspec.json.encode(value)
    except (TypeError, ValueError) as exc:
        raise RenderError(f"The value of {macro.written} cannot be encoded as JSON: {exc}.") from exc


def build_macros(app: AppConfig, event: Event, decision: Decision, partner_event_name: str | None) -> dict[str, str]:
    """Build the plain macro values of one partner's postback for one event.

    Every name in ``KNOWN_MACROS`` is present, with the empty string where
    the value is unknown. ``{field.*}`` and ``{event_data.*}`` values are
    passed to ``Integration.render`` separately.
    """
    whole_seconds = int(event.time)
    values = {name: "" for name in KNOWN_MACROS}
    values.update(
        event_name=INSTALL_EVENT_NAME if event.type == "install" else (event.name or ""),
        event_id=event.id,
        postback_id=decision.postback_id or "",
        device_id=event.device,
        ip=event.ip or "",
        user_agent=event.user_agent or "",
        # An event without its own country takes its device's install's, as the rules did.
        country=decision.country or event.country or "",
        time=datetime.fromtimestamp(whole_seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        timestamp=str(whole_seconds),
        app_id=app.app_id,
        app_name=app.name,
        bundle_id=app.bundle_id,
        platform=app.platform,
        network=decision.attribution_network or "",
        agency=decision.attribution_agency or "",
        attribution_type=decision.attribution_type,
        revenue=_revenue(event.data),
        currency=_text_or_empty(event.data.get("currency")),
        partner_event_name=partner_event_name or "",
    )
    for name in _DEVICE_ID_MACROS:
        values[name] = event.device_ids.get(name, "")
    if event.attribution is not None:
        for name in _ATTRIBUTION_MACROS:
            values[name] = getattr(event.attribution, name) or ""
    return values


def _revenue(data: Mapping[str, Any]) -> str:
    """Return the revenue as the producer wrote it: 4.99 gives "4.99"."""
    for key in ("revenue", "sum"):
        value = data.get(key)
        if isinstance(value, bool):
            continue
        if isinstance(value, (int, float)):
            return repr(value)
        if isinstance(value, str) and value:
            return value
    return ""


def _text_or_empty(value: Any) -> str:
    return value if isinstance(value, str) else ""
