"""Latency: from the acknowledgement of an install to the receiver getting its postbacks.

A producer writes installs to ingest.sock at a steady rate, one line at a
time, and a second thread reads the response lines and notes when each event
id was acknowledged. The receiver notes when each postback arrived. Both
times come from the monotonic clock, which is system-wide on Linux, so their
difference is the latency across processes.
"""

from __future__ import annotations

import socket
import statistics
import threading
import time
from pathlib import Path

import msgspec

from bench._daemon import NETWORKS, DaemonProcess, configure
from bench._data import install_line
from bench._receiver import MultiProcessReceiver
from bench._results import ScenarioResult

# Seconds the run waits for the last postbacks after the last acknowledgement.
DRAIN_SECONDS = 30.0


class _Ack(msgspec.Struct):
    line: int
    status: str
    id: str | None = None


def percentile(values: list[float], fraction: float) -> float:
    """Return the value below which ``fraction`` of ``values`` lie (nearest rank)."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[index]


class _Producer:
    """Writes lines at a steady rate and records when each line was written and acknowledged."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(path))
        self.written: list[float] = []
        self.acknowledged: dict[str, float] = {}
        self.ack_delays: list[float] = []
        self.rejected: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        decoder = msgspec.json.Decoder(_Ack)
        with self.sock.makefile("rb") as responses:
            for raw in responses:
                now = time.monotonic()
                ack = decoder.decode(raw)
                if ack.status != "accepted" or ack.id is None:
                    self.rejected.append(raw.decode(errors="replace").strip())
                    continue
                self.acknowledged[ack.id] = now
                self.ack_delays.append(now - self.written[ack.line - 1])

    def run(self, lines: list[bytes], rate: float) -> None:
        started = time.monotonic()
        for index, line in enumerate(lines):
            due = started + index / rate
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            self.written.append(time.monotonic())
            self.sock.sendall(line)
        self.sock.shutdown(socket.SHUT_WR)

    def join(self, timeout: float) -> None:
        self._reader.join(timeout)
        self.sock.close()


def run_latency(
    work_dir: Path, receiver: MultiProcessReceiver, max_rate: float | None, seconds: float, max_events: int
) -> ScenarioResult:
    result = ScenarioResult("latency", "Latency")
    if not max_rate:
        raise RuntimeError("The latency run needs the maximum delivery rate from the delivery run, which failed.")
    postback_rate = max_rate / 2
    event_rate = postback_rate / len(NETWORKS)
    events = max(1, min(max_events, round(event_rate * seconds)))
    now = time.time()
    lines = [install_line(number, number, now - 60.0, NETWORKS[number % len(NETWORKS)]) for number in range(events)]
    result.setup.append(
        f"{events:,} installs written one line at a time at {event_rate:,.0f} lines/s, so the daemon sends "
        f"{postback_rate:,.0f} postbacks/s, half the delivery rate measured above; same partners and receiver "
        "as the delivery run."
    )

    with DaemonProcess(work_dir, "latency") as daemon:
        daemon.start()
        configure(daemon, receiver.url, events=("install",), method="all", delay="realtime")
        receiver.reset()
        receiver.record(True)
        producer = _Producer(daemon.ingest_path)
        producer.run(lines, event_rate)
        producer.join(DRAIN_SECONDS)
        receiver.wait_for(events * len(NETWORKS), DRAIN_SECONDS)
        arrivals = receiver.arrivals()
        receiver.record(False)

    if producer.rejected:
        raise RuntimeError(f"The daemon did not accept {len(producer.rejected)} lines, e.g. {producer.rejected[0]}")
    latencies = [
        arrival.time - producer.acknowledged[arrival.event_id]
        for arrival in arrivals
        if arrival.event_id in producer.acknowledged
    ]
    expected = events * len(NETWORKS)
    if not latencies:
        raise RuntimeError("No postback of the latency run reached the receiver.")
    p50 = percentile(latencies, 0.50)
    p99 = percentile(latencies, 0.99)
    result.figure("postbacks received / expected", None, "", f"{len(latencies):,} / {expected:,}")
    result.figure("acknowledgement to arrival, p50", p50 * 1000, "ms")
    result.figure("acknowledgement to arrival, p99", p99 * 1000, "ms")
    result.figure("acknowledgement to arrival, max", max(latencies) * 1000, "ms")
    result.figure("acknowledgement to arrival, mean", statistics.fmean(latencies) * 1000, "ms")
    result.figure("line written to acknowledgement, p50", percentile(producer.ack_delays, 0.50) * 1000, "ms",
                  "the commit of the event")
    result.figure("line written to acknowledgement, p99", percentile(producer.ack_delays, 0.99) * 1000, "ms")
    result.target("p99 acknowledgement to arrival", p99 * 1000, "<", 50, "ms")
    return result
