"""The daemon's core: the decision loop and the delivery actors around the log.

Every committed record reaches the decision loop in sequence order, including
configuration records. So the configuration an event is decided under is
exactly the configuration before its position in the log, live and in
replay alike.
"""

from __future__ import annotations

import gc
import logging
import math
import time
from collections.abc import Callable

import trio

from postbackd.actors import ConfigState, DecisionEngine
from postbackd.actors._delivery import DeliveryActor, PermanentError, PreparedRequest
from postbackd.actors._failed import FailedIndex
from postbackd.actors._replay import PendingPostback, Replayer
from postbackd.actors._snapshot import (
    ActorState,
    Counters,
    InFlightDecision,
    PartnerCounters,
    capture_live,
    load_latest,
    restore,
)
from postbackd.eventlog import (
    Append,
    Attempted,
    Decided,
    Decision,
    Event,
    EventLog,
    LogError,
    PartnerConfigured,
    PartnerRemoved,
    Record,
    ResendRequested,
    connect,
    decode_record,
    last_seq,
    read_from,
)
from postbackd.daemon._attempt_window import AttemptWindow
from postbackd.daemon._logging import RateLimitedLog
from postbackd.integrations import Catalog, IntegrationError, RenderError, build_macros, mask_secrets

logger = logging.getLogger("postbackd.core")

# Cyclic GC thresholds (allocations, then collections of the younger
# generation). The defaults (700, 10, 10) made collection a large part of
# the ingest profile, because every event allocates several tracked objects.
GC_THRESHOLDS = (50_000, 20, 20)


class CoreSettings:
    __slots__ = ("retry_delays", "attempt_timeout", "concurrency", "allow_private_endpoints")

    def __init__(
        self,
        retry_delays: tuple[float, ...],
        attempt_timeout: float = 10.0,
        concurrency: int = 8,
        allow_private_endpoints: bool = False,
    ) -> None:
        self.retry_delays = retry_delays
        self.attempt_timeout = attempt_timeout
        self.concurrency = concurrency
        self.allow_private_endpoints = allow_private_endpoints


def event_dedup_key(app: str, event_id: str) -> str:
    return f"event:{app}:{event_id}"


def decided_dedup_key(event_seq: int) -> str:
    return f"decided:{event_seq}"


def attempt_dedup_key(postback_id: str, attempt: int) -> str:
    return f"attempt:{postback_id}:{attempt}"


def _last_seq(seqs: list[int | None]) -> int | None:
    """Return the last sequence number that is not None, which is the largest of a commit."""
    for seq in reversed(seqs):
        if seq is not None:
            return seq
    return None


class PartnerStats:
    """Counters of one partner since the log began."""

    __slots__ = ("scheduled", "suppressed", "delivered", "failed", "retried")

    def __init__(self) -> None:
        self.scheduled = 0
        self.suppressed = 0
        self.delivered = 0
        self.failed = 0
        self.retried = 0

    def count_decision(self, outcome: str) -> None:
        if outcome == "scheduled":
            self.scheduled += 1
        else:
            self.suppressed += 1

    def count_attempt(self, outcome: str) -> None:
        if outcome == "delivered":
            self.delivered += 1
        elif outcome == "failed":
            self.failed += 1
        else:
            self.retried += 1


class Core:
    """Owns the configuration, the device states and the delivery actors."""

    def __init__(self, log: EventLog, catalog: Catalog, settings: CoreSettings, now: Callable[[], float] = time.time):
        self.log = log
        self.catalog = catalog
        self.settings = settings
        self.now = now
        self.config = ConfigState()
        self.engine = DecisionEngine()
        self.actors: dict[tuple[str, str], DeliveryActor] = {}
        self.failed = FailedIndex()
        self._nursery: trio.Nursery | None = None
        # Each item is the result of one submission's commit, in sequence
        # order: sequence numbers (None for a duplicate) and their appends.
        self._send, self._receive = trio.open_memory_channel[tuple[list[int | None], list[Append]]](math.inf)
        self._backlog = 0
        # Decided records and their scheduled postbacks not yet submitted.
        self._decided: list[Append] = []
        self._scheduled: list[PendingPostback] = []
        # Highest sequence number the decision loop has processed.
        self.processed_seq = 0
        self._processed_changed = trio.Event()
        self.reader = connect(log.path, readonly=True)
        self.started = time.time()
        self.events_received: dict[str, int] = {}
        self.stats: dict[tuple[str, str], PartnerStats] = {}
        self.recent = AttemptWindow()
        # Decided events whose Decided record is not yet committed, by log
        # position. A snapshot stores them as undecided, with the device
        # states from before them. Every append must go through this core,
        # or snapshots miss records.
        self.in_flight: dict[int, InFlightDecision] = {}
        # Highest sequence number whose commit has been reported to the core.
        self.reported_seq = 0
        # Appends whose commit is reported but whose caller has not resumed.
        self._resuming = 0
        # Log position of the newest snapshot saved or restored, 0 for none.
        self.snapshot_seq = 0

    # ------------------------------------------------------------ start-up

    def rebuild(self) -> list:
        """Rebuild state from the newest usable snapshot and the log after it.

        Returns the events that still need decisions.
        """
        # The default thresholds start a collection every 700 allocations,
        # which a replay of millions of records makes thousands of times.
        gc.set_threshold(*GC_THRESHOLDS)
        restored = load_latest(self.reader, log_end=last_seq(self.reader))
        if restored is None:
            replayer = Replayer(fetch_event=self.fetch_event)
        else:
            state, row = restored
            self._restore_counters(state.counters)
            replayer = restore(state, fetch_event=self.fetch_event)
            self.snapshot_seq = row.seq
            logger.info("restored the snapshot of log position %d; replaying the records after it", row.seq)
        count = 0
        for seq, received, record in read_from(self.reader, after=replayer.last_seq):
            replayer.feed(seq, received, record)
            self._count(record)
            count += 1
        self.config = replayer.config
        self.engine = replayer.engine
        self.processed_seq = replayer.last_seq
        self.reported_seq = replayer.last_seq
        self._rebuilt_pending = list(replayer.pending.values())
        self.failed = replayer.failed
        undecided = replayer.take_undecided()
        # The rebuilt state lives as long as the daemon: keep it out of the
        # cyclic collector's scans.
        gc.collect()
        gc.freeze()
        logger.info(
            "rebuilt state from %d records: %d apps, %d partners, %d devices, %d pending postbacks, %d undecided events",
            count, len(self.config.apps), len(self.config.partners), len(self.engine.devices),
            len(self._rebuilt_pending), len(undecided),
        )
        return undecided

    def fetch_event(self, seq: int) -> Event:
        row = self.reader.execute("SELECT body FROM log WHERE seq = ?", (seq,)).fetchone()
        if row is None:
            raise LookupError(f"no record at log position {seq}")
        record = decode_record(row[0])
        if not isinstance(record, Event):
            raise LookupError(f"the record at log position {seq} is not an event")
        return record

    async def run(self, undecided: list, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the decision loop and the delivery actors until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            for partner in self.config.partners.values():
                self._ensure_actor(partner.app_id, partner.network)
            for pending in self._rebuilt_pending:
                self._hand_over(pending)
            self._rebuilt_pending = []
            for waiting in undecided:
                self._decide(waiting.seq, waiting.received, waiting.event, waiting.config)
            self._flush_decisions()
            nursery.start_soon(self._decision_loop)
            task_status.started()

    # ------------------------------------------------------------ the decision loop

    def committed(self, seqs: list[int | None], appends: list[Append]) -> None:
        """Pass freshly committed records to the decision loop, in sequence order."""
        last = _last_seq(seqs)
        if last is not None:
            self._backlog += len(seqs)
            self.reported_seq = max(self.reported_seq, last)
            self._send.send_nowait((seqs, appends))

    async def append(self, appends: list[Append]) -> list[int | None]:
        """Append records, wait for the commit and hand them to the decision loop.

        The records reach the decision loop from the commit callback, as
        submitted ones do, and not when this task resumes: that keeps the
        loop's input in sequence order.
        """
        done = trio.Event()
        result: list[int | None] = []
        waiting = True

        def finished(seqs: list[int | None]) -> None:
            result.extend(seqs)
            if waiting:
                self._resuming += 1
            done.set()

        self.submit(appends, finished)
        try:
            await done.wait()
        finally:
            waiting = False
            if done.is_set():
                self._resuming -= 1
        if appends and not result:
            raise LogError(f"Appending to the event log {self.log.path} failed; the daemon log has the error.")
        return result

    def submit(self, appends: list[Append], callback: Callable[[list[int | None]], None]) -> None:
        """Queue records for the next group commit without waiting."""

        def done(seqs: list[int | None]) -> None:
            self.committed(seqs, appends)
            callback(seqs)

        self.log.submit(appends, done)

    def decision_backlog(self) -> int:
        """Return the appends of commits that wait for the decision loop, duplicates included."""
        return self._backlog

    async def wait_processed(self, seq: int) -> None:
        """Wait until the decision loop has processed the record at ``seq``."""
        while self.processed_seq < seq:
            await self._processed_changed.wait()

    async def _decision_loop(self) -> None:
        async for seqs, appends in self._receive:
            for seq, append in zip(seqs, appends):
                if seq is not None:
                    self._handle(seq, append.received, append.record)
            self._flush_decisions()
            self._backlog -= len(seqs)
            last = _last_seq(seqs)
            assert last is not None  # committed() sends only commits with a new record
            self.processed_seq = last
            self._processed_changed.set()
            self._processed_changed = trio.Event()

    def _handle(self, seq: int, received: float, record: Record) -> None:
        match record:
            case Event():
                self._count(record)
                self._decide(seq, received, record, self.config)
            case Decided():
                pass
            case Attempted():
                self.failed.apply(record)
            case ResendRequested():
                self.failed.apply(record)
                self._resend(record, received)
            case _:
                if self.in_flight:
                    # In-flight decisions keep the configuration of their position.
                    self.config = self.config.copy()
                self.config.apply(seq, record)
                if isinstance(record, PartnerConfigured):
                    self._ensure_actor(record.partner.app_id, record.partner.network)
                elif isinstance(record, PartnerRemoved):
                    actor = self.actors.get((record.app_id, record.network))
                    if actor is not None:
                        logger.info("partner %s/%s removed; its pending postbacks stay queued but fail to render",
                                    record.app_id, record.network)

    def _decide(self, seq: int, received: float, event: Event, config: ConfigState) -> None:
        decisions = self.engine.decide(config, event, received)
        self.in_flight[seq] = InFlightDecision.capture(self.engine, seq, received, event, config)
        self.engine.apply(event, decisions)
        record = Decided(event_seq=seq, app=event.app, event_id=event.id, decisions=decisions)
        self._decided.append(Append(record, dedup_key=decided_dedup_key(seq)))
        for decision in decisions:
            if decision.outcome == "scheduled" and decision.due is not None:
                self._scheduled.append(PendingPostback(seq, event, decision, decision.due))

    def _flush_decisions(self) -> None:
        """Submit the decisions taken so far in one transaction.

        Their postbacks go to the delivery actors only after the commit, so a
        postback is never sent without a durable decision.
        """
        if not self._decided:
            return
        decided = self._decided
        scheduled = self._scheduled

        def done(seqs: list[int | None]) -> None:
            in_flight = self.in_flight
            for append in decided:
                record = append.record
                in_flight.pop(record.event_seq, None)
                self._count_decisions(record.app, record.decisions)
            last = _last_seq(seqs)
            if last is not None:
                self.reported_seq = max(self.reported_seq, last)
            for pending in scheduled:
                self._hand_over(pending)

        self.log.submit(self._decided, done)
        self._decided = []
        self._scheduled = []

    def _resend(self, record: ResendRequested, received: float) -> None:
        actor = self.actors.get((record.app, record.decision.network))
        if actor is not None and actor.resend(record.postback_id, received):
            return
        self._hand_over(PendingPostback.for_resend(record, self.fetch_event(record.event_seq), received))

    # ------------------------------------------------------------ delivery

    def _ensure_actor(self, app: str, network: str) -> DeliveryActor:
        key = (app, network)
        actor = self.actors.get(key)
        if actor is None:
            concurrency = self.settings.concurrency
            partner = self.config.partners.get(key)
            if partner is not None:
                try:
                    concurrency = self.catalog.get(partner.integration).concurrency
                except IntegrationError:
                    pass
            actor = DeliveryActor(
                app,
                network,
                prepare=self._prepare,
                record_attempt=self._record_attempt,
                concurrency=concurrency,
                attempt_timeout=self.settings.attempt_timeout,
                retry_delays=self.settings.retry_delays,
                allow_private_endpoints=self.settings.allow_private_endpoints,
                now=self.now,
                should_log=RateLimitedLog().should_log,
            )
            self.actors[key] = actor
            assert self._nursery is not None
            self._nursery.start_soon(actor.run)
        return actor

    def _hand_over(self, pending: PendingPostback) -> None:
        self._ensure_actor(pending.event.app, pending.network).schedule(pending)

    def _prepare(self, pending: PendingPostback) -> PreparedRequest:
        event = pending.event
        partner = self.config.partners.get((event.app, pending.network))
        app = self.config.apps.get(event.app)
        postback = self.config.postback_for(event.app, pending.network, pending.decision.postback)
        if partner is None or app is None:
            raise PermanentError("render_error", f"The partner {event.app}/{pending.network} no longer exists.")
        try:
            integration = self.catalog.get(partner.integration)
            macros = build_macros(app, event, pending.decision, postback.partner_event_name if postback else None)
            kind = "install" if event.type == "install" else "event"
            rendered = integration.render(kind, macros, partner.fields, event.data)
        except (IntegrationError, RenderError) as exc:
            secrets = [partner.fields.get(name, "") for name in self._secret_names(partner.integration)]
            raise PermanentError("render_error", mask_secrets(str(exc), secrets)) from None
        secrets = tuple(integration.secret_values(partner.fields))
        retries = postback.retries if postback is not None else 0
        return PreparedRequest(
            rendered.method, rendered.url, rendered.headers, rendered.body, mask_secrets(rendered.url, secrets), retries,
            secrets,
        )

    def _secret_names(self, integration_id: str) -> frozenset[str]:
        try:
            return self.catalog.get(integration_id).secret_fields()
        except IntegrationError:
            return frozenset()

    async def _record_attempt(self, record: Attempted) -> None:
        await self.append([Append(record, dedup_key=attempt_dedup_key(record.postback_id, record.attempt))])
        self._count(record)

    def _count(self, record: Record) -> None:
        match record:
            case Event(app=app):
                self.events_received[app] = self.events_received.get(app, 0) + 1
            case Decided(app=app, decisions=decisions):
                self._count_decisions(app, decisions)
            case Attempted(app=app, network=network, outcome=outcome):
                self.partner_stats(app, network).count_attempt(outcome)
                self.recent.add(app, network, record.started + record.duration, outcome, record.duration)

    def _count_decisions(self, app: str, decisions: tuple[Decision, ...]) -> None:
        for decision in decisions:
            self.partner_stats(app, decision.network).count_decision(decision.outcome)

    def partner_stats(self, app: str, network: str) -> PartnerStats:
        """Return the counters of one partner, created on first use."""
        stats = self.stats.get((app, network))
        if stats is None:
            stats = self.stats[(app, network)] = PartnerStats()
        return stats

    # ------------------------------------------------------------ snapshots

    def snapshot_state(self) -> ActorState | None:
        """Capture the state as of ``reported_seq``, or return None when the core is not settled.

        Settled means that the decision loop has handled every reported
        record and every appending task has resumed, so the state reflects
        exactly the records up to ``reported_seq``, plus the in-flight
        decisions that the snapshot undoes. The captured state shares live
        objects: encode it before the next checkpoint.
        """
        if self._backlog or self._resuming or self._decided:
            return None
        pending = [p for actor in self.actors.values() for p in actor.pending.values()]
        pending.extend(getattr(self, "_rebuilt_pending", ()))
        counters = Counters(
            events=dict(self.events_received),
            partners=[
                PartnerCounters(app, network, s.scheduled, s.suppressed, s.delivered, s.failed, s.retried)
                for (app, network), s in sorted(self.stats.items())
            ],
            recent=self.recent.to_buckets(),
        )
        return capture_live(
            self.reported_seq, self.config, self.engine, self.in_flight.values(), pending, self.failed, counters
        )

    def _restore_counters(self, counters: Counters) -> None:
        self.events_received = dict(counters.events)
        for item in counters.partners:
            stats = self.partner_stats(item.app, item.network)
            stats.scheduled, stats.suppressed, stats.retried = item.scheduled, item.suppressed, item.retried
            stats.delivered, stats.failed = item.delivered, item.failed
        self.recent = AttemptWindow.from_buckets(counters.recent)

    async def wait_idle(self) -> None:
        """Wait until no delivery actor has a request in flight."""
        for actor in list(self.actors.values()):
            await actor.idle.wait()

    # ------------------------------------------------------------ status

    def pending_count(self) -> int:
        return sum(len(actor.pending) for actor in self.actors.values())

    def in_flight_count(self) -> int:
        return sum(actor.in_flight for actor in self.actors.values())
