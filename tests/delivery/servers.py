"""Misbehaving partners on 127.0.0.1: a scripted HTTP receiver, a server that never responds,
one that trickles its response, one that resets the connection, and a port without a listener."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qsl, urlsplit

from postbackd.cli._receiver import ReceiverServer
from tests.conftest import RecordingServer

# How long a test waits for a request before it fails.
WAIT_SECONDS = 20.0

# (status, headers, body) for one request.
Reply = tuple[int, dict[str, str], bytes]


def echo_ok(request: dict) -> Reply:
    return 200, {}, b"ok"


class _QuietServer(ReceiverServer):
    def handle_error(self, request, client_address) -> None:
        # A killed or timed-out client leaves a broken connection behind; that is expected here.
        pass


class ScriptedReceiver(RecordingServer):
    """An HTTP server on 127.0.0.1 that records requests and responds with ``reply(request)``."""

    def __init__(self, reply: Callable[[dict], Reply] = echo_ok) -> None:
        self.reply = reply
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                request = {
                    "method": self.command,
                    "target": self.path,
                    "path": parts.path,
                    "query": dict(parse_qsl(parts.query, keep_blank_values=True)),
                    "headers": dict(self.headers.items()),
                    "body": body,
                }
                with receiver._lock:
                    receiver.requests.append(request)
                status, headers, content = receiver.reply(request)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = _handle

            def log_message(self, *args: object) -> None:
                pass

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


class RawServer:
    """A TCP server on 127.0.0.1 that hands each connection to ``serve(connection, stop)`` in a thread."""

    def __init__(self, serve: Callable[[socket.socket, threading.Event], None]) -> None:
        self._serve = serve
        self.stop = threading.Event()
        self.connections = 0
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                connection, _ = self.listener.accept()
            except (TimeoutError, OSError):
                continue
            with self._lock:
                self.connections += 1
                self._sockets.append(connection)
            threading.Thread(target=self._run, args=(connection,), daemon=True).start()

    def _run(self, connection: socket.socket) -> None:
        try:
            self._serve(connection, self.stop)
        except OSError:
            pass
        finally:
            connection.close()

    def wait_for_connections(self, count: int, timeout: float = WAIT_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        while self.connections < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"server got {self.connections} connections, expected {count}")
            time.sleep(0.02)

    def close(self) -> None:
        self.stop.set()
        self.listener.close()
        with self._lock:
            for connection in self._sockets:
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def read_request_head(connection: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def hang(connection: socket.socket, stop: threading.Event) -> None:
    """Read the request and never respond."""
    read_request_head(connection)
    stop.wait()


def trickle(connection: socket.socket, stop: threading.Event) -> None:
    """Send one byte of the status line every 0.1 s, so no single read waits long."""
    read_request_head(connection)
    for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"y" * 10_000:
        if stop.wait(0.1):
            return
        connection.sendall(bytes([byte]))


def reset(connection: socket.socket, stop: threading.Event) -> None:
    """Read the request, then reset the connection (RST instead of FIN)."""
    read_request_head(connection)
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def closed_port() -> int:
    """A port on 127.0.0.1 that refuses connections."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
