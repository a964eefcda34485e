"""A partner's cookies never come back on later postbacks."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler

from postbackd.actors._endpoints import make_client
from postbackd.cli._receiver import ReceiverServer


class CookieSetter(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[str | None] = []

    def do_GET(self) -> None:
        CookieSetter.seen.append(self.headers.get("Cookie"))
        self.send_response(200)
        self.send_header("Set-Cookie", "partner_uid=abc123; Path=/")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


async def test_partner_cookie_is_not_sent_back():
    server = ReceiverServer(("127.0.0.1", 0), CookieSetter)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    CookieSetter.seen = []
    # A host name, because the cookie jar keeps no cookies for a bare IP address.
    url = f"http://localhost:{server.server_address[1]}/pb"
    try:
        async with make_client(concurrency=2, attempt_timeout=5.0, allow_private=True) as client:
            first = await client.get(url)
            second = await client.get(url)
    finally:
        server.shutdown()
        server.server_close()

    assert first.status_code == 200
    assert second.status_code == 200
    assert CookieSetter.seen == [None, None]
