"""Snapshots of the actor state, so that a start replays only the tail of the log.

A snapshot taken at log position ``seq`` contains exactly the state of a
``Replayer`` after the records up to ``seq``. That is the configuration, the
device states and the scheduled postbacks not yet finished. It also contains
the events whose ``Decided`` record comes after ``seq``, each with the
configuration of its own position.
So restoring a snapshot and feeding the records after ``seq`` gives the same
state as feeding the whole log.

The daemon decides an event before its ``Decided`` record is committed, so its
live device states run ahead of the log. ``capture_live`` takes those
in-flight decisions with a copy of each device's state from before them: the
snapshot stores the copies as overrides and the events as undecided, which is
what a replay up to ``seq`` has.

Stored form: ``body`` is zlib-compressed MessagePack of ``[fingerprint,
state]``, where ``fingerprint`` is a digest of the JSON schema of
``ActorState``. A snapshot whose fingerprint differs was written by a build
with other state types and is treated as an unknown version, like one whose
``version`` column is not ``SNAPSHOT_VERSION``.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import sqlite3
import sys
import zlib
from collections import deque
from collections.abc import Callable, Iterable

import msgspec

from postbackd.actors._config import ConfigState
from postbackd.actors._device_state import (
    DeviceState,
    DeviceTable,
    InstallFacts,
    Reengagement,
    WindowSet,
    with_window,
)
from postbackd.actors._devices import DecisionEngine
from postbackd.actors._failed import FailedIndex
from postbackd.actors._replay import PendingPostback, Replayer, UndecidedEvent, VerifyCallback
from postbackd.eventlog import AppConfig, Attempted, Decision, Event, PartnerConfig, PostbackConfig
from postbackd.eventlog._snapshots import SnapshotRow, iter_snapshots, snapshot_checksum

logger = logging.getLogger("postbackd.snapshot")

# Format of the snapshot body; raise it when the meaning of a field changes.
SNAPSHOT_VERSION = 2

# Devices per separately encoded chunk. A restore decodes and shares one
# chunk before the next, so the temporary objects of decoding are freed and
# reused chunk by chunk. Decoding all devices in one piece left the heap
# fragmented, at about twice the resident memory of a full replay.
DEVICES_PER_CHUNK = 50_000

# zlib level for snapshot bodies: level 1 shrinks the repeated field names of
# a million device states about tenfold at a fraction of the time of level 6.
COMPRESSION_LEVEL = 1


class SnapshotError(Exception):
    """A stored snapshot cannot be used; the message gives the reason."""


# ---------------------------------------------------------------- stored form


class ConfigImage(msgspec.Struct, array_like=True):
    seq: int
    apps: list[AppConfig]
    partners: list[PartnerConfig]
    postbacks: list[PostbackConfig]


class UndecidedImage(msgspec.Struct, array_like=True):
    """An event without a recorded decision; ``config`` indexes ``ActorState.configs``."""

    seq: int
    received: float
    event: Event
    config: int


class PendingImage(msgspec.Struct, array_like=True):
    """A scheduled postback not yet finished; its event is ``ActorState.events[event_seq]``."""

    event_seq: int
    decision: Decision
    due: float
    attempt: int
    round_start: int
    manual: bool


class DeviceOverride(msgspec.Struct, array_like=True):
    """The state a device had before the in-flight decisions; None when it had none."""

    app: str
    device: str
    state: DeviceState | None


class FailedImage(msgspec.Struct, array_like=True):
    """An entry of the failed-postback index."""

    postback_id: str
    app: str
    network: str
    event_seq: int
    attempt: int
    failed_at: float
    failure_class: str | None


class PartnerCounters(msgspec.Struct, array_like=True):
    app: str
    network: str
    scheduled: int = 0
    suppressed: int = 0
    delivered: int = 0
    failed: int = 0
    retried: int = 0


class AttemptBucket(msgspec.Struct, array_like=True):
    """Attempts of one partner that finished in one minute, for the last-hour figures of status.

    ``latencies`` maps a latency histogram bin to its count of attempts.
    """

    app: str
    network: str
    minute: int
    delivered: int
    failed: int
    retried: int
    latencies: dict[int, int]


class Counters(msgspec.Struct):
    """The daemon's status counters as of the snapshot's position."""

    events: dict[str, int] = {}
    partners: list[PartnerCounters] = []
    recent: list[AttemptBucket] = []


class DeviceChunk(msgspec.Struct, array_like=True):
    """Device states of one app, encoded on their own as a dict of device id to state."""

    app: str
    devices: msgspec.Raw


class ActorState(msgspec.Struct):
    """The state of a replay up to log position ``seq``, in stored form."""

    seq: int
    configs: list[ConfigImage]
    # Index in ``configs`` of the configuration at ``seq``.
    config: int
    devices: list[DeviceChunk]
    # Applied after ``devices`` on restore, in order.
    overrides: list[DeviceOverride]
    undecided: list[UndecidedImage]
    # The events of the pending postbacks, by log position.
    events: dict[int, Event]
    pending: list[PendingImage]
    failed: list[FailedImage]
    counters: Counters = msgspec.field(default_factory=Counters)


_chunk_decoder = msgspec.msgpack.Decoder(dict[str, DeviceState])
_FINGERPRINT = hashlib.blake2b(msgspec.json.encode(msgspec.json.schema(ActorState)), digest_size=8).hexdigest()
_encoder = msgspec.msgpack.Encoder()
_header_decoder = msgspec.msgpack.Decoder(tuple[str, msgspec.Raw])
_state_decoder = msgspec.msgpack.Decoder(ActorState)


# ---------------------------------------------------------------- capture


class InFlightDecision(msgspec.Struct, gc=False):
    """An event the daemon has decided and applied whose ``Decided`` record is not yet committed.

    ``prior`` is a copy of the device's state from before the decision, None
    when the device had no state. ``config`` is the configuration the event
    was decided under; it must not change afterwards. Under load tens of
    thousands wait for their commit, so they stay outside the cyclic garbage
    collector (``gc=False``); nothing they refer to refers back to them.
    """

    seq: int
    received: float
    event: Event
    config: ConfigState
    prior: DeviceState | None

    @classmethod
    def capture(
        cls, engine: DecisionEngine, seq: int, received: float, event: Event, config: ConfigState
    ) -> InFlightDecision:
        """Record an event about to be decided, with its device's state before the decision."""
        device = engine.device(event.app, event.device)
        # The fields of a DeviceState are immutable values that the engine
        # replaces, never changes, so a shallow copy keeps the old state.
        return cls(seq, received, event, config, None if device is None else device.__copy__())


class _Configs:
    """Collects distinct configuration objects, each stored once."""

    def __init__(self) -> None:
        self.images: list[ConfigImage] = []
        self._index: dict[int, int] = {}

    def index(self, config: ConfigState) -> int:
        found = self._index.get(id(config))
        if found is None:
            found = self._index[id(config)] = len(self.images)
            self.images.append(ConfigImage(
                config.seq, list(config.apps.values()), list(config.partners.values()), list(config.postbacks.values())
            ))
        return found


def _pending_images(pending: Iterable[PendingPostback]) -> tuple[list[PendingImage], dict[int, Event]]:
    images = []
    events: dict[int, Event] = {}
    for item in sorted(pending, key=lambda p: p.postback_id):
        images.append(PendingImage(item.event_seq, item.decision, item.due, item.attempt, item.round_start, item.manual))
        events[item.event_seq] = item.event
    return images, events


def _failed_images(failed: FailedIndex) -> list[FailedImage]:
    return [
        FailedImage(f.postback_id, f.app, f.network, f.event_seq, f.attempt, f.failed_at, f.failure_class)
        for f in failed.by_id.values()
    ]


def _device_chunks(apps: dict[str, dict[str, DeviceState]]) -> list[DeviceChunk]:
    chunks = []
    for app, devices in apps.items():
        items = iter(devices.items())
        while chunk := dict(itertools.islice(items, DEVICES_PER_CHUNK)):
            chunks.append(DeviceChunk(app, msgspec.Raw(_encoder.encode(chunk))))
    return chunks


def capture_replayer(replayer: Replayer, counters: Counters | None = None) -> ActorState:
    """Return the state of ``replayer``; it must not change until the state is encoded."""
    configs = _Configs()
    config = configs.index(replayer.config)
    undecided = [UndecidedImage(u.seq, u.received, u.event, configs.index(u.config)) for u in replayer.undecided]
    pending, events = _pending_images(replayer.pending.values())
    return ActorState(
        seq=replayer.last_seq,
        configs=configs.images,
        config=config,
        devices=_device_chunks(replayer.engine.devices.apps),
        overrides=[],
        undecided=undecided,
        events=events,
        pending=pending,
        failed=_failed_images(replayer.failed),
        counters=counters or Counters(),
    )


def capture_live(
    seq: int,
    config: ConfigState,
    engine: DecisionEngine,
    in_flight: Iterable[InFlightDecision],
    pending: Iterable[PendingPostback],
    failed: FailedIndex,
    counters: Counters,
) -> ActorState:
    """Return the daemon's state as of log position ``seq``.

    Every record up to ``seq`` must be applied and none after it, except
    that ``in_flight`` lists, in log order, the decided events whose
    ``Decided`` record is not yet committed.
    """
    configs = _Configs()
    config_index = configs.index(config)
    overrides: list[DeviceOverride] = []
    undecided: list[UndecidedImage] = []
    seen: set[tuple[str, str]] = set()
    for entry in in_flight:
        undecided.append(UndecidedImage(entry.seq, entry.received, entry.event, configs.index(entry.config)))
        key = (entry.event.app, entry.event.device)
        if key not in seen:
            # The earliest in-flight decision of a device has its state from before all of them.
            seen.add(key)
            overrides.append(DeviceOverride(key[0], key[1], entry.prior))
    pending_images, events = _pending_images(pending)
    return ActorState(
        seq=seq,
        configs=configs.images,
        config=config_index,
        devices=_device_chunks(engine.devices.apps),
        overrides=overrides,
        undecided=undecided,
        events=events,
        pending=pending_images,
        failed=_failed_images(failed),
        counters=counters,
    )


def encode_state(state: ActorState) -> bytes:
    """Encode a captured state; run it before the captured objects change again."""
    return _encoder.encode((_FINGERPRINT, state))


def compress_state(encoded: bytes) -> bytes:
    """Return the stored body of an encoded state; zlib releases the GIL, so run it in a thread."""
    return zlib.compress(encoded, COMPRESSION_LEVEL)


# ---------------------------------------------------------------- restore


def decode_snapshot(row: SnapshotRow) -> ActorState:
    """Check and decode a stored snapshot; raise SnapshotError saying why it cannot be used."""
    if row.version != SNAPSHOT_VERSION:
        raise SnapshotError(f"unknown version {row.version} (this postbackd writes version {SNAPSHOT_VERSION})")
    if snapshot_checksum(row.body) != row.checksum:
        raise SnapshotError("checksum mismatch: the stored body is damaged")
    try:
        fingerprint, raw = _header_decoder.decode(zlib.decompress(row.body))
    except (zlib.error, msgspec.DecodeError) as exc:
        raise SnapshotError(f"unreadable body: {exc}") from None
    if fingerprint != _FINGERPRINT:
        raise SnapshotError(f"unknown version {row.version}/{fingerprint}: written by a build with other state types")
    try:
        state = _state_decoder.decode(raw)
    except msgspec.DecodeError as exc:
        raise SnapshotError(f"unreadable state: {exc}") from None
    if state.seq != row.seq:
        raise SnapshotError(f"the body is for log position {state.seq}, but its row is for position {row.seq}")
    return state


def _config_from(image: ConfigImage) -> ConfigState:
    config = ConfigState()
    config.apps = {app.app_id: app for app in image.apps}
    config.partners = {(p.app_id, p.network): p for p in image.partners}
    config.postbacks = {(p.app_id, p.network, p.event): p for p in image.postbacks}
    config.seq = image.seq
    return config


def _intern(value: str | None) -> str | None:
    return None if value is None else sys.intern(value)


def _shared_windows(windows: WindowSet | None) -> WindowSet | None:
    """Rebuild a decoded window set through ``with_window``, which shares small sets between devices."""
    result = None
    entry = windows
    while entry is not None:
        network = sys.intern(entry.network)
        mask, window = entry.mask, 0
        while mask:
            if mask & 1:
                result = with_window(result, network, window)
            mask >>= 1
            window += 1
        entry = entry.next
    return result


def _share(state: DeviceState, facts: dict[InstallFacts, InstallFacts]) -> None:
    """Make a decoded device state share strings and immutable parts as the engine's own states do."""
    if state.install is not None:
        install = state.install
        shared = facts.get(install)
        if shared is None:
            shared = facts[install] = InstallFacts(
                _intern(install.network), _intern(install.agency), _intern(install.country)
            )
        state.install = shared
    if state.install_windows is not None:
        state.install_windows = _shared_windows(state.install_windows)
    if state.reengagements:
        state.reengagements = tuple(
            Reengagement(r.time, sys.intern(r.network), _intern(r.agency), _shared_windows(r.windows))
            for r in state.reengagements
        )


def _restore_devices(state: ActorState) -> DeviceTable:
    # NOTE: these InstallFacts are shared among restored devices only. The
    # engine's own cache starts empty, so new installs add one more object
    # per distinct attribution and country.
    facts: dict[InstallFacts, InstallFacts] = {}
    devices: dict[str, dict[str, DeviceState]] = {}
    for chunk in state.devices:
        decoded = _chunk_decoder.decode(chunk.devices)
        for device in decoded.values():
            _share(device, facts)
        devices.setdefault(_intern(chunk.app), {}).update(decoded)
    state.devices = []
    for override in state.overrides:
        by_device = devices.setdefault(override.app, {})
        if override.state is None:
            by_device.pop(override.device, None)
            if not by_device:
                del devices[override.app]
        else:
            _share(override.state, facts)
            by_device[override.device] = override.state
    # The decoded dicts become the table: a copy would double the peak memory,
    # and the process keeps that peak as resident memory.
    return DeviceTable.adopt(devices)


def restore(
    state: ActorState,
    *,
    fetch_event: Callable[[int], Event] | None = None,
    on_decided: VerifyCallback | None = None,
) -> Replayer:
    """Return a ``Replayer`` in the state of a replay up to ``state.seq``; ``state`` is consumed."""
    replayer = Replayer(fetch_event=fetch_event, on_decided=on_decided)
    configs = [_config_from(image) for image in state.configs]
    replayer.config = configs[state.config]
    replayer.engine.devices = _restore_devices(state)
    replayer.undecided = deque(UndecidedEvent(u.seq, u.received, u.event, configs[u.config]) for u in state.undecided)
    for image in state.pending:
        event = state.events.get(image.event_seq)
        if event is None:
            if fetch_event is None:
                raise SnapshotError(f"the event at log position {image.event_seq} of a pending postback is missing")
            event = fetch_event(image.event_seq)
        pending = PendingPostback(image.event_seq, event, image.decision, image.due)
        pending.attempt = image.attempt
        pending.round_start = image.round_start
        pending.manual = image.manual
        replayer.pending[pending.postback_id] = pending
    for image in state.failed:
        replayer.failed.apply(Attempted(
            postback_id=image.postback_id,
            app=image.app,
            event_seq=image.event_seq,
            network=image.network,
            attempt=image.attempt,
            started=image.failed_at,
            duration=0.0,
            outcome="failed",
            failure_class=image.failure_class,
        ))
    replayer.last_seq = state.seq
    return replayer


def load_latest(
    conn: sqlite3.Connection, *, at_or_before: int | None = None, log_end: int | None = None
) -> tuple[ActorState, SnapshotRow] | None:
    """Return the newest usable snapshot and its row, or None when there is none.

    Snapshots that cannot be used (unknown version, damaged, or beyond
    ``log_end``, the last position of the log) are skipped with a warning.
    """
    for row in iter_snapshots(conn, at_or_before):
        try:
            if log_end is not None and row.seq > log_end:
                raise SnapshotError(f"it is for log position {row.seq}, but the log ends at {log_end}")
            state = decode_snapshot(row)
        except SnapshotError as exc:
            logger.warning("skipping snapshot %d at log position %d: %s", row.id, row.seq, exc)
            continue
        return state, row
    return None
