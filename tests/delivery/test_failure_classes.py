"""Failure classes, retries and attempt records, on trio's virtual clock."""

from __future__ import annotations

import httpx
import pytest
import trio

from tests.delivery.harness import (
    EPOCH,
    Harness,
    make_pending,
    raise_error,
    respond,
    respond_in_turn,
    response,
    run_for,
)

# Long enough for every retry of the tests' schedule (10 s, 20 s, 40 s) and more.
LONG = 100_000


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
async def test_2xx_is_delivered(autojump_clock, status):
    harness = Harness(respond(status))

    await run_for(harness, [make_pending()], LONG)

    assert len(harness.requests) == 1
    record = harness.records[0]
    assert record.outcome == "delivered"
    assert record.status_code == status
    assert record.failure_class is None
    assert record.error is None


@pytest.mark.parametrize(
    ("status", "failure_class"),
    [
        (500, "server_error"),
        (502, "server_error"),
        (503, "server_error"),
        (504, "server_error"),
        (408, "timeout"),
        (429, "throttled"),
        (301, "redirect"),
        (302, "redirect"),
        (307, "redirect"),
        (308, "redirect"),
    ],
)
async def test_retryable_status_is_retried(autojump_clock, status, failure_class):
    harness = Harness(respond_in_turn(status, 200), retries=3)

    await run_for(harness, [make_pending()], LONG)

    assert harness.outcomes() == ["retry", "delivered"]
    first = harness.records[0]
    assert first.failure_class == failure_class
    assert first.status_code == status
    assert first.error.startswith(f"HTTP {status} ")


async def test_redirect_is_not_followed(autojump_clock):
    harness = Harness(respond(302, {"Location": "https://elsewhere.example/pb"}), retries=1)

    await run_for(harness, [make_pending()], LONG)

    hosts = [request.url.host for _, request in harness.requests]
    assert hosts == ["partner.example", "partner.example"]
    assert harness.outcomes() == ["retry", "failed"]
    assert harness.records[-1].failure_class == "redirect"


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 410, 422, 451])
async def test_other_4xx_fails_at_once(autojump_clock, status):
    harness = Harness(respond(status), retries=3)

    await run_for(harness, [make_pending()], LONG)

    assert len(harness.requests) == 1
    record = harness.records[0]
    assert record.outcome == "failed"
    assert record.failure_class == "rejected_by_partner"
    assert record.next_due is None
    assert harness.actor.pending == {}


@pytest.mark.parametrize(
    ("error", "failure_class"),
    [
        (httpx.ConnectTimeout("connect timed out"), "timeout"),
        (httpx.ReadTimeout("read timed out"), "timeout"),
        (httpx.WriteTimeout("write timed out"), "timeout"),
        (httpx.PoolTimeout("no connection free"), "timeout"),
        (httpx.ConnectError("[Errno 111] Connection refused"), "connection"),
        (httpx.ReadError("[Errno 104] Connection reset by peer"), "connection"),
        (httpx.WriteError("[Errno 32] Broken pipe"), "connection"),
        (httpx.RemoteProtocolError("Server disconnected without sending a response."), "connection"),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else value,
)
async def test_transport_error_is_retried(autojump_clock, error, failure_class):
    harness = Harness(raise_error(error), retries=2)

    await run_for(harness, [make_pending()], LONG)

    assert harness.outcomes() == ["retry", "retry", "failed"]
    assert {record.failure_class for record in harness.records} == {failure_class}
    assert all(record.status_code is None for record in harness.records)
    assert str(error) in harness.records[-1].error


async def test_used_up_attempts_fail_with_the_last_error(autojump_clock):
    harness = Harness(respond_in_turn(500, 429, 503), retries=2)

    await run_for(harness, [make_pending()], LONG)

    assert harness.outcomes() == ["retry", "retry", "failed"]
    last = harness.records[-1]
    assert last.failure_class == "server_error"
    assert last.status_code == 503
    assert last.error == "HTTP 503 Service Unavailable"


async def test_failed_postback_is_never_retried_again(autojump_clock):
    harness = Harness(respond(500), retries=1)

    async with trio.open_nursery() as nursery:
        await nursery.start(harness.actor.run)
        harness.actor.schedule(make_pending())
        await trio.sleep(1000)
        assert harness.outcomes() == ["retry", "failed"]
        await trio.sleep(10 * 86400)
        nursery.cancel_scope.cancel()

    assert len(harness.requests) == 2
    assert harness.actor.pending == {}


async def test_render_error_fails_without_a_request(autojump_clock):
    harness = Harness(respond(200), retries=3, render_error="The value of {event_data.note} contains a CR.")

    await run_for(harness, [make_pending()], LONG)

    assert harness.requests == []
    record = harness.records[0]
    assert record.outcome == "failed"
    assert record.failure_class == "render_error"
    assert record.error == "The value of {event_data.note} contains a CR."


async def test_attempt_record_keeps_every_detail(autojump_clock):
    async def slow_404(request: httpx.Request) -> httpx.Response:
        await trio.sleep(0.25)
        return response(404, body=b"n" * 3000)

    harness = Harness(slow_404)
    pending = make_pending(due=EPOCH + 7)

    await run_for(harness, [pending], 100)

    record = harness.records[0]
    assert record.postback_id == "pb_0001"
    assert record.app == "app1"
    assert record.network == "netA"
    assert record.event_seq == 1
    assert record.attempt == 1
    assert record.started == EPOCH + 7
    assert record.duration == 0.25
    assert record.manual is False
    assert record.status_code == 404
    assert record.failure_class == "rejected_by_partner"
    assert record.error == "HTTP 404 Not Found"
    assert record.response_head == "n" * 1024
    assert record.method == "GET"
    assert record.url == "https://partner.example/pb?id=pb_0001"


async def test_secrets_are_masked_in_error_and_response(autojump_clock):
    secret = "s3cr3t-key-42"

    async def echo(request: httpx.Request) -> httpx.Response:
        return response(400, body=f"bad key {secret} in {request.url}".encode())

    harness = Harness(echo, secrets=(secret,), url=f"https://partner.example/pb/{secret}")

    await run_for(harness, [make_pending()], 100)

    record = harness.records[0]
    assert secret not in record.response_head
    assert "bad key *** in https://partner.example/pb/***" in record.response_head


async def test_attempt_numbers_continue_across_retries(autojump_clock):
    harness = Harness(respond_in_turn(500, 500, 200), retries=3)

    await run_for(harness, [make_pending()], LONG)

    assert [record.attempt for record in harness.records] == [1, 2, 3]
    ids = {request.url.params["id"] for _, request in harness.requests}
    assert ids == {"pb_0001"}


async def test_non_ascii_header_is_sent_as_utf8(autojump_clock):
    harness = Harness(respond(200), headers=[("X-City", "Zürich")])

    await run_for(harness, [make_pending()], 100)

    assert harness.outcomes() == ["delivered"]
    assert harness.requests[0][1].headers.raw[-1] == (b"X-City", "Zürich".encode())


async def test_invalid_request_fails_at_once(autojump_clock):
    harness = Harness(raise_error(httpx.LocalProtocolError("Illegal header value b'a\\x01b'")), retries=3)

    await run_for(harness, [make_pending()], LONG)

    assert len(harness.requests) == 1
    assert harness.records[0].outcome == "failed"
    assert harness.records[0].failure_class == "render_error"
    assert harness.records[0].error == "The request is invalid: Illegal header value b'a\\x01b'."
