"""Record types stored in the event log.

Every record is a msgspec ``Struct`` with a tag in the ``kind`` field, so one
decoder reads the whole union. Records are encoded once, as MessagePack, when
they are appended.

Schema evolution: a log written by this version must replay in every later
version. New fields are appended at the end of a struct and always have a
default. The type of an existing field never changes, and a tag is never reused.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

Platform = Literal["android", "ios"]
DeliveryMethod = Literal["all", "network", "network+agency"]
EventType = Literal["install", "reengagement", "event"]
FilterMode = Literal["allow_all", "block", "allow_only"]
Outcome = Literal["scheduled", "suppressed"]
AttemptOutcome = Literal["delivered", "retry", "failed"]


class Record(msgspec.Struct, tag_field="kind", frozen=True, omit_defaults=True, gc=False):
    """Base of every log record; the tag names the record type."""


# ---------------------------------------------------------------- configuration


class Origin(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    """The origin of a configuration change: the control socket peer's credentials."""

    uid: int | None = None
    pid: int | None = None
    command: str | None = None


class AppConfig(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    app_id: str
    platform: Platform
    bundle_id: str
    name: str


class CountryFilter(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    """Allow all (optionally with a block list) or allow only an allow list.

    Country codes are ISO 3166-1 alpha-2, upper case, sorted.
    """

    mode: FilterMode = "allow_all"
    countries: tuple[str, ...] = ()


class PartnerConfig(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    app_id: str
    network: str
    integration: str
    fields: dict[str, str] = {}
    active: bool = True
    respect_data_controlled: bool = True
    countries: CountryFilter = CountryFilter()
    apply_countries_to_all_events: bool = False


class PostbackConfig(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    """One postback of a partner: ``event`` is ``install`` or an event name."""

    app_id: str
    network: str
    event: str
    delay: float = 0.0
    retries: int = 3
    method: DeliveryMethod = "network"
    countries: CountryFilter = CountryFilter()
    partner_event_name: str | None = None


class AppConfigured(Record, tag="app", frozen=True):
    """An app was added or changed; ``app`` is its full new state."""

    app: AppConfig
    origin: Origin = Origin()


class PartnerConfigured(Record, tag="partner", frozen=True):
    """A partner was added or changed; ``partner`` is its full new state."""

    partner: PartnerConfig
    origin: Origin = Origin()


class PartnerRemoved(Record, tag="partner_removed", frozen=True):
    """A partner and all of its postbacks were removed."""

    app_id: str
    network: str
    origin: Origin = Origin()


class PostbackConfigured(Record, tag="postback", frozen=True):
    """A postback was added or changed; ``postback`` is its full new state."""

    postback: PostbackConfig
    origin: Origin = Origin()


class PostbackRemoved(Record, tag="postback_removed", frozen=True):
    app_id: str
    network: str
    event: str
    origin: Origin = Origin()


# ---------------------------------------------------------------- input


class Attribution(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    network: str | None = None
    agency: str | None = None
    campaign_id: str | None = None
    tracker_id: str | None = None
    click_id: str | None = None
    site_id: str | None = None
    creative_id: str | None = None


class Event(Record, tag="event", frozen=True):
    """An install, reengagement or post-install event as accepted from a producer.

    ``time`` is the event's own time in epoch seconds. When the producer's time
    was more than the allowed skew ahead of the daemon's received time, ``time``
    is the received time and ``reported_time`` keeps the producer's value.
    """

    app: str
    id: str
    type: EventType
    device: str
    time: float
    name: str | None = None
    country: str | None = None
    data_controlled: bool = False
    device_ids: dict[str, str] = {}
    ip: str | None = None
    user_agent: str | None = None
    attribution: Attribution | None = None
    data: dict[str, Any] = {}
    source: Literal["native", "kochava"] = "native"
    reported_time: float | None = None


# ---------------------------------------------------------------- decisions


class Decision(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    """The decision for one partner's postback about one event.

    ``postback_id`` is stable for a given app, event id and network, so a
    partner can drop repeated deliveries of the same postback.
    """

    network: str
    postback: str
    outcome: Outcome
    reason: str
    postback_id: str | None = None
    attribution_type: str = "unattributed"
    attribution_network: str | None = None
    attribution_agency: str | None = None
    due: float | None = None
    session_window: int | None = None
    # The country the rules resolved for the event: its own, else its
    # device's install's; None when neither is known, and in logs written
    # before this field existed.
    country: str | None = None


class Decided(Record, tag="decided", frozen=True):
    """All decisions taken for the event at log position ``event_seq``."""

    event_seq: int
    app: str
    event_id: str
    decisions: tuple[Decision, ...] = ()


# ---------------------------------------------------------------- delivery


class Attempted(Record, tag="attempt", frozen=True):
    """One delivery attempt of a scheduled postback and its outcome.

    ``url`` is the rendered URL with secret network-specific fields masked.
    ``next_due`` is set when ``outcome`` is ``retry``.
    """

    postback_id: str
    app: str
    event_seq: int
    network: str
    attempt: int
    started: float
    duration: float
    outcome: AttemptOutcome
    failure_class: str | None = None
    status_code: int | None = None
    error: str | None = None
    method: str = "GET"
    url: str = ""
    response_head: str = ""
    manual: bool = False
    next_due: float | None = None


class ResendRequested(Record, tag="resend", frozen=True):
    """An operator asked for a new, manual round of attempts of a postback.

    ``decision`` and ``event_seq`` repeat what the postback's ``Decided``
    record holds, and ``after_attempt`` is the number of its last attempt, so
    a rebuild can restore the postback even when it had already finished.
    """

    postback_id: str
    app: str
    event_seq: int
    decision: Decision
    after_attempt: int
    origin: Origin = Origin()


AnyRecord = (
    AppConfigured
    | PartnerConfigured
    | PartnerRemoved
    | PostbackConfigured
    | PostbackRemoved
    | Event
    | Decided
    | Attempted
    | ResendRequested
)

CONFIG_RECORDS = (AppConfigured, PartnerConfigured, PartnerRemoved, PostbackConfigured, PostbackRemoved)

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(AnyRecord)


def encode_record(record: Record) -> bytes:
    """Encode a record for storage."""
    return _encoder.encode(record)


def decode_record(body: bytes) -> Record:
    """Decode a stored record body."""
    return _decoder.decode(body)
