"""``replay --what-if``: decide every logged event again under another configuration.

A fresh decision engine takes the events in log order under the other
configuration, which stays in force for the whole log, and applies its own
decisions, so SessionBegin windows and repeated installs follow the
what-if decisions. Each event's what-if decisions are compared with the
recorded ones when its ``Decided`` record arrives. Nothing is sent and
nothing is written.

Per partner the report counts what was scheduled and delivered against what
would have been scheduled. A decision differs when its outcome or its reason
code differs, or when one side has no postback for the partner at all.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from postbackd.actors._config import ConfigState
from postbackd.actors._devices import DecisionEngine
from postbackd.eventlog import CONFIG_RECORDS, Attempted, Decided, Decision, Event, decode_record, read_from


class PartnerComparison:
    """Counts of one partner (app and network): recorded against what-if."""

    __slots__ = ("scheduled", "suppressed", "delivered", "what_if_scheduled", "what_if_suppressed", "gained", "lost")

    def __init__(self) -> None:
        self.scheduled = 0
        self.suppressed = 0
        self.delivered = 0
        self.what_if_scheduled = 0
        self.what_if_suppressed = 0
        # Scheduled only under the what-if configuration.
        self.gained = 0
        # Scheduled only as recorded.
        self.lost = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


class Difference:
    """One partner's decision about one event, recorded and what-if; None where there was no postback."""

    __slots__ = ("seq", "app", "event_id", "partner", "recorded", "what_if")

    def __init__(
        self, seq: int, app: str, event_id: str, partner: str, recorded: Decision | None, what_if: Decision | None
    ) -> None:
        self.seq = seq
        self.app = app
        self.event_id = event_id
        self.partner = partner
        self.recorded = recorded
        self.what_if = what_if


class WhatIfReport:
    def __init__(self) -> None:
        self.partners: dict[tuple[str, str], PartnerComparison] = {}
        # The first differences, up to the limit given to ``what_if``.
        self.differences: list[Difference] = []
        # Events with at least one differing decision.
        self.differing_events = 0
        self.events = 0
        # Events without recorded decisions: compared as if nothing had been scheduled.
        self.undecided = 0
        self.end = 0

    def partner(self, app: str, network: str) -> PartnerComparison:
        found = self.partners.get((app, network))
        if found is None:
            found = self.partners[(app, network)] = PartnerComparison()
        return found


def logged_config(conn: sqlite3.Connection) -> ConfigState:
    """Return the configuration at the end of the log, from its configuration records only."""
    kinds = tuple(record.__struct_config__.tag for record in CONFIG_RECORDS)
    config = ConfigState()
    rows = conn.execute(
        f"SELECT seq, body FROM log WHERE kind IN ({', '.join('?' * len(kinds))}) ORDER BY seq", kinds
    )
    for seq, body in rows:
        config.apply(seq, decode_record(body))
    return config


def _decision_key(decision: Decision | None) -> tuple[str, str] | None:
    return None if decision is None else (decision.outcome, decision.reason)


def _compare(
    report: WhatIfReport,
    seq: int,
    event: Event,
    recorded: tuple[Decision, ...],
    what_if: tuple[Decision, ...],
    limit: int | None,
) -> None:
    report.events += 1
    by_network = {d.network: d for d in recorded}
    what_if_by_network = {d.network: d for d in what_if}
    differs = False
    for network in sorted(by_network.keys() | what_if_by_network.keys()):
        old, new = by_network.get(network), what_if_by_network.get(network)
        counts = report.partner(event.app, network)
        if old is not None:
            if old.outcome == "scheduled":
                counts.scheduled += 1
            else:
                counts.suppressed += 1
        if new is not None:
            if new.outcome == "scheduled":
                counts.what_if_scheduled += 1
            else:
                counts.what_if_suppressed += 1
        old_scheduled = old is not None and old.outcome == "scheduled"
        new_scheduled = new is not None and new.outcome == "scheduled"
        counts.gained += int(new_scheduled and not old_scheduled)
        counts.lost += int(old_scheduled and not new_scheduled)
        if _decision_key(old) != _decision_key(new):
            differs = True
            if limit is None or len(report.differences) < limit:
                report.differences.append(Difference(seq, event.app, event.id, network, old, new))
    report.differing_events += int(differs)


def what_if(
    conn: sqlite3.Connection,
    config: ConfigState,
    *,
    limit: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> WhatIfReport:
    """Decide every event of the log again under ``config`` and compare with the recorded decisions.

    Keeps the first ``limit`` differences (all with None) and counts the rest.
    """
    report = WhatIfReport()
    engine = DecisionEngine()
    # Events decided under ``config`` whose Decided record has not come yet.
    waiting: dict[int, tuple[Event, tuple[Decision, ...]]] = {}
    for seq, received, record in read_from(conn):
        match record:
            case Event():
                decisions = engine.decide(config, record, received)
                engine.apply(record, decisions)
                waiting[seq] = (record, decisions)
            case Decided(event_seq=event_seq):
                found = waiting.pop(event_seq, None)
                if found is not None:
                    _compare(report, event_seq, found[0], record.decisions, found[1], limit)
            case Attempted(outcome="delivered"):
                report.partner(record.app, record.network).delivered += 1
        if progress is not None:
            progress(seq)
        report.end = seq
    for seq, (event, decisions) in sorted(waiting.items()):
        report.undecided += 1
        _compare(report, seq, event, (), decisions, limit)
    return report
