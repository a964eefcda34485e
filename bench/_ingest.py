"""Ingest: native lines through ``postbackd send`` into a daemon, beside the raw pipeline in one thread."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import msgspec

from bench._daemon import APP_ID, DaemonProcess, configure
from bench._data import write_ingest_lines
from bench._profile import Profiler
from bench._results import ScenarioResult
from postbackd.daemon import Settings
from postbackd.daemon._snapshot_task import RECORDS_PER_STATE_OBJECT
from postbackd.eventlog import connect

# Lines per transaction in the raw pipeline.
RAW_BATCH_LINES = 10_000

# Delivery delay of the postbacks during the ingest run: nothing comes due while it runs.
INGEST_DELAY = "24h"

# Slowest ingest rate (lines/s) that a run may have; a slower run is abandoned.
MIN_RATE = 2_000

# Address that the partners' URL templates name; nothing is sent there within the 24 h delay.
UNUSED_RECEIVER = "http://127.0.0.1:9"

# Lines of the separate ingest run that py-spy profiles.
PROFILED_LINES = 200_000


class _RawInput(msgspec.Struct):
    """The fields of the native input format, decoded without the daemon's checks."""

    type: str
    id: str
    app: str
    device: str
    time: str | int | float
    name: str | None = None
    country: str | None = None
    data_controlled: bool = False
    device_ids: dict[str, str] = {}
    ip: str | None = None
    user_agent: str | None = None
    attribution: dict[str, Any] | None = None
    data: dict[str, Any] = {}


def raw_pipeline(lines_path: Path, db_path: Path) -> tuple[int, float, float]:
    """Decode, encode and insert every line in one thread; return (lines, seconds, CPU seconds).

    The table is the event log's own (``postbackd.eventlog.connect``: WAL,
    synchronous FULL, the unique dedup key), and every transaction contains
    ``RAW_BATCH_LINES`` lines.
    """
    decoder = msgspec.json.Decoder(_RawInput)
    encoder = msgspec.msgpack.Encoder()
    conn = connect(db_path)
    insert = "INSERT OR IGNORE INTO log (received, kind, dedup_key, body) VALUES (?, ?, ?, ?)"
    count = 0
    started = time.perf_counter()
    cpu_started = time.process_time()
    with lines_path.open("rb") as lines:
        rows = []
        for line in lines:
            item = decoder.decode(line)
            rows.append((time.time(), "event", f"event:{item.app}:{item.id}", encoder.encode(item)))
            if len(rows) >= RAW_BATCH_LINES:
                _insert(conn, insert, rows)
                count += len(rows)
                rows = []
        if rows:
            _insert(conn, insert, rows)
            count += len(rows)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    conn.close()
    return count, elapsed, cpu


def _insert(conn: Any, insert: str, rows: list[tuple]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(insert, rows)
    conn.execute("COMMIT")


class _DaemonRun:
    """Measurements of the daemon's part of the ingest run."""

    def __init__(self, ack_seconds: float, decided_seconds: float | None, cpu_seconds: float,
                 main_cpu_seconds: float, status: dict, rss_bytes: int, send_output: str) -> None:
        self.ack_seconds = ack_seconds
        self.decided_seconds = decided_seconds
        self.cpu_seconds = cpu_seconds
        self.main_cpu_seconds = main_cpu_seconds
        self.status = status
        self.rss_bytes = rss_bytes
        self.send_output = send_output


def _run_daemon(work_dir: Path, name: str, lines_path: Path, events: int, settings: str, py_spy: str | None,
                result: ScenarioResult) -> _DaemonRun:
    """Send the lines with ``postbackd send`` to a new daemon and wait until every event is decided.

    With ``py_spy``, the daemon is profiled during the run and the profile
    is added to ``result``.
    """
    timeout = 60 + events / MIN_RATE
    with DaemonProcess(work_dir, name) as daemon:
        daemon.start(settings)
        configure(daemon, UNUSED_RECEIVER, events=("install", "Purchase", "SessionBegin"), method="network",
                  delay=INGEST_DELAY)
        assert daemon.process is not None
        profiler = Profiler(py_spy, daemon.process.pid, work_dir / f"{name}.txt") if py_spy else None
        if profiler is not None:
            # py-spy needs a moment to attach before the measured run begins.
            time.sleep(1.0)

        cpu_before = daemon.cpu_seconds()
        main_cpu_before = daemon.main_thread_cpu_seconds()
        started = time.monotonic()
        sent = subprocess.run(
            [sys.executable, "-m", "postbackd", "send", str(lines_path), "--socket-dir", str(daemon.socket_dir)],
            capture_output=True, text=True, timeout=timeout,
        )
        acknowledged_at = time.monotonic()
        decided_at = _wait_decided(daemon, events, started + timeout)
        cpu_seconds = daemon.cpu_seconds() - cpu_before
        main_cpu_seconds = daemon.main_thread_cpu_seconds() - main_cpu_before

        if profiler is not None:
            result.profiles.append((
                f"daemon during a separate ingest run of {events:,} lines, with py-spy attached", profiler.stop()
            ))
        run = _DaemonRun(
            acknowledged_at - started, decided_at - started if decided_at else None, cpu_seconds, main_cpu_seconds,
            daemon.status(),
            daemon.rss_bytes(), sent.stdout,
        )
    expected = f"accepted {events}, duplicate 0, rejected 0"
    if sent.returncode != 0 or expected not in sent.stdout:
        raise RuntimeError(f"postbackd send did not accept every line: {sent.stdout.strip()} {sent.stderr.strip()}")
    return run


def run_ingest(work_dir: Path, events: int, py_spy: str | None, settings: str = "") -> ScenarioResult:
    """Measure ingest; ``settings`` is the daemon's settings file (TOML), empty for its defaults."""
    result = ScenarioResult("ingest", "Ingest")
    lines_path = work_dir / "ingest.jsonl"
    write_ingest_lines(lines_path, events)
    result.setup.append(
        f"{events:,} native lines ({lines_path.stat().st_size / 1e6:.0f} MB), one in four an install of a new "
        "device, the others Purchase, SessionBegin, level_complete and tutorial_done events of earlier devices; "
        "installs attributed to net1, net2, net3 or to no network."
    )
    result.setup.append(
        f"3 active partners with install, Purchase and SessionBegin postbacks, delivery method `network`, "
        f"delivery delay {INGEST_DELAY}. Postbacks are decided and scheduled while the lines come in, but none "
        "is due during the run, so delivery does not compete for the CPU. Delivery has a scenario of its own."
    )
    defaults = {field.name: field.default for field in msgspec.structs.fields(Settings)}
    result.setup.append(
        f"Daemon settings: {settings.strip() or 'the defaults'}. By default a snapshot is due after "
        f"{defaults['snapshot_every_seconds']:g} s or after a number of new log records, whichever comes first. "
        f"That number is the larger of {defaults['snapshot_every_records']:,} and {RECORDS_PER_STATE_OBJECT} "
        "times the devices and pending postbacks."
    )

    raw_lines, raw_seconds, raw_cpu = raw_pipeline(lines_path, work_dir / "raw-pipeline.sqlite3")
    raw_rate = raw_lines / raw_seconds
    daemon = _run_daemon(work_dir, "ingest", lines_path, events, settings, None, result)
    if py_spy is not None:
        # py-spy pauses the daemon for every sample, which lowered the measured
        # rate by about a sixth, so the profile comes from a run of its own.
        profiled_lines = min(events, PROFILED_LINES)
        profiled_path = work_dir / "ingest-profiled.jsonl"
        write_ingest_lines(profiled_path, profiled_lines)
        _run_daemon(work_dir, "ingest-profiled", profiled_path, profiled_lines, settings, py_spy, result)
    ack_rate = events / daemon.ack_seconds
    daemon_cpu_per_event = daemon.cpu_seconds / events
    raw_cpu_per_line = raw_cpu / raw_lines
    scheduled = sum(p["scheduled"] for p in daemon.status["partners"])
    suppressed = sum(p["suppressed"] for p in daemon.status["partners"])

    result.figure("postbackd send, start to last acknowledgement", daemon.ack_seconds, "s",
                  "includes the start-up of the send process")
    result.figure("acknowledged events", ack_rate, "events/s")
    result.figure("start to every event decided", daemon.decided_seconds, "s",
                  "the status is polled every 50 ms from the last acknowledgement on, so this equals the line "
                  "above when the decision loop kept up")
    result.figure("decisions: scheduled / suppressed", None, "", f"{scheduled:,} / {suppressed:,}")
    result.figure("daemon resident memory after the run", daemon.rss_bytes / 1e6, "MB")
    result.figure("daemon CPU time per event", daemon_cpu_per_event * 1e6, "µs",
                  "user and system time, all threads, until every event was decided")
    busy_seconds = daemon.decided_seconds or daemon.ack_seconds
    result.figure("of which the trio thread", daemon.main_cpu_seconds / events * 1e6, "µs",
                  f"busy {daemon.main_cpu_seconds / busy_seconds:.0%} of the time until every event was decided; "
                  "the other threads are the log writer and snapshot compression")
    result.figure("raw pipeline: decode, encode, insert in one thread", raw_rate, "lines/s",
                  f"{RAW_BATCH_LINES:,} lines per transaction")
    result.figure("raw pipeline CPU time per line", raw_cpu_per_line * 1e6, "µs")
    result.figure("ratio daemon / raw pipeline", ack_rate / raw_rate, "", "acknowledged events/s over lines/s")
    result.figure("ratio of CPU time per line, raw pipeline / daemon", raw_cpu_per_line / daemon_cpu_per_event, "",
                  "what the rate ratio would be if neither had to share the CPU")
    result.target("acknowledged events/s", ack_rate, ">=", 50_000, "events/s")
    return result


def _wait_decided(daemon: DaemonProcess, events: int, deadline: float) -> float | None:
    """Poll the status until the decision loop has handled ``events`` events; return the time, None on timeout."""
    while time.monotonic() < deadline:
        status = daemon.status()
        handled = sum(app["events"] for app in status["apps"] if app["app"] == APP_ID)
        if handled >= events:
            return time.monotonic()
        time.sleep(0.05)
    return None
