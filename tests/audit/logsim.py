"""A simulated daemon history: the records a live daemon appends, written to a real event log.

``simulate`` decides events the way the decision loop does (under the
configuration at their position, each ``Decided`` record a few records after
its event) and adds configuration changes, delivery attempts with retries and
failures, and manual resends, so replays meet every record type in a
realistic order.
"""

from __future__ import annotations

import random
from pathlib import Path

import trio

from postbackd.actors import ConfigState, DecisionEngine
from postbackd.daemon._core import attempt_dedup_key, decided_dedup_key, event_dedup_key
from postbackd.eventlog import (
    Append,
    AppConfig,
    AppConfigured,
    Attempted,
    Attribution,
    Decided,
    Event,
    EventLog,
    PartnerConfig,
    PartnerConfigured,
    PostbackConfig,
    PostbackConfigured,
    Record,
    ResendRequested,
    log_path,
)

APP = "sim-app"
NETWORKS = ("netA", "netB")
# 2026-01-05 00:00:00 UTC.
T0 = 1_767_571_200.0
DAY = 86400.0


class Simulation:
    """Records in log order, each with its received time and dedup key."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.appends: list[Append] = []
        self.config = ConfigState()
        self.engine = DecisionEngine()
        self.clock = T0
        # Decided records not yet appended, in event order.
        self.waiting: list[Decided] = []
        # Scheduled postbacks: postback id -> [event seq, decision, last attempt, finished].
        self.postbacks: dict[str, list] = {}

    @property
    def seq(self) -> int:
        return len(self.appends)

    def add(self, record: Record, dedup_key: str | None = None) -> int:
        self.clock += self.rng.uniform(1, 600)
        self.appends.append(Append(record, received=self.clock, dedup_key=dedup_key))
        if not isinstance(record, (Event, Decided, Attempted, ResendRequested)):
            self.config.apply(self.seq, record)
        return self.seq

    def configure(self) -> None:
        self.add(AppConfigured(AppConfig(APP, "android", "com.example.sim", "Sim")))
        for network in NETWORKS:
            self.add(PartnerConfigured(PartnerConfig(APP, network, "custom", {"url": "http://127.0.0.1/pb"})))
            for name in ("install", "Purchase", "SessionBegin"):
                method = "all" if network == "netB" else "network"
                self.add(PostbackConfigured(PostbackConfig(APP, network, name, delay=30.0, method=method)))

    def event(self) -> None:
        rng = self.rng
        device = f"d{rng.randrange(12)}"
        kind = rng.choice(["install", "install", "reengagement", "Purchase", "SessionBegin", "SessionBegin"])
        event_time = self.clock - rng.uniform(0, 3 * DAY) + rng.choice([0, 2 * DAY, 5 * DAY])
        attribution = Attribution(network=rng.choice(NETWORKS + ("other",))) if rng.random() < 0.7 else None
        if kind in ("install", "reengagement"):
            event = Event(app=APP, id=f"e{self.seq}", type=kind, device=device, time=event_time,
                          attribution=attribution, country=rng.choice(["US", "DE", None]))
        else:
            event = Event(app=APP, id=f"e{self.seq}", type="event", device=device, time=event_time, name=kind,
                          data_controlled=rng.random() < 0.1)
        seq = self.add(event, event_dedup_key(APP, event.id))
        decisions = self.engine.decide(self.config, event, self.appends[-1].received)
        self.engine.apply(event, decisions)
        self.waiting.append(Decided(event_seq=seq, app=APP, event_id=event.id, decisions=decisions))

    def flush_decided(self, keep: int = 0) -> None:
        while len(self.waiting) > keep:
            record = self.waiting.pop(0)
            self.add(record, decided_dedup_key(record.event_seq))
            for decision in record.decisions:
                if decision.outcome == "scheduled":
                    self.postbacks[decision.postback_id] = [record.event_seq, decision, 0, False]

    def attempt(self) -> None:
        open_postbacks = [pid for pid, entry in self.postbacks.items() if not entry[3]]
        if not open_postbacks:
            return
        pid = self.rng.choice(open_postbacks)
        entry = self.postbacks[pid]
        entry[2] += 1
        outcome = self.rng.choice(["delivered", "delivered", "retry", "failed"])
        status = {"delivered": 200, "retry": 503, "failed": 400}[outcome]
        failure = {"delivered": None, "retry": "server_error", "failed": "rejected_by_partner"}[outcome]
        self.add(Attempted(
            postback_id=pid, app=APP, event_seq=entry[0], network=entry[1].network, attempt=entry[2],
            started=self.clock, duration=self.rng.uniform(0.001, 2.0), outcome=outcome, failure_class=failure,
            status_code=status, url="http://127.0.0.1/pb?key=***",
            next_due=self.clock + 60 if outcome == "retry" else None,
        ), attempt_dedup_key(pid, entry[2]))
        entry[3] = outcome != "retry"

    def resend(self) -> None:
        finished = [pid for pid, entry in self.postbacks.items() if entry[3]]
        if not finished:
            return
        pid = self.rng.choice(finished)
        entry = self.postbacks[pid]
        self.add(ResendRequested(postback_id=pid, app=APP, event_seq=entry[0], decision=entry[1],
                                 after_attempt=entry[2]))
        entry[3] = False

    def change_config(self) -> None:
        network = self.rng.choice(NETWORKS)
        current = self.config.partners[(APP, network)]
        self.add(PartnerConfigured(PartnerConfig(APP, network, "custom", current.fields,
                                                 active=not current.active)))


def simulate(seed: int, steps: int = 400) -> Simulation:
    """Return a simulated history of about ``steps`` actions after the configuration."""
    sim = Simulation(seed)
    sim.configure()
    for _ in range(steps):
        roll = sim.rng.random()
        if roll < 0.5:
            sim.event()
        elif roll < 0.75:
            sim.attempt()
        elif roll < 0.8:
            sim.resend()
        elif roll < 0.83:
            sim.change_config()
        sim.flush_decided(keep=sim.rng.randrange(4))
    return sim


def write_log(data_dir: Path, appends: list[Append]) -> Path:
    """Append records to the event log in ``data_dir`` with the daemon's writer; return the log path."""
    path = log_path(data_dir)

    async def write() -> None:
        async with EventLog(path) as log:
            seqs = await log.append(appends)
            assert None not in seqs

    trio.run(write)
    return path
