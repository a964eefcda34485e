"""Snapshots of the actor state: a restored snapshot plus the log's tail equals a full replay."""

from __future__ import annotations

import zlib

import msgspec
import pytest

from postbackd.actors import ConfigState, DecisionEngine
from postbackd.actors._replay import Replayer
from postbackd.actors._snapshot import (
    SNAPSHOT_VERSION,
    Counters,
    InFlightDecision,
    SnapshotError,
    capture_live,
    capture_replayer,
    compress_state,
    decode_snapshot,
    encode_state,
    restore,
)
from postbackd.eventlog import Attempted, Decided, Event, ResendRequested
from postbackd.eventlog._snapshots import SnapshotRow, snapshot_checksum

from .helpers import replay_view
from .logsim import simulate

SEEDS = range(6)


def log_records(seed: int) -> list[tuple[int, float, object]]:
    sim = simulate(seed)
    return [(seq, append.received, append.record) for seq, append in enumerate(sim.appends, start=1)]


def fetcher(records):
    return lambda seq: records[seq - 1][2]


def replay(records, upto: int | None = None) -> Replayer:
    replayer = Replayer(fetch_event=fetcher(records))
    for seq, received, record in records[:upto]:
        replayer.feed(seq, received, record)
    return replayer


view = replay_view


def stored(state, seq: int, version: int = SNAPSHOT_VERSION) -> SnapshotRow:
    body = compress_state(encode_state(state))
    return SnapshotRow(1, seq, 0.0, version, snapshot_checksum(body), body)


def cuts(records) -> list[int]:
    n = len(records)
    return sorted({0, 1, 7, n // 3, n // 2, (2 * n) // 3, n - 1, n})


@pytest.mark.parametrize("seed", SEEDS)
def test_replayer_snapshot_plus_tail_equals_full_replay(seed):
    records = log_records(seed)
    expected = view(replay(records))

    for cut in cuts(records):
        row = stored(capture_replayer(replay(records, cut)), cut)
        restored = restore(decode_snapshot(row), fetch_event=fetcher(records))
        for item in records[cut:]:
            restored.feed(*item)

        assert view(restored) == expected, f"snapshot at {cut}"


def live_state(records, cut: int):
    """Capture the way the daemon does: decisions applied as events arrive, ahead of their Decided records."""
    engine = DecisionEngine()
    config = ConfigState()
    in_flight: dict[int, InFlightDecision] = {}
    # Pending postbacks and failed postbacks follow the log order live as in replay.
    log_side = Replayer(fetch_event=fetcher(records))
    for seq, received, record in records[:cut]:
        log_side.feed(seq, received, record)
        match record:
            case Event():
                in_flight[seq] = InFlightDecision.capture(engine, seq, received, record, config)
                engine.apply(record, engine.decide(config, record, received))
            case Decided():
                in_flight.pop(record.event_seq)
            case Attempted() | ResendRequested():
                pass
            case _:
                if in_flight:
                    config = config.copy()
                config.apply(seq, record)
    return capture_live(cut, config, engine, in_flight.values(), log_side.pending.values(), log_side.failed,
                        Counters()), len(in_flight)


@pytest.mark.parametrize("seed", SEEDS)
def test_live_snapshot_plus_tail_equals_full_replay(seed):
    records = log_records(seed)
    expected = view(replay(records))
    in_flight_seen = 0

    for cut in cuts(records):
        state, in_flight = live_state(records, cut)
        in_flight_seen += in_flight
        restored = restore(decode_snapshot(stored(state, cut)), fetch_event=fetcher(records))
        for item in records[cut:]:
            restored.feed(*item)

        assert view(restored) == expected, f"snapshot at {cut}"
    assert in_flight_seen > 0, "no cut had in-flight decisions, so the overrides were not tested"


def test_live_snapshot_equals_replay_at_same_position():
    records = log_records(3)
    for cut in cuts(records):
        state, _ = live_state(records, cut)
        restored = restore(decode_snapshot(stored(state, cut)), fetch_event=fetcher(records))

        assert view(restored) == view(replay(records, cut)), f"snapshot at {cut}"


def test_restored_devices_share_install_facts():
    records = log_records(1)
    restored = restore(decode_snapshot(stored(capture_replayer(replay(records)), len(records))))
    facts = [state.install for state in restored.engine.devices.values() if state.install is not None]

    assert len(facts) > len({id(f) for f in facts})
    assert len({id(f) for f in facts}) == len(set(facts))


def test_counters_round_trip():
    records = log_records(0)
    counters = Counters(events={"sim-app": 5})
    state = decode_snapshot(stored(capture_replayer(replay(records), counters), len(records)))

    assert state.counters == counters


def test_unknown_version_is_rejected():
    records = log_records(0)
    row = stored(capture_replayer(replay(records)), len(records), version=SNAPSHOT_VERSION + 1)

    with pytest.raises(SnapshotError, match=f"unknown version {SNAPSHOT_VERSION + 1}"):
        decode_snapshot(row)


def test_bad_checksum_is_rejected():
    records = log_records(0)
    row = stored(capture_replayer(replay(records)), len(records))
    damaged = row._replace(body=row.body[:-1] + bytes([row.body[-1] ^ 1]))

    with pytest.raises(SnapshotError, match="checksum mismatch"):
        decode_snapshot(damaged)


def test_other_state_types_are_an_unknown_version():
    body = zlib.compress(msgspec.msgpack.encode(("0000000000000000", {"seq": 1})))
    row = SnapshotRow(1, 1, 0.0, SNAPSHOT_VERSION, snapshot_checksum(body), body)

    with pytest.raises(SnapshotError, match="written by a build with other state types"):
        decode_snapshot(row)


def test_position_mismatch_is_rejected():
    records = log_records(0)
    row = stored(capture_replayer(replay(records, 20)), 21)

    with pytest.raises(SnapshotError, match="body is for log position 20, but its row is for position 21"):
        decode_snapshot(row)


@pytest.mark.parametrize("seed", SEEDS[:2])
def test_devices_in_small_chunks_restore_whole(seed, monkeypatch):
    monkeypatch.setattr("postbackd.actors._snapshot.DEVICES_PER_CHUNK", 2)
    records = log_records(seed)
    full = replay(records)

    state = capture_replayer(full)
    restored = restore(decode_snapshot(stored(state, len(records))), fetch_event=fetcher(records))

    assert len(state.devices) > len(full.engine.devices.apps)
    assert view(restored) == view(full)
