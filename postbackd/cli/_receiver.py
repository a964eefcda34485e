"""``postbackd receiver``: a local HTTP server that prints every request it gets.

Operators point a partner's template at it to see exactly what postbackd
would send. It uses the standard library's threading HTTP server, because it
runs apart from the daemon and serves one person's tries.
"""

from __future__ import annotations

import json
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import click

# Maximum request body read, in bytes. A longer body gets status 413.
MAX_BODY_BYTES = 1024 * 1024


class ReceiverServer(ThreadingHTTPServer):
    """The standard library's threading server with a longer listen queue.

    Its default queue of 5 overflows when the daemon opens a partner's
    connections at once, and each dropped connection attempt costs a 1 s
    SYN retransmission.
    """

    request_queue_size = 128
    daemon_threads = True


def describe_request(method: str, target: str, headers: dict[str, str], body: bytes) -> dict:
    """Split a request into the parts the receiver prints."""
    parsed = urllib.parse.urlsplit(target)
    return {
        "method": method,
        "path": urllib.parse.unquote(parsed.path),
        "query": urllib.parse.parse_qsl(parsed.query, keep_blank_values=True),
        "raw_target": target,
        "headers": headers,
        "body": body.decode("utf-8", "replace"),
    }


def format_request(request: dict) -> str:
    lines = [f"{request['method']} {request['path']}"]
    for name, value in request["query"]:
        lines.append(f"  {name} = {value}")
    for name, value in request["headers"].items():
        if name.lower().startswith("x-") or name.lower() in ("content-type", "authorization"):
            lines.append(f"  header {name}: {value}")
    if request["body"]:
        lines.append(f"  body: {request['body']}")
    return "\n".join(lines)


def make_handler(status: int, as_json: bool, lock: threading.Lock):
    class Handler(BaseHTTPRequestHandler):
        server_version = "postbackd-receiver"
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                self.send_response(413)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = self.rfile.read(length) if length else b""
            request = describe_request(self.command, self.path, dict(self.headers.items()), body)
            text = json.dumps(request, ensure_ascii=False) if as_json else format_request(request)
            with lock:
                sys.stdout.write(text + "\n")
                sys.stdout.flush()
            payload = b"ok\n"
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = _handle

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True,
              help="Port to listen on; 0 picks a free one.")
@click.option("--status", "status_code", type=click.IntRange(100, 599), default=200, show_default=True,
              help="HTTP status of every response, to try how postbackd handles failures.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per request.")
def receiver(host: str, port: int, status_code: int, as_json: bool) -> None:
    """Print every HTTP request received (method, path, decoded query, body) and respond to it."""
    try:
        server = ReceiverServer((host, port), make_handler(status_code, as_json, threading.Lock()))
    except OSError as exc:
        raise click.ClickException(f"Cannot listen on {host}:{port}: {exc.strerror}. Pick another --port.") from None
    actual_host, actual_port = server.server_address[:2]
    click.echo(f"listening on http://{actual_host}:{actual_port}/", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
