"""Helpers that run the real daemon the way systemd does: NOTIFY_SOCKET and passed sockets."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.conftest import WAIT_SECONDS, Daemon

# Plays systemd's part between fork and exec: moves the passed descriptors to 3, 4, ..., sets
# LISTEN_PID to the process id that exec keeps, then execs the rest of argv with this Python.
LAUNCHER = """
import fcntl, os, sys
sources = [int(fd) for fd in sys.argv[1].split(",") if fd]
moved = [fcntl.fcntl(fd, fcntl.F_DUPFD, 100) for fd in sources]
for fd in sources:
    os.close(fd)
for index, fd in enumerate(moved):
    os.dup2(fd, 3 + index)
    os.close(fd)
os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(sys.executable, [sys.executable, *sys.argv[2:]])
"""


def run_arguments(daemon: Daemon, *args: str) -> list[str]:
    """Return the arguments of `postbackd run` that the `daemon` fixture uses, plus `args`."""
    settings = daemon.data_dir.parent / "postbackd.toml"
    if not settings.exists():
        settings.write_text("# test settings: everything comes from the command line\n")
    return [
        "-m", "postbackd", "run",
        "--data-dir", str(daemon.data_dir), "--socket-dir", str(daemon.socket_dir),
        "--config", str(settings),
        "--allow-private-endpoints", "--retry-delays", "1s,1s", "--shutdown-grace", "2s",
        *args,
    ]


def spawn(
    daemon: Daemon,
    *args: str,
    environ: dict[str, str] | None = None,
    passed: list[socket.socket] | None = None,
) -> subprocess.Popen:
    """Start `postbackd run` for `daemon` without waiting for it to be ready.

    `environ` adds variables to the environment. `passed` sockets are handed over by socket
    activation, as file descriptors 3, 4, ... with LISTEN_PID set to the daemon's pid. The process
    is stored in `daemon.process`, so the fixture stops it and `daemon.log()` shows its output.
    """
    daemon.data_dir.mkdir(parents=True, exist_ok=True)
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("LISTEN_", "NOTIFY_SOCKET", "WATCHDOG_"))}
    env.update(environ or {})
    command = [sys.executable, *run_arguments(daemon, *args)]
    fds: list[int] = []
    if passed:
        fds = [sock.fileno() for sock in passed]
        command = [sys.executable, "-c", LAUNCHER, ",".join(map(str, fds)), *command[1:]]
    with open(daemon.log_path, "ab") as log:
        daemon.process = subprocess.Popen(command, env=env, stdout=log, stderr=log, pass_fds=fds)
    return daemon.process


def wait_exit(daemon: Daemon) -> int:
    """Wait for the daemon process to exit and return its status."""
    assert daemon.process is not None
    try:
        return daemon.process.wait(WAIT_SECONDS)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"daemon still running after {WAIT_SECONDS} s:\n{daemon.log()}") from None


def wait_for_log(daemon: Daemon, text: str, count: int = 1) -> str:
    """Wait until the daemon's log contains `text` `count` times and return the log."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        log = daemon.log()
        if log.count(text) >= count:
            return log
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} not {count} times in the daemon log:\n{log}")
        time.sleep(0.05)


def listening_socket(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.listen()
    return sock


def send_ingest(path: Path, lines: list[dict]) -> list[dict]:
    """Send input lines to the ingest socket at `path` and return the responses."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(WAIT_SECONDS)
        sock.connect(str(path))
        sock.sendall(b"".join(json.dumps(line).encode() + b"\n" for line in lines))
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return [json.loads(line) for line in data.splitlines()]


class NotifySocket:
    """A datagram socket in systemd's place at NOTIFY_SOCKET, recording every message."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.messages: list[str] = []
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.bind(str(path))

    def wait_for(self, predicate: Callable[[str], bool] | str, timeout: float = WAIT_SECONDS) -> str:
        """Receive until a message matches `predicate` (or equals it, for a string) and return it."""
        matches = (lambda message: message == predicate) if isinstance(predicate, str) else predicate
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no matching notification; received: {self.messages}")
            self._socket.settimeout(remaining)
            try:
                message = self._socket.recv(4096).decode("utf-8")
            except TimeoutError:
                continue
            self.messages.append(message)
            if matches(message):
                return message

    def close(self) -> None:
        self._socket.close()
