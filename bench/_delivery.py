"""Delivery: realtime postbacks from a daemon to the fast receiver, beside plain httpx loops."""

from __future__ import annotations

import math
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import trio

from bench._daemon import NETWORKS, DaemonProcess, configure
from bench._data import write_install_lines
from bench._load import measure_capacity
from bench._profile import Profiler
from bench._receiver import MultiProcessReceiver
from bench._results import ScenarioResult
from postbackd.actors._endpoints import make_client

# Concurrent requests per partner: the daemon's default when an integration
# sets none, as for the `custom` integration that the partners use.
CONCURRENCY = 8

# Deadline of one request, as the daemon's default attempt timeout (seconds).
ATTEMPT_TIMEOUT = 10.0

# Bytes of a response body that the daemon keeps; the loops read as much.
RESPONSE_HEAD_BYTES = 1024

# Slowest delivery rate (postbacks/s or requests/s) that a run may have; a slower run is abandoned.
MIN_RATE = 200

# Postbacks of the separate delivery run that py-spy profiles.
PROFILED_POSTBACKS = 30_000


def plain_client() -> httpx.AsyncClient:
    """Build an httpx client with the pool size, timeout, redirect and proxy settings of a delivery actor."""
    return httpx.AsyncClient(
        limits=httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY, keepalive_expiry=30),
        timeout=httpx.Timeout(ATTEMPT_TIMEOUT),
        follow_redirects=False,
        trust_env=False,
    )


def daemon_transport_client() -> httpx.AsyncClient:
    """Build the HTTP client that a delivery actor uses, with its address-checking transport."""
    return make_client(concurrency=CONCURRENCY, attempt_timeout=ATTEMPT_TIMEOUT, allow_private=True)


async def _request_loop(url: str, total: int, make_client: Callable[[], httpx.AsyncClient]) -> float:
    """Send ``total`` GET requests, one client and ``CONCURRENCY`` tasks per network; return the seconds taken.

    Each request is sent and read the way a delivery actor does it: streamed,
    at most ``RESPONSE_HEAD_BYTES`` of the body read, under one deadline.
    """
    counter = iter(range(total))

    async def worker(client: httpx.AsyncClient, network: str) -> None:
        for number in counter:
            with trio.move_on_after(ATTEMPT_TIMEOUT):
                request = client.build_request("GET", f"{url}/pb/{network}?id=plain-{number}&pb=pb_{number}")
                response = await client.send(request, stream=True)
                head = bytearray()
                try:
                    async for chunk in response.aiter_raw():
                        head += chunk
                        if len(head) >= RESPONSE_HEAD_BYTES:
                            break
                finally:
                    await response.aclose()
                if response.status_code != 200:
                    raise RuntimeError(f"The receiver responded {response.status_code} to {request.url}; expected 200.")

    clients = [make_client() for _ in NETWORKS]
    limit = 60 + total / MIN_RATE
    started = trio.current_time()
    try:
        with trio.move_on_after(limit) as scope:
            async with trio.open_nursery() as nursery:
                for client, network in zip(clients, NETWORKS):
                    for _ in range(CONCURRENCY):
                        nursery.start_soon(worker, client, network)
    finally:
        for client in clients:
            await client.aclose()
    if scope.cancelled_caught:
        raise RuntimeError(f"The plain loop did not finish {total:,} requests within {limit:.0f} s.")
    return trio.current_time() - started


def request_loop_rate(url: str, total: int, make_client: Callable[[], httpx.AsyncClient]) -> tuple[float, float]:
    """Return requests/s and CPU seconds per request of ``_request_loop`` in a fresh trio run."""
    cpu_started = time.process_time()
    seconds = trio.run(_request_loop, url, total, make_client)
    return total / seconds, (time.process_time() - cpu_started) / total


class _DaemonRun:
    """Measurements of the daemon's part of the delivery run."""

    def __init__(self, rate: float | None, seconds: float, cpu_per_postback: float, delivered: int) -> None:
        self.rate = rate
        self.seconds = seconds
        self.cpu_per_postback = cpu_per_postback
        self.delivered = delivered


def _run_daemon(work_dir: Path, name: str, receiver: MultiProcessReceiver, installs: int, py_spy: str | None,
                result: ScenarioResult) -> _DaemonRun:
    """Send the installs to a new daemon and wait until the receiver has every postback.

    With ``py_spy``, the daemon is profiled during the run and the profile
    is added to ``result``.
    """
    total = installs * len(NETWORKS)
    lines_path = work_dir / f"{name}.jsonl"
    write_install_lines(lines_path, installs)
    timeout = 60 + total / MIN_RATE
    receiver.reset()
    with DaemonProcess(work_dir, name) as daemon:
        daemon.start()
        configure(daemon, receiver.url, events=("install",), method="all", delay="realtime")
        assert daemon.process is not None
        profiler = Profiler(py_spy, daemon.process.pid, work_dir / f"{name}.txt") if py_spy else None
        if profiler is not None:
            # py-spy needs a moment to attach before the measured run begins.
            time.sleep(1.0)

        cpu_before = daemon.cpu_seconds()
        started = time.monotonic()
        sent = subprocess.run(
            [sys.executable, "-m", "postbackd", "send", str(lines_path), "--socket-dir", str(daemon.socket_dir)],
            capture_output=True, text=True, timeout=timeout,
        )
        arrived = receiver.wait_for(total, timeout=max(1.0, started + timeout - time.monotonic()))
        if profiler is not None:
            result.profiles.append((
                f"daemon during a separate delivery run of {total:,} postbacks, with py-spy attached", profiler.stop()
            ))
        delivered = _wait_delivered(daemon, total, started + timeout)
        cpu_per_postback = (daemon.cpu_seconds() - cpu_before) / total

    if sent.returncode != 0:
        raise RuntimeError(f"postbackd send failed: {sent.stdout.strip()} {sent.stderr.strip()}")
    received = receiver.count()
    if not arrived:
        raise RuntimeError(f"The receiver got {received:,} of {total:,} postbacks within {timeout:.0f} s.")
    first, last = receiver.first_last()
    rate = received / (last - first) if last > first else None
    return _DaemonRun(rate, last - started, cpu_per_postback, delivered)


def run_delivery(
    work_dir: Path,
    receiver: MultiProcessReceiver,
    postbacks: int,
    plain_requests: int,
    capacity_seconds: float,
    py_spy: str | None,
) -> ScenarioResult:
    result = ScenarioResult("delivery", "Delivery")
    installs = math.ceil(postbacks / len(NETWORKS))
    total = installs * len(NETWORKS)
    result.setup.append(
        f"{installs:,} installs of new devices through `postbackd send`; 3 partners with a realtime install "
        f"postback, delivery method `all`, so every install gives 3 postbacks: {total:,} in all. Each partner "
        f"has {CONCURRENCY} concurrent requests (the daemon's default), GET requests to the receiver."
    )
    result.setup.append(
        f"Receiver: {receiver.workers} processes on one port (SO_REUSEPORT), each a minimal asyncio HTTP/1.1 "
        "keep-alive server that responds 200 at once."
    )

    receiver.reset()
    capacity, client_used = measure_capacity(receiver.url, seconds=capacity_seconds, clients=2, connections=16)
    receiver.reset()
    plain_rate, plain_cpu = request_loop_rate(receiver.url, plain_requests, plain_client)
    transport_rate, transport_cpu = request_loop_rate(receiver.url, plain_requests, daemon_transport_client)
    daemon = _run_daemon(work_dir, "delivery", receiver, installs, None, result)
    if py_spy is not None:
        # py-spy pauses the daemon for every sample, so the profile comes from a run of its own.
        profiled_installs = min(installs, PROFILED_POSTBACKS // len(NETWORKS))
        _run_daemon(work_dir, "delivery-profiled", receiver, profiled_installs, py_spy, result)
    rate = daemon.rate

    result.figure("receiver capacity", capacity, "requests/s", client_used)
    result.figure("plain httpx loop", plain_rate, "requests/s",
                  f"{plain_requests:,} requests, 3 clients x {CONCURRENCY} tasks, httpx's own transport")
    result.figure("plain loop with the daemon's transport", transport_rate, "requests/s",
                  "the same loop with `make_client`, which checks endpoint addresses")
    result.figure("postbacks delivered by the daemon", rate, "postbacks/s", "first to last request at the receiver")
    result.figure("send start to last request", daemon.seconds, "s")
    result.figure("daemon CPU time per postback", daemon.cpu_per_postback * 1e6, "µs",
                  "user and system time, all threads; includes taking in the installs and deciding them")
    result.figure("plain loop CPU time per request", plain_cpu * 1e6, "µs", "httpx's own transport")
    result.figure("plain loop CPU time per request, daemon's transport", transport_cpu * 1e6, "µs")
    result.figure("attempts recorded as delivered (`status`)", None, "", f"{daemon.delivered:,} of {total:,}")
    result.figure("ratio daemon / plain httpx loop", rate / plain_rate if rate else None, "")
    result.figure("ratio daemon / loop with the daemon's transport", rate / transport_rate if rate else None, "")
    result.figure("ratio of CPU time per request, plain loop / daemon", plain_cpu / daemon.cpu_per_postback, "",
                  "what the rate ratio would be if neither had to share the CPU")
    result.figure("ratio receiver capacity / daemon", capacity / rate if rate else None, "")
    result.target("delivered postbacks/s", rate, ">=", 2_000, "postbacks/s")
    result.target("ratio to the plain httpx loop", rate / plain_rate if rate else None, ">=", 0.8, "")
    if rate:
        result.values["max_rate"] = rate
    return result


def _wait_delivered(daemon: DaemonProcess, total: int, deadline: float) -> int:
    """Poll the status until ``total`` attempts are recorded as delivered or the deadline passes; return the count."""
    while True:
        delivered = sum(partner["delivered"] for partner in daemon.status()["partners"])
        if delivered >= total or time.monotonic() > deadline:
            return delivered
        time.sleep(0.05)
