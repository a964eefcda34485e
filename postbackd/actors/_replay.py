"""Rebuilding actor state from the log.

The daemon, ``replay --verify`` and snapshots all walk the log through one
``Replayer``, so the state they rebuild is the same.

Decisions are taken in the decision loop as each event commits, and their
``Decided`` record is committed later, after other records. To rebuild the
device state in the order the live process changed it, events wait in a queue
until their ``Decided`` record arrives. ``Decided`` records come in the same
order as their events. Events still waiting at the end of the log were never
decided (the process stopped first) and are decided when the daemon starts,
each under the configuration in force at its own position.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import msgspec

from postbackd.actors._config import ConfigState
from postbackd.actors._devices import DecisionEngine
from postbackd.actors._failed import FailedIndex
from postbackd.eventlog import Attempted, Decided, Decision, Event, Record, ResendRequested


class PendingPostback(msgspec.Struct, gc=False):
    """A scheduled postback that is not yet delivered or failed.

    The daemon may hold hundreds of thousands of these, so they are structs
    outside the cyclic garbage collector (``gc=False``), which full
    collections do not scan. They refer only to other such structs and to
    values, so they cannot be part of a reference cycle.
    """

    event_seq: int
    event: Event
    decision: Decision
    due: float
    # Number of the last attempt made, 0 before the first.
    attempt: int = 0
    # Attempt number before the current round (a manual resend starts a new round).
    round_start: int = 0
    manual: bool = False
    # Copied from the decision by __post_init__.
    postback_id: str = ""

    def __post_init__(self) -> None:
        assert self.decision.postback_id is not None
        self.postback_id = self.decision.postback_id

    @classmethod
    def for_resend(cls, record: ResendRequested, event: Event, received: float) -> PendingPostback:
        """Return a postback restored from a resend request, due at ``received`` in a new manual round."""
        pending = cls(record.event_seq, event, record.decision, received)
        pending.attempt = record.after_attempt
        pending.round_start = record.after_attempt
        pending.manual = True
        return pending

    @property
    def network(self) -> str:
        return self.decision.network


class UndecidedEvent:
    __slots__ = ("seq", "received", "event", "config")

    def __init__(self, seq: int, received: float, event: Event, config: ConfigState) -> None:
        self.seq = seq
        self.received = received
        self.event = event
        self.config = config


VerifyCallback = Callable[[UndecidedEvent, tuple[Decision, ...]], None]
FetchEvent = Callable[[int], Event]


class Replayer:
    """Feed log records in sequence order to rebuild config, devices and pending postbacks.

    ``on_decided`` is called for each event when its recorded decisions
    arrive, with the config and device state as they were at that event,
    before the decisions are applied. ``replay --verify`` uses it.
    """

    def __init__(self, *, on_decided: VerifyCallback | None = None, fetch_event: FetchEvent | None = None) -> None:
        self.config = ConfigState()
        self.engine = DecisionEngine()
        self.pending: dict[str, PendingPostback] = {}
        self.failed = FailedIndex()
        self.undecided: deque[UndecidedEvent] = deque()
        self.last_seq = 0
        self.on_decided = on_decided
        self.fetch_event = fetch_event

    def feed(self, seq: int, received: float, record: Record) -> None:
        self.last_seq = seq
        match record:
            case Event():
                self.undecided.append(UndecidedEvent(seq, received, record, self.config))
            case Decided():
                self._decided(record)
            case Attempted():
                self._attempted(record)
                self.failed.apply(record)
            case ResendRequested():
                self._resend(record, received)
                self.failed.apply(record)
            case _:
                if self.undecided:
                    # Events still waiting keep the config of their position.
                    self.config = self.config.copy()
                self.config.apply(seq, record)

    def _decided(self, record: Decided) -> None:
        while self.undecided and self.undecided[0].seq < record.event_seq:
            # An event without decisions before a decided one is impossible in
            # a log written by the daemon; decide it so the state stays whole.
            waiting = self.undecided.popleft()
            self.engine.apply(waiting.event, self.engine.decide(waiting.config, waiting.event, waiting.received))
        if not self.undecided or self.undecided[0].seq != record.event_seq:
            return
        waiting = self.undecided.popleft()
        if self.on_decided is not None:
            self.on_decided(waiting, record.decisions)
        self.engine.apply(waiting.event, record.decisions)
        for decision in record.decisions:
            if decision.outcome == "scheduled" and decision.due is not None:
                pending = PendingPostback(record.event_seq, waiting.event, decision, decision.due)
                self.pending[pending.postback_id] = pending

    def _attempted(self, record: Attempted) -> None:
        pending = self.pending.get(record.postback_id)
        if pending is None:
            return
        if record.outcome == "retry" and record.next_due is not None:
            pending.attempt = record.attempt
            pending.due = record.next_due
        else:
            del self.pending[record.postback_id]

    def _resend(self, record: ResendRequested, received: float) -> None:
        """Start a new, manual round of attempts for a postback."""
        pending = self.pending.get(record.postback_id)
        if pending is None:
            if self.fetch_event is None:
                return
            pending = PendingPostback.for_resend(record, self.fetch_event(record.event_seq), received)
            self.pending[pending.postback_id] = pending
            return
        pending.round_start = pending.attempt
        pending.manual = True
        pending.due = received

    def take_undecided(self) -> list[UndecidedEvent]:
        """Remove and return the events that have no recorded decisions, in log order."""
        events = list(self.undecided)
        self.undecided.clear()
        return events
