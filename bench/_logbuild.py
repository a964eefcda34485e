"""Build a large event log directly, without the daemon, for the restart and memory runs.

The log contains what a daemon would have written for a feed of installs and
events: the configuration records, then for every event its ``Event``
record, its ``Decided`` record with the decisions of the real
``DecisionEngine``, and an ``Attempted`` record (delivered) for every
scheduled postback, so no postback is pending when the daemon starts. First
every device gets an install, then the devices get events in turn until the
log has the requested number of records.

The builder writes with SQLite's journal and syncs off, because the log is
a throw-away benchmark input, and turns WAL mode back on at the end. A
writer thread inserts each batch while the main thread builds the next:
sqlite3 releases the GIL while SQLite works, so the two use both cores.
"""

from __future__ import annotations

import queue
import random
import threading
import time
from pathlib import Path

from bench._daemon import APP_ID, NETWORKS
from postbackd.actors import ConfigState, DecisionEngine
from postbackd.daemon._core import attempt_dedup_key, decided_dedup_key, event_dedup_key
from postbackd.eventlog import (
    AppConfig,
    AppConfigured,
    Attempted,
    Attribution,
    Decided,
    Event,
    PartnerConfig,
    PartnerConfigured,
    PostbackConfig,
    PostbackConfigured,
    Record,
    connect,
    encode_record,
)

# Rows per INSERT batch.
BATCH_ROWS = 50_000

# Batches built ahead of the writer thread; bounds the builder's memory.
BATCHES_AHEAD = 4

# Share of installs attributed to one of the networks; the rest are organic.
ATTRIBUTED_SHARE = 0.7

# Event names of the log's events and their weights; Purchase and SessionBegin have postbacks.
EVENT_NAMES = ("Purchase", "SessionBegin", "level_complete")
EVENT_WEIGHTS = (0.2, 0.4, 0.4)

# Installs lie this many seconds before the build, and events up to 5 days after their install.
HISTORY = 30 * 86400.0
EVENT_SPAN = 5 * 86400.0

# Records a configuration needs: one app, and per partner the partner and its three postbacks.
CONFIG_RECORDS = 1 + len(NETWORKS) * 4

_INSERT = "INSERT INTO log (seq, received, kind, dedup_key, body) VALUES (?, ?, ?, ?, ?)"


def _config_records() -> list[Record]:
    records: list[Record] = [
        AppConfigured(app=AppConfig(app_id=APP_ID, platform="android", bundle_id="com.example.bench", name="Bench"))
    ]
    for network in NETWORKS:
        url = f"http://127.0.0.1:9/pb/{network}?id={{event_id}}&pb={{postback_id}}"
        records.append(PartnerConfigured(
            partner=PartnerConfig(app_id=APP_ID, network=network, integration="custom", fields={"url": url})
        ))
        for event in ("install", "Purchase", "SessionBegin"):
            records.append(PostbackConfigured(postback=PostbackConfig(app_id=APP_ID, network=network, event=event)))
    return records


class LogBuilder:
    """Appends records with consecutive sequence numbers, deciding events with a real engine."""

    def __init__(self, path: Path) -> None:
        self.conn = connect(path)
        self.conn.execute("PRAGMA journal_mode = DELETE")
        self.conn.execute("PRAGMA journal_mode = OFF")
        self.conn.execute("PRAGMA synchronous = OFF")
        self.conn.execute("PRAGMA cache_size = -1000000")
        self.config = ConfigState()
        self.engine = DecisionEngine()
        self.seq = 0
        self.rows: list[tuple] = []
        self._batches: queue.Queue[list[tuple] | None] = queue.Queue(BATCHES_AHEAD)
        self._failure: BaseException | None = None
        self._writer = threading.Thread(target=self._write, name="bench-log-writer", daemon=True)
        self._writer.start()

    def _write(self) -> None:
        try:
            while (rows := self._batches.get()) is not None:
                self.conn.execute("BEGIN")
                self.conn.executemany(_INSERT, rows)
                self.conn.execute("COMMIT")
        except BaseException as exc:
            self._failure = exc
            raise

    def append(self, record: Record, received: float, dedup_key: str | None = None) -> int:
        self.seq += 1
        self.rows.append((self.seq, received, record.__struct_config__.tag, dedup_key, encode_record(record)))
        if len(self.rows) >= BATCH_ROWS:
            self.flush()
        return self.seq

    def configure(self, received: float) -> None:
        for record in _config_records():
            seq = self.append(record, received)
            self.config.apply(seq, record)

    def event(self, event: Event, received: float) -> None:
        """Append an event, its decisions and a delivered attempt for each scheduled postback."""
        seq = self.append(event, received, event_dedup_key(event.app, event.id))
        decisions = self.engine.decide(self.config, event, received)
        self.engine.apply(event, decisions)
        self.append(Decided(event_seq=seq, app=event.app, event_id=event.id, decisions=decisions), received,
                    decided_dedup_key(seq))
        for decision in decisions:
            if decision.outcome != "scheduled":
                continue
            assert decision.postback_id is not None and decision.due is not None
            attempt = Attempted(
                postback_id=decision.postback_id, app=event.app, event_seq=seq, network=decision.network, attempt=1,
                started=decision.due, duration=0.01, outcome="delivered", status_code=200,
                url=f"http://127.0.0.1:9/pb/{decision.network}", response_head="ok",
            )
            self.append(attempt, decision.due + 0.01, attempt_dedup_key(decision.postback_id, 1))

    def flush(self) -> None:
        if self._failure is not None:
            raise RuntimeError(f"Writing the benchmark log failed: {self._failure}") from self._failure
        self._batches.put(self.rows)
        self.rows = []

    def close(self) -> None:
        self.flush()
        self._batches.put(None)
        self._writer.join()
        if self._failure is not None:
            raise RuntimeError(f"Writing the benchmark log failed: {self._failure}") from self._failure
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.close()


def build_log(path: Path, records: int, devices: int, seed: int = 2) -> dict[str, int]:
    """Write a log of exactly ``records`` records with ``devices`` installed devices to ``path``.

    Returns counts of installs, events and attempts. Raises ValueError when
    ``records`` is too small for one install of every device.
    """
    # An install takes at most its Event, its Decided and one attempt, and
    # the loop of events needs room for one more event.
    if records < CONFIG_RECORDS + 3 * devices + 1:
        raise ValueError(
            f"Invalid sizes: a log of {records:,} records cannot hold installs of {devices:,} devices, which "
            f"need up to {CONFIG_RECORDS + 3 * devices:,} records. Raise --restart-records or lower --devices."
        )
    rng = random.Random(seed)
    start = time.time() - HISTORY
    builder = LogBuilder(path)
    builder.configure(start)
    install_times = []
    for device in range(devices):
        when = start + HISTORY * 0.8 * device / devices
        install_times.append(when)
        network = rng.choice(NETWORKS) if rng.random() < ATTRIBUTED_SHARE else None
        builder.event(Event(
            app=APP_ID, id=f"i-{device:09d}", type="install", device=f"dev-{device:09d}", time=when, country="US",
            device_ids={"adid": f"ad-{device:012d}"},
            attribution=Attribution(network=network, click_id=f"clk-{device}") if network else None,
        ), when + 1.0)
    installs = devices
    events = 0
    # An event takes at most its Event, its Decided and one attempt per network.
    while records - builder.seq >= 2 + len(NETWORKS):
        device = events % devices
        when = install_times[device] + rng.random() * EVENT_SPAN
        name = rng.choices(EVENT_NAMES, EVENT_WEIGHTS)[0]
        builder.event(Event(
            app=APP_ID, id=f"e-{events:09d}", type="event", device=f"dev-{device:09d}", time=when, name=name,
            data={"revenue": 1.99, "currency": "USD"} if name == "Purchase" else {},
        ), when + 1.0)
        events += 1
    # Events without postbacks take exactly two records; one record left over is a configuration record.
    while records - builder.seq >= 2:
        device = events % devices
        builder.event(Event(
            app=APP_ID, id=f"e-{events:09d}", type="event", device=f"dev-{device:09d}",
            time=install_times[device] + 60.0, name="level_complete",
        ), install_times[device] + 61.0)
        events += 1
    if records - builder.seq == 1:
        builder.append(_config_records()[0], time.time())
    builder.close()
    return {"installs": installs, "events": events, "devices": len(builder.engine.devices)}
