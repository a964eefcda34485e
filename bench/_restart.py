"""Restart and memory: start times on a large log with and without a snapshot, and resident memory.

Both scenarios use one log, built by ``bench._logbuild``: a million devices
with installs and a few events each fit in the ten million records of the
default sizes. The first start finds no snapshot and replays the whole log.
Its settings make a snapshot due after one new record, and the whole log is
new to it. So its snapshot task saves one within a second or so, and the
second start restores that snapshot.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from bench._daemon import DaemonProcess
from bench._logbuild import build_log
from bench._results import ScenarioResult
from postbackd.eventlog import connect, log_path

# Seconds to wait for the daemon to save its first snapshot after a full replay.
SNAPSHOT_WAIT = 180.0

# Slowest replay rate (records/s) that the start may take before the run is abandoned.
MIN_REPLAY_RATE = 10_000

# Settings of the first start: a snapshot is due as soon as any record is not in one.
SNAPSHOT_AT_ONCE = "snapshot_every_records = 1\n"


def _latest_snapshot(path: Path) -> int | None:
    """Log position of the newest snapshot in the log at ``path``, None when it has none."""
    conn = connect(path, readonly=True)
    try:
        row = conn.execute("SELECT seq FROM snapshots ORDER BY id DESC LIMIT 1").fetchone()
    except sqlite3.OperationalError:
        return None
    finally:
        conn.close()
    return row[0] if row else None


def _wait_snapshot(path: Path, timeout: float) -> int | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seq = _latest_snapshot(path)
        if seq is not None:
            return seq
        time.sleep(0.25)
    return None


def run_restart(
    work_dir: Path, records: int, devices: int, *, restart: bool, memory: bool
) -> list[ScenarioResult]:
    """Build the log and start daemons on it; return the restart and/or memory results as asked."""
    restart_result = ScenarioResult("restart", "Restart")
    memory_result = ScenarioResult("memory", "Memory")
    data_dir = work_dir / "restart-data"
    data_dir.mkdir(parents=True, exist_ok=True)
    path = log_path(data_dir)
    path.unlink(missing_ok=True)

    started = time.monotonic()
    counts = build_log(path, records, devices)
    build_seconds = time.monotonic() - started
    size = path.stat().st_size
    description = (
        f"A log of {records:,} records ({size / 1e9:.2f} GB), written directly with the event log's record types. "
        f"It contains configuration records, {counts['installs']:,} installs of {counts['devices']:,} devices, "
        f"{counts['events']:,} events (Purchase, SessionBegin, level_complete), a `Decided` record per event with "
        "the decisions of the real decision engine, and a delivered `Attempted` record per scheduled postback."
    )
    restart_result.setup.append(description)
    memory_result.setup.append("The same log as in the restart run. " + description)
    restart_result.figure("log built", records / build_seconds, "records/s", f"{build_seconds:.0f} s")

    with DaemonProcess(work_dir, "empty") as empty:
        empty_ready = empty.start()

    timeout = 60 + records / MIN_REPLAY_RATE
    with DaemonProcess(work_dir, "restart", data_dir=data_dir) as daemon:
        full_ready = daemon.start(SNAPSHOT_AT_ONCE, ready_timeout=timeout)
        full_rss = daemon.rss_bytes()
        last_seq = daemon.status()["last_seq"]
        snapshot_seq = _wait_snapshot(path, SNAPSHOT_WAIT) if restart else None
        daemon.stop()
        snapshot_ready = snapshot_rss = None
        if snapshot_seq is not None:
            snapshot_ready = daemon.start(ready_timeout=timeout)
            snapshot_rss = daemon.rss_bytes()

    if last_seq < records:
        raise RuntimeError(f"The daemon started at log position {last_seq:,}, expected {records:,}.")
    replay_rate = records / (full_ready - empty_ready)

    restart_result.figure("start on an empty log, to READY=1", empty_ready, "s", "interpreter, imports, sockets")
    restart_result.figure("start without a snapshot (full replay), to READY=1", full_ready, "s")
    restart_result.figure("full replay rate", replay_rate, "records/s",
                          "records / (start without a snapshot - start on an empty log)")
    if restart:
        restart_result.figure("start with a snapshot, to READY=1", snapshot_ready, "s",
                              f"snapshot at log position {snapshot_seq:,}" if snapshot_seq else
                              f"no snapshot appeared within {SNAPSHOT_WAIT:.0f} s")
        restart_result.target("start with a snapshot", snapshot_ready, "<", 3.0, "s")
        restart_result.target("full replay rate", replay_rate, ">=", 300_000, "records/s")

    memory_result.figure("resident memory after a full replay", full_rss / 1e6, "MB")
    memory_result.figure("resident memory after a start from the snapshot",
                         snapshot_rss / 1e6 if snapshot_rss else None, "MB")
    memory_result.target("resident memory after a full replay", full_rss / 1e6, "<", 300, "MB")
    if snapshot_rss:
        memory_result.target("resident memory after a start from the snapshot", snapshot_rss / 1e6, "<", 300, "MB")

    results = []
    if restart:
        results.append(restart_result)
    if memory:
        results.append(memory_result)
    return results
