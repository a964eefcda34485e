"""A fast HTTP/1.1 receiver for postbacks: several processes that respond 200 at once.

Each worker process listens on its own socket bound to the same port with
SO_REUSEPORT, so the kernel spreads connections over the workers. A worker
is a minimal asyncio Protocol: it finds the end of each request head, skips
a body by its Content-Length, counts the request and writes a fixed
response, keeping the connection open. Pipelined requests get their
responses in order. asyncio is fine here because the receiver is a
benchmark tool, not part of the daemon.

The workers count requests in shared memory. For latency runs they also
record each request target with its arrival time on the monotonic clock
(CLOCK_MONOTONIC is system-wide on Linux, so the times compare with those
taken in other processes).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.connection
import socket
import time
from urllib.parse import parse_qs, urlsplit

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"

# Seconds to wait for the workers to start or stop.
WORKER_TIMEOUT = 30.0


class _Shared:
    """Counters the workers write and the parent reads: requests, first and last arrival per worker."""

    def __init__(self, context: multiprocessing.context.BaseContext, workers: int) -> None:
        self.counts = context.Array("q", workers, lock=False)
        self.first = context.Array("d", workers, lock=False)
        self.last = context.Array("d", workers, lock=False)


class _HttpProtocol(asyncio.Protocol):
    def __init__(self, worker: _Worker) -> None:
        self.worker = worker
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        start = 0
        complete = 0
        while True:
            end = buffer.find(b"\r\n\r\n", start)
            if end < 0:
                break
            head = buffer[start:end]
            body_length = 0 if head.startswith(b"GET ") else _content_length(head)
            if end + 4 + body_length > len(buffer):
                break
            self.worker.arrived(head)
            complete += 1
            start = end + 4 + body_length
        self.buffer = buffer[start:]
        if complete:
            assert self.transport is not None
            self.transport.write(RESPONSE * complete)


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


class _Worker:
    def __init__(self, index: int, shared: _Shared) -> None:
        self.index = index
        self.shared = shared
        self.recording = False
        self.records: list[tuple[bytes, float]] = []

    def arrived(self, head: bytes) -> None:
        now = time.monotonic()
        shared, index = self.shared, self.index
        if not shared.counts[index]:
            shared.first[index] = now
        shared.counts[index] += 1
        shared.last[index] = now
        if self.recording:
            self.records.append((head[: head.find(b"\r\n")], now))


def _run_worker(index: int, port: int, shared: _Shared, commands: multiprocessing.connection.Connection) -> None:
    """Serve on 127.0.0.1:``port`` until the parent sends "stop"."""
    worker = _Worker(index, shared)
    loop = asyncio.new_event_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(1024)
    server = loop.run_until_complete(loop.create_server(lambda: _HttpProtocol(worker), sock=sock))

    def on_command() -> None:
        command, argument = commands.recv()
        if command == "record":
            worker.recording = argument
        elif command == "dump":
            commands.send(worker.records)
            worker.records = []
        elif command == "stop":
            loop.stop()

    loop.add_reader(commands.fileno(), on_command)
    commands.send(("ready", None))
    try:
        loop.run_forever()
    finally:
        server.close()
        loop.close()


class Arrival:
    """One request the receiver recorded: the partner's network, the event id and the arrival time."""

    __slots__ = ("network", "event_id", "time")

    def __init__(self, network: str, event_id: str, time: float) -> None:
        self.network = network
        self.event_id = event_id
        self.time = time


def parse_arrival(request_line: bytes, when: float) -> Arrival:
    """Read the network and the event id from a request line such as ``GET /pb/net1?id=e-1&... HTTP/1.1``."""
    target = request_line.split(b" ")[1].decode()
    parts = urlsplit(target)
    network = parts.path.rsplit("/", 1)[-1]
    event_id = parse_qs(parts.query).get("id", [""])[0]
    return Arrival(network, event_id, when)


class MultiProcessReceiver:
    """``workers`` receiver processes on one loopback port; use as a context manager."""

    def __init__(self, workers: int = 2) -> None:
        self.workers = workers
        context = multiprocessing.get_context("spawn")
        self._shared = _Shared(context, workers)
        # The port is taken by a socket that does not listen, so no other
        # program can bind it before the workers do.
        self._reservation = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._reservation.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        self._reservation.bind(("127.0.0.1", 0))
        self.port = self._reservation.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._pipes: list[multiprocessing.connection.Connection] = []
        self._processes: list[multiprocessing.process.BaseProcess] = []
        for index in range(workers):
            parent_end, child_end = context.Pipe()
            process = context.Process(
                target=_run_worker, args=(index, self.port, self._shared, child_end), name=f"bench-receiver-{index}",
                daemon=True,
            )
            process.start()
            self._pipes.append(parent_end)
            self._processes.append(process)
        for pipe in self._pipes:
            if not pipe.poll(WORKER_TIMEOUT):
                raise RuntimeError(f"A receiver worker did not start within {WORKER_TIMEOUT:.0f} s.")
            pipe.recv()
        self._reservation.close()

    def count(self) -> int:
        return sum(self._shared.counts)

    def first_last(self) -> tuple[float, float]:
        """Monotonic times of the first and the last request of all workers."""
        active = [i for i in range(self.workers) if self._shared.counts[i]]
        if not active:
            return 0.0, 0.0
        return min(self._shared.first[i] for i in active), max(self._shared.last[i] for i in active)

    def reset(self) -> None:
        for index in range(self.workers):
            self._shared.counts[index] = 0
            self._shared.first[index] = 0.0
            self._shared.last[index] = 0.0

    def wait_for(self, count: int, timeout: float) -> bool:
        """Wait until ``count`` requests arrived or ``timeout`` seconds passed; return whether they did."""
        deadline = time.monotonic() + timeout
        while self.count() < count:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def record(self, on: bool) -> None:
        for pipe in self._pipes:
            pipe.send(("record", on))

    def arrivals(self) -> list[Arrival]:
        """Return and forget the requests recorded since ``record(True)``."""
        arrivals: list[Arrival] = []
        for pipe in self._pipes:
            pipe.send(("dump", None))
            arrivals.extend(parse_arrival(line, when) for line, when in pipe.recv())
        return arrivals

    def close(self) -> None:
        for pipe in self._pipes:
            try:
                pipe.send(("stop", None))
            except OSError:
                pass
        for process in self._processes:
            process.join(WORKER_TIMEOUT)
            if process.is_alive():
                process.kill()
                process.join()

    def __enter__(self) -> MultiProcessReceiver:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
