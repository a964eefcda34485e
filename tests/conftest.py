"""Fixtures that run the real parts: a daemon subprocess, HTTP receivers on loopback, the CLI."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
from click.testing import CliRunner

from postbackd.cli import main as cli_main
from postbackd.cli._receiver import ReceiverServer

# How long a test waits for the daemon or a delivery before it fails.
WAIT_SECONDS = 20.0


class RecordingServer:
    """Waiting and closing for a test HTTP server that appends to ``requests`` under ``_lock``."""

    requests: list[dict]
    _lock: threading.Lock
    server: ReceiverServer

    def wait_for(self, count: int, timeout: float = WAIT_SECONDS) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.requests) >= count:
                    return list(self.requests)
            time.sleep(0.02)
        raise AssertionError(f"receiver got {len(self.requests)} requests, expected {count}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Receiver(RecordingServer):
    """An HTTP server on 127.0.0.1 that records every request and responds with ``status``."""

    def __init__(self, status: int = 200, delay: float = 0.0) -> None:
        self.requests: list[dict] = []
        self.status = status
        self.delay = delay
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                with receiver._lock:
                    receiver.requests.append({
                        "method": self.command,
                        "target": self.path,
                        "path": parts.path,
                        "query": dict(parse_qsl(parts.query, keep_blank_values=True)),
                        "headers": dict(self.headers.items()),
                        "body": body,
                    })
                if receiver.delay:
                    time.sleep(receiver.delay)
                self.send_response(receiver.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            do_GET = do_POST = _handle

            def log_message(self, *args: object) -> None:
                pass

        self.server = ReceiverServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()



@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


class Daemon:
    """A ``postbackd run`` subprocess on a throw-away data directory."""

    def __init__(self, data_dir: Path, socket_dir: Path, extra_args: list[str] | None = None) -> None:
        self.data_dir = data_dir
        self.socket_dir = socket_dir
        self.extra_args = extra_args or []
        self.process: subprocess.Popen | None = None
        self.log_path = data_dir.parent / "daemon.log"

    def start(self, *args: str) -> Daemon:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable, "-m", "postbackd", "run",
            "--data-dir", str(self.data_dir), "--socket-dir", str(self.socket_dir),
            "--config", str(self._settings_file()),
            "--allow-private-endpoints", "--retry-delays", "1s,1s", "--shutdown-grace", "2s",
            *self.extra_args, *args,
        ]
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=log)
        log.close()
        self.wait_ready()
        return self

    def _settings_file(self) -> Path:
        path = self.data_dir.parent / "postbackd.toml"
        if not path.exists():
            path.write_text("# test settings: everything comes from the command line\n")
        return path

    def wait_ready(self) -> None:
        deadline = time.monotonic() + WAIT_SECONDS
        control = self.socket_dir / "control.sock"
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"daemon exited with {self.process.returncode}:\n{self.log()}")
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                    sock.connect(str(control))
                    sock.sendall(b'{"op": "ping"}\n')
                    if b'"ok":true' in sock.recv(1024):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"daemon not ready after {WAIT_SECONDS} s:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(WAIT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def cli(self, *args: str, input: str | bytes | None = None, expect: int | None = 0):
        """Run a postbackd command against this daemon through click's CliRunner."""
        result = CliRunner().invoke(cli_main, [*args, "--socket-dir", str(self.socket_dir)], input=input)
        if expect is not None and result.exit_code != expect:
            raise AssertionError(
                f"postbackd {' '.join(args)} exited {result.exit_code}, expected {expect}:\n{result.output}"
                f"\n{result.exception!r}"
            )
        return result

    def control(self, op: str, **args: object) -> dict:
        """Send one raw control request and return the decoded response."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(str(self.socket_dir / "control.sock"))
            sock.sendall(json.dumps({"op": op, "args": args}).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        return json.loads(data)

    def wait_status(self, predicate, timeout: float = WAIT_SECONDS) -> dict:
        """Poll the status command until ``predicate(status)`` holds."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.control("status")["result"]
            if predicate(status):
                return status
            if time.monotonic() > deadline:
                raise AssertionError(f"status never matched: {status}")
            time.sleep(0.05)


@pytest.fixture
def short_tmp():
    """A short directory for Unix sockets, whose paths are limited to 107 bytes."""
    path = Path(tempfile.mkdtemp(prefix="pbd-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def daemon(tmp_path, short_tmp):
    instance = Daemon(tmp_path / "data", short_tmp)
    yield instance
    if instance.process is not None and instance.process.poll() is None:
        instance.stop()


def write_lines(path: Path, objects: list) -> Path:
    """Write JSON lines; strings are written as they are (for malformed lines)."""
    with path.open("w", encoding="utf-8") as file:
        for item in objects:
            file.write(item if isinstance(item, str) else json.dumps(item, ensure_ascii=False))
            file.write("\n")
    return path


def setup_app(daemon: Daemon, receiver: Receiver, *, app: str = "demo-app", network: str = "localnet",
              url_query: str = "event={event_name}&id={event_id}&pb={postback_id}&device={device_id}",
              events: tuple[str, ...] = ("install", "Purchase"), method: str = "all") -> None:
    """Register an app, a custom partner pointing at ``receiver`` and its postbacks."""
    daemon.cli("app", "add", app, "--platform", "android", "--bundle-id", "com.example.demo", "--name", "Demo")
    daemon.cli("partner", "add", app, network, "--integration", "custom", "--field", f"url={receiver.url}/pb?{url_query}")
    for event in events:
        daemon.cli("postback", "add", app, network, event, "--method", method)

