"""``replay --verify``: re-derive every recorded decision from the log's own inputs.

The log is replayed with the same ``Replayer`` the daemon starts with. When an
event's ``Decided`` record arrives, the decisions are derived again from the
event, the configuration in force at the event's position and the device
state just before it, and compared with the recorded ones. The recorded
decisions are then applied, so one mismatch does not spread to later events.

Verifying from a position ``from_seq`` still needs the state before it: the
replay starts from the newest usable snapshot at or before ``from_seq``, or
from the start of the log, and checks only events at ``from_seq`` or later.

A field added to ``Decision`` after logs were written is absent from their
records, so a recorded None in such a field means "not recorded" and is not
compared (see ``LATER_FIELDS``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import NamedTuple

import msgspec

from postbackd.actors._replay import Replayer, UndecidedEvent
from postbackd.actors._snapshot import load_latest, restore
from postbackd.eventlog import Decided, Decision, Event, decode_record, read_from

# Decision fields appended after logs were already being written. Records
# written before a field existed decode with None, so a recorded None is not
# compared with the derived value. A None recorded by a version that had the
# field is not checked either, which is the price of reading older logs.
LATER_FIELDS = ("country",)


class Mismatch(NamedTuple):
    """A recorded decision that differs from the one derived again, or a record that cannot be checked."""

    seq: int
    app: str
    event_id: str
    recorded: tuple[Decision, ...] | None
    derived: tuple[Decision, ...] | None
    problem: str


class VerifyResult(NamedTuple):
    # Events whose recorded decisions were compared.
    checked: int
    mismatches: int
    # Log position the replay started after: a snapshot's position, or 0.
    start: int
    # Last log position read.
    end: int
    # Events at the end of the log without recorded decisions; the daemon decides them when it starts.
    undecided: int


def _fetch_event(conn: sqlite3.Connection) -> Callable[[int], Event]:
    def fetch(seq: int) -> Event:
        row = conn.execute("SELECT body FROM log WHERE seq = ?", (seq,)).fetchone()
        record = decode_record(row[0]) if row is not None else None
        if not isinstance(record, Event):
            raise LookupError(f"no event at log position {seq}")
        return record

    return fetch


def verify_log(
    conn: sqlite3.Connection,
    *,
    from_seq: int = 1,
    on_mismatch: Callable[[Mismatch], None],
    progress: Callable[[int], None] | None = None,
) -> VerifyResult:
    """Compare every recorded decision of the events from ``from_seq`` on with a fresh one.

    Calls ``on_mismatch`` for each difference as it is found and
    ``progress`` with the position of each record read.
    """
    checked = 0
    mismatches = 0

    def report(mismatch: Mismatch) -> None:
        nonlocal mismatches
        if mismatch.seq >= from_seq:
            mismatches += 1
            on_mismatch(mismatch)

    def check(waiting: UndecidedEvent, recorded: tuple[Decision, ...]) -> None:
        nonlocal checked
        if waiting.seq < from_seq:
            return
        checked += 1
        event = waiting.event
        try:
            derived = replayer.engine.decide(waiting.config, event, waiting.received)
        except ValueError as exc:
            report(Mismatch(waiting.seq, event.app, event.id, recorded, None, f"cannot be decided again: {exc}"))
            return
        derived = comparable(derived, recorded)
        if derived != recorded:
            report(Mismatch(waiting.seq, event.app, event.id, recorded, derived, "decisions differ"))

    fetch_event = _fetch_event(conn)
    start = 0
    restored = load_latest(conn, at_or_before=from_seq) if from_seq > 1 else None
    if restored is None:
        replayer = Replayer(on_decided=check, fetch_event=fetch_event)
    else:
        state, row = restored
        replayer = restore(state, fetch_event=fetch_event, on_decided=check)
        start = row.seq

    for seq, received, record in read_from(conn, after=start):
        if isinstance(record, Decided):
            _check_order(replayer, record, report)
        try:
            replayer.feed(seq, received, record)
        except ValueError as exc:
            report(Mismatch(record.event_seq, record.app, record.event_id, record.decisions, None,
                            f"the recorded decisions cannot be applied: {exc}"))
        if progress is not None:
            progress(seq)
    return VerifyResult(checked, mismatches, start, replayer.last_seq, len(replayer.undecided))


def comparable(derived: tuple[Decision, ...], recorded: tuple[Decision, ...]) -> tuple[Decision, ...]:
    """Return ``derived`` without the later fields that its recorded counterpart lacks.

    Decisions are paired by network. A derived decision without a recorded
    one for its network is returned unchanged.
    """
    by_network = {decision.network: decision for decision in recorded}
    result = []
    for decision in derived:
        old = by_network.get(decision.network)
        if old is not None:
            missing = {name: None for name in LATER_FIELDS if getattr(old, name) is None}
            if missing:
                decision = msgspec.structs.replace(decision, **missing)
        result.append(decision)
    return tuple(result)


def _check_order(replayer: Replayer, record: Decided, report: Callable[[Mismatch], None]) -> None:
    """Report events that a ``Decided`` record skips over, and a record for no waiting event.

    The daemon records decisions in event order, so the record belongs to the
    oldest event still waiting.
    """
    found = False
    for waiting in replayer.undecided:
        if waiting.seq > record.event_seq:
            break
        if waiting.seq == record.event_seq:
            found = True
            break
        event = waiting.event
        report(Mismatch(waiting.seq, event.app, event.id, None, None,
                        f"has no recorded decisions, but the later event at log position {record.event_seq} has"))
    if not found:
        report(Mismatch(record.event_seq, record.app, record.event_id, record.decisions, None,
                        "has a Decided record, but no event waits for decisions at that log position"))
