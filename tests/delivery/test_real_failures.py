"""Failures of real connections on 127.0.0.1: refused, reset, and a response that trickles in."""

from __future__ import annotations

import time

import pytest
import trio

from postbackd.actors._delivery import DeliveryActor, PreparedRequest
from tests.delivery.harness import make_pending
from tests.delivery.servers import RawServer, closed_port, reset, trickle


async def attempt_once(url: str, attempt_timeout: float = 5.0):
    """Make one attempt with the daemon's own HTTP client and return its record."""
    records = []

    async def record(attempt) -> None:
        records.append(attempt)

    def prepare(pending) -> PreparedRequest:
        return PreparedRequest("GET", url, [], None, url, 0)

    actor = DeliveryActor("app1", "netA", prepare=prepare, record_attempt=record,
                          attempt_timeout=attempt_timeout, allow_private_endpoints=True)
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        actor.schedule(make_pending(due=time.time()))
        while not records:
            await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    return records[0]


@pytest.fixture
def raw_server(request):
    server = RawServer(request.param)
    yield server
    server.close()


async def test_connection_refused_is_connection_failure():
    record = await attempt_once(f"http://127.0.0.1:{closed_port()}/pb")

    assert record.failure_class == "connection"
    assert "Connection failed" in record.error
    assert record.status_code is None


@pytest.mark.parametrize("raw_server", [reset], indirect=True)
async def test_connection_reset_is_connection_failure(raw_server):
    record = await attempt_once(f"{raw_server.url}/pb")

    assert record.failure_class == "connection"
    assert record.status_code is None
    assert raw_server.connections == 1


@pytest.mark.parametrize("raw_server", [trickle], indirect=True)
async def test_trickling_status_line_hits_the_attempt_deadline(raw_server):
    # Each byte arrives well within httpx's per-read timeout, which is the
    # attempt timeout too, so only the deadline over the whole attempt ends it.
    record = await attempt_once(f"{raw_server.url}/pb", attempt_timeout=1.0)

    assert record.failure_class == "timeout"
    assert record.error == "No response within the attempt timeout of 1 s."
    assert record.status_code is None
