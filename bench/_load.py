"""Capacity check of the receiver: keep-alive GET requests from several client processes.

wrk (a C load generator) is used when it is on PATH. Otherwise the check
runs Python client processes, each an asyncio loop with several keep-alive
connections that send one request at a time. On a 2-core machine the
clients share the CPU with the receiver, so either figure is a lower bound
of the receiver's capacity.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import re
import shutil
import subprocess
import time

from bench._receiver import RESPONSE

# Seconds that the whole check may take beyond its duration before it is abandoned.
CHECK_MARGIN = 30.0


def measure_capacity(url: str, *, seconds: float, clients: int, connections: int) -> tuple[float, str]:
    """Return the requests/s that the server at ``url`` handled, and a description of the client used."""
    wrk = shutil.which("wrk")
    target = f"{url}/pb/capacity?id=probe"
    if wrk is not None:
        return _run_wrk(wrk, target, seconds, clients, connections)
    return _run_python_clients(url, seconds, clients, connections)


def _run_wrk(wrk: str, target: str, seconds: float, threads: int, connections: int) -> tuple[float, str]:
    total = threads * connections
    result = subprocess.run(
        [wrk, f"-t{threads}", f"-c{total}", f"-d{max(1, round(seconds))}s", target],
        capture_output=True, text=True, timeout=seconds + CHECK_MARGIN, check=True,
    )
    match = re.search(r"Requests/sec:\s+([0-9.]+)", result.stdout)
    if match is None:
        raise RuntimeError(f"wrk printed no Requests/sec line:\n{result.stdout}\n{result.stderr}")
    return float(match.group(1)), f"wrk, {threads} threads, {total} keep-alive connections"


def _client(host: str, port: int, seconds: float, connections: int, results: multiprocessing.Queue) -> None:
    results.put(asyncio.run(_client_main(host, port, seconds, connections)))


async def _client_main(host: str, port: int, seconds: float, connections: int) -> int:
    deadline = time.monotonic() + seconds
    request = f"GET /pb/capacity?id=probe HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()

    async def one_connection() -> int:
        reader, writer = await asyncio.open_connection(host, port)
        done = 0
        while time.monotonic() < deadline:
            writer.write(request)
            await reader.readexactly(len(RESPONSE))
            done += 1
        writer.close()
        return done

    counts = await asyncio.gather(*(one_connection() for _ in range(connections)))
    return sum(counts)


def _run_python_clients(url: str, seconds: float, clients: int, connections: int) -> tuple[float, str]:
    host, port = url.removeprefix("http://").split(":")
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    processes = [
        context.Process(target=_client, args=(host, int(port), seconds, connections, results), daemon=True)
        for _ in range(clients)
    ]
    started = time.monotonic()
    for process in processes:
        process.start()
    total = sum(results.get(timeout=seconds + CHECK_MARGIN) for _ in processes)
    elapsed = time.monotonic() - started
    for process in processes:
        process.join(CHECK_MARGIN)
    # The elapsed time includes the clients' start-up, so the rate is a lower bound.
    return total / elapsed, f"{clients} Python client processes, {clients * connections} keep-alive connections"
