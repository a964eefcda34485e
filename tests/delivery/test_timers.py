"""Delivery delay and retry timers on trio's virtual clock."""

from __future__ import annotations

import email.utils

import httpx
import pytest
import trio

from postbackd.actors._delivery import parse_retry_after
from tests.delivery.harness import EPOCH, Harness, make_pending, respond, response, run_for


async def test_postback_goes_out_at_its_due_time(autojump_clock):
    harness = Harness(respond(200))
    pending = make_pending(due=EPOCH + 30)

    async with trio.open_nursery() as nursery:
        await nursery.start(harness.actor.run)
        harness.actor.schedule(pending)
        await trio.sleep(29.9)
        assert harness.requests == []
        await trio.sleep(1)
        nursery.cancel_scope.cancel()

    assert harness.times() == [30.0]
    assert harness.outcomes() == ["delivered"]
    assert harness.actor.pending == {}


async def test_overdue_postback_goes_out_at_once(autojump_clock):
    harness = Harness(respond(200))

    await run_for(harness, [make_pending(due=EPOCH - 3600)], 5)

    assert harness.times() == [0.0]


async def test_postbacks_go_out_in_due_order(autojump_clock):
    harness = Harness(respond(200), concurrency=1)
    pendings = [make_pending(1, EPOCH + 50), make_pending(2, EPOCH + 10), make_pending(3, EPOCH + 30),
                make_pending(4, EPOCH - 5)]

    await run_for(harness, pendings, 100)

    assert harness.times() == [0.0, 10.0, 30.0, 50.0]
    assert [record.postback_id for record in harness.records] == ["pb_0004", "pb_0002", "pb_0003", "pb_0001"]


async def test_earlier_postback_wakes_the_sleeping_timer(autojump_clock):
    harness = Harness(respond(200))

    async with trio.open_nursery() as nursery:
        await nursery.start(harness.actor.run)
        harness.actor.schedule(make_pending(1, EPOCH + 100))
        await trio.sleep(5)
        harness.actor.schedule(make_pending(2, EPOCH + 20))
        await trio.sleep(200)
        nursery.cancel_scope.cancel()

    assert harness.times() == [20.0, 100.0]


async def test_many_pending_postbacks_share_one_timer(autojump_clock):
    harness = Harness(respond(200))
    pendings = [make_pending(n, EPOCH + 60 + n % 7) for n in range(2000)]

    await run_for(harness, pendings, 120)

    assert len(harness.records) == 2000
    assert set(harness.times()) == {60.0 + n for n in range(7)}


@pytest.mark.parametrize("seed", range(12))
async def test_retry_spacing_stays_within_jitter(autojump_clock, seed):
    harness = Harness(respond(500), retries=3, retry_delays=(10.0, 20.0, 40.0), seed=seed)

    await run_for(harness, [make_pending()], 10_000)

    times = harness.times()
    gaps = [later - earlier for earlier, later in zip(times, times[1:])]
    assert len(times) == 4
    assert 8.0 <= gaps[0] <= 12.0
    assert 16.0 <= gaps[1] <= 24.0
    assert 32.0 <= gaps[2] <= 48.0
    assert harness.outcomes() == ["retry", "retry", "retry", "failed"]
    assert [record.next_due for record in harness.records[:3]] == [EPOCH + t for t in times[1:]]


async def test_jitter_varies_between_postbacks(autojump_clock):
    harness = Harness(respond(503), retries=1, retry_delays=(100.0,))
    pendings = [make_pending(n) for n in range(50)]

    await run_for(harness, pendings, 1000)

    retries = sorted(when for when, _ in harness.requests if when > 0)
    assert len(retries) == 50
    assert 80.0 <= retries[0] < 90.0
    assert 110.0 < retries[-1] <= 120.0


async def test_last_retry_delay_repeats(autojump_clock):
    harness = Harness(respond(502), retries=5, retry_delays=(10.0, 20.0))

    await run_for(harness, [make_pending()], 10_000)

    times = harness.times()
    gaps = [later - earlier for earlier, later in zip(times, times[1:])]
    assert len(times) == 6
    assert 8.0 <= gaps[0] <= 12.0
    assert all(16.0 <= gap <= 24.0 for gap in gaps[1:])


async def test_zero_retries_fail_after_one_attempt(autojump_clock):
    harness = Harness(respond(500), retries=0)

    await run_for(harness, [make_pending()], 10_000)

    assert harness.times() == [0.0]
    assert harness.outcomes() == ["failed"]


def http_date(epoch: float) -> str:
    return email.utils.formatdate(epoch, usegmt=True)


@pytest.mark.parametrize(
    ("status", "retry_after", "expected_gap"),
    [
        (429, "15", 15.0),
        (503, "15", 15.0),
        (429, "100", 20.0),
        (503, "100", 20.0),
        (429, http_date(EPOCH + 15), 15.0),
        (503, http_date(EPOCH + 15), 15.0),
        (503, http_date(EPOCH + 3600), 20.0),
    ],
    ids=["429-seconds", "503-seconds", "429-seconds-capped", "503-seconds-capped", "429-date", "503-date",
         "503-date-capped"],
)
async def test_retry_after_sets_the_wait(autojump_clock, status, retry_after, expected_gap):
    harness = Harness(respond(status, {"Retry-After": retry_after}), retries=1, retry_delays=(10.0,))

    await run_for(harness, [make_pending()], 1000)

    assert harness.times() == [0.0, expected_gap]


@pytest.mark.parametrize(
    ("status", "retry_after"),
    [
        (429, "2"),
        (503, http_date(EPOCH - 60)),
        (500, "15"),
        (429, "soon"),
        (429, "-5"),
    ],
    ids=["shorter-than-step", "date-in-the-past", "ignored-on-500", "invalid-text", "negative"],
)
async def test_retry_after_never_shortens_the_step(autojump_clock, status, retry_after):
    harness = Harness(respond(status, {"Retry-After": retry_after}), retries=1, retry_delays=(10.0,))

    await run_for(harness, [make_pending()], 1000)

    times = harness.times()
    assert len(times) == 2
    assert 8.0 <= times[1] <= 12.0


async def test_attempt_deadline_ends_a_hanging_request(autojump_clock):
    async def hang(request: httpx.Request) -> httpx.Response:
        await trio.sleep(10_000)
        return response(200)

    harness = Harness(hang, retries=0, attempt_timeout=10.0)

    await run_for(harness, [make_pending()], 100)

    record = harness.records[0]
    assert record.failure_class == "timeout"
    assert record.duration == 10.0
    assert record.error == "No response within the attempt timeout of 10 s."


class TrickleStream(httpx.AsyncByteStream):
    """A response body of one byte per second that never ends."""

    async def __aiter__(self):
        while True:
            yield b"x"
            await trio.sleep(1)


async def test_attempt_deadline_ends_a_trickling_body(autojump_clock):
    async def trickle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=TrickleStream())

    harness = Harness(trickle, retries=0, attempt_timeout=10.0)

    await run_for(harness, [make_pending()], 100)

    record = harness.records[0]
    assert record.duration == 10.0
    assert record.outcome == "delivered"
    assert record.status_code == 200
    assert record.response_head == "x" * 10


async def test_resend_of_waiting_postback_starts_manual_round(autojump_clock):
    harness = Harness(respond(500), retries=1, retry_delays=(100.0,))

    async with trio.open_nursery() as nursery:
        await nursery.start(harness.actor.run)
        harness.actor.schedule(make_pending())
        await trio.sleep(5)
        assert harness.actor.resend("pb_0001", EPOCH + trio.current_time())
        await trio.sleep(1000)
        nursery.cancel_scope.cancel()

    times = harness.times()
    assert times[:2] == [0.0, 5.0]
    assert [record.manual for record in harness.records] == [False, True, True]
    assert [record.attempt for record in harness.records] == [1, 2, 3]
    assert harness.outcomes() == ["retry", "retry", "failed"]


async def test_resend_of_unknown_postback_returns_false(autojump_clock):
    harness = Harness(respond(200))

    assert not harness.actor.resend("pb_9999", EPOCH)


async def test_resend_during_attempt_starts_no_second_request(autojump_clock):
    async def slow(request: httpx.Request) -> httpx.Response:
        await trio.sleep(3)
        return response(200)

    harness = Harness(slow)

    async with trio.open_nursery() as nursery:
        await nursery.start(harness.actor.run)
        harness.actor.schedule(make_pending())
        await trio.sleep(1)
        assert harness.actor.in_flight_ids == {"pb_0001"}
        harness.actor.resend("pb_0001", EPOCH + trio.current_time())
        await trio.sleep(100)
        nursery.cancel_scope.cancel()

    assert harness.times() == [0.0]
    assert [record.attempt for record in harness.records] == [1]
    assert harness.actor.pending == {}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        (http_date(EPOCH + 90), 90.0),
        ("Fri, 15 Jan 2027 08:01:30 -0000", 90.0),
        (http_date(EPOCH - 90), 0.0),
        ("", None),
        (None, None),
        ("²", None),
        ("1.5", None),
        ("-3", None),
        ("tomorrow", None),
        ("Mon, 01 Jan 99999 00:00:00 GMT", None),
    ],
)
def test_parse_retry_after(value, expected):
    assert parse_retry_after(value, EPOCH) == expected
