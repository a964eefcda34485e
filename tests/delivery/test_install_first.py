"""Event postbacks of a device wait for its install postback, on trio's virtual clock."""

from __future__ import annotations

import random

import httpx
import trio

from postbackd.actors._replay import PendingPostback
from postbackd.eventlog import Decision, Event
from tests.delivery.harness import APP, EPOCH, NETWORK, Harness, response, run_for


def postback(event_id: str, device: str, name: str | None = None, due: float = EPOCH) -> PendingPostback:
    """A pending postback of an install (``name`` None) or of an event called ``name``."""
    if name is None:
        event = Event(app=APP, id=event_id, type="install", device=device, time=EPOCH)
    else:
        event = Event(app=APP, id=event_id, type="event", device=device, time=EPOCH, name=name)
    decision = Decision(
        network=NETWORK, postback=name or "install", outcome="scheduled", reason="scheduled",
        postback_id=f"pb_{event_id}", due=due,
    )
    return PendingPostback(1, event, decision, due)


def postback_id_of(request: httpx.Request) -> str:
    return request.url.params["id"]


def scripted(slow: dict[str, float] | None = None, statuses: dict[str, list[int]] | None = None):
    """A handler that waits ``slow[id]`` seconds, then responds with each status of ``statuses[id]`` in turn, then 200."""
    slow = slow or {}
    statuses = {key: list(value) for key, value in (statuses or {}).items()}

    async def handler(request: httpx.Request) -> httpx.Response:
        postback_id = postback_id_of(request)
        await trio.sleep(slow.get(postback_id, 0.0))
        remaining = statuses.get(postback_id)
        status = remaining.pop(0) if remaining else 200
        return response(status)

    return handler


def request_times(harness: Harness) -> dict[str, list[float]]:
    """Virtual start times of the requests, by postback id."""
    times: dict[str, list[float]] = {}
    for when, request in harness.requests:
        times.setdefault(postback_id_of(request), []).append(when)
    return times


def finished_at(harness: Harness, postback_id: str) -> float:
    """Virtual time at which the last attempt of a postback ended."""
    record = [r for r in harness.records if r.postback_id == postback_id][-1]
    return record.started + record.duration - EPOCH


async def test_fast_purchase_waits_for_slow_install(autojump_clock):
    harness = Harness(scripted(slow={"pb_i1": 5.0}))

    await run_for(harness, [postback("i1", "d1"), postback("p1", "d1", "Purchase")], 60)

    assert request_times(harness) == {"pb_i1": [0.0], "pb_p1": [5.0]}
    assert [r.postback_id for r in harness.records] == ["pb_i1", "pb_p1"]
    assert harness.outcomes() == ["delivered", "delivered"]
    assert harness.actor.pending == {}


async def test_other_device_event_is_not_held(autojump_clock):
    harness = Harness(scripted(slow={"pb_i1": 5.0}))
    pendings = [postback("i1", "d1"), postback("p1", "d1", "Purchase"), postback("p2", "d2", "Purchase")]

    await run_for(harness, pendings, 60)

    times = request_times(harness)
    assert times["pb_p2"] == [0.0]
    assert times["pb_p1"] == [5.0]


async def test_events_wait_through_install_retries(autojump_clock):
    harness = Harness(scripted(statuses={"pb_i1": [500, 503]}), retries=3, retry_delays=(10.0, 20.0))
    pendings = [postback("i1", "d1"), postback("p1", "d1", "Purchase"), postback("l1", "d1", "Level")]

    await run_for(harness, pendings, 200)

    install_times = request_times(harness)["pb_i1"]
    assert len(install_times) == 3
    delivered_at = finished_at(harness, "pb_i1")
    assert request_times(harness)["pb_p1"] == [delivered_at]
    assert request_times(harness)["pb_l1"] == [delivered_at]
    assert [r.outcome for r in harness.records if r.postback_id == "pb_i1"] == ["retry", "retry", "delivered"]


async def test_failed_install_releases_its_events(autojump_clock):
    harness = Harness(scripted(statuses={"pb_i1": [500, 500, 500]}), retries=2, retry_delays=(10.0, 20.0))

    await run_for(harness, [postback("i1", "d1"), postback("p1", "d1", "Purchase")], 200)

    install_records = [r for r in harness.records if r.postback_id == "pb_i1"]
    assert [r.outcome for r in install_records] == ["retry", "retry", "failed"]
    assert request_times(harness)["pb_p1"] == [finished_at(harness, "pb_i1")]
    assert [r.outcome for r in harness.records if r.postback_id == "pb_p1"] == ["delivered"]
    assert harness.actor.pending == {}


async def test_install_rejected_at_once_releases_events(autojump_clock):
    harness = Harness(scripted(slow={"pb_i1": 4.0}, statuses={"pb_i1": [400]}))

    await run_for(harness, [postback("i1", "d1"), postback("p1", "d1", "Purchase")], 60)

    assert [(r.postback_id, r.outcome) for r in harness.records] == [("pb_i1", "failed"), ("pb_p1", "delivered")]
    assert request_times(harness) == {"pb_i1": [0.0], "pb_p1": [4.0]}


async def test_event_due_first_waits_for_later_install(autojump_clock):
    harness = Harness(scripted())
    pendings = [postback("i1", "d1", due=EPOCH + 60), postback("p1", "d1", "Purchase", due=EPOCH)]

    await run_for(harness, pendings, 120)

    assert request_times(harness) == {"pb_i1": [60.0], "pb_p1": [60.0]}
    assert [r.postback_id for r in harness.records] == ["pb_i1", "pb_p1"]


async def test_install_scheduled_after_event_still_holds_it(autojump_clock):
    """A restart hands postbacks over in log order, which may put an event before its install."""
    harness = Harness(scripted(slow={"pb_i1": 3.0}))

    await run_for(harness, [postback("p1", "d1", "Purchase"), postback("i1", "d1")], 60)

    assert request_times(harness) == {"pb_i1": [0.0], "pb_p1": [3.0]}


async def test_parked_postback_counts_as_pending(autojump_clock):
    harness = Harness(scripted(statuses={"pb_i1": [500]}), retries=1, retry_delays=(30.0,))
    actor = harness.actor

    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        actor.schedule(postback("i1", "d1"))
        actor.schedule(postback("p1", "d1", "Purchase"))
        await trio.sleep(5)

        assert set(actor.pending) == {"pb_i1", "pb_p1"}
        assert actor.in_flight_ids == set()
        assert list(request_times(harness)) == ["pb_i1"]

        actor.stop_starting()
        await trio.sleep(60)
        nursery.cancel_scope.cancel()

    assert set(actor.pending) == {"pb_i1", "pb_p1"}
    assert list(request_times(harness)) == ["pb_i1"]


async def test_resent_event_still_waits_for_install(autojump_clock):
    harness = Harness(scripted(slow={"pb_i1": 8.0}))
    actor = harness.actor

    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        actor.schedule(postback("i1", "d1"))
        actor.schedule(postback("p1", "d1", "Purchase"))
        await trio.sleep(2)
        assert actor.resend("pb_p1", EPOCH + 2)
        await trio.sleep(30)
        nursery.cancel_scope.cancel()

    assert request_times(harness) == {"pb_i1": [0.0], "pb_p1": [8.0]}
    assert [r.postback_id for r in harness.records] == ["pb_i1", "pb_p1"]


async def test_events_after_delivered_install_go_at_once(autojump_clock):
    harness = Harness(scripted())
    actor = harness.actor

    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        actor.schedule(postback("i1", "d1"))
        await trio.sleep(5)
        actor.schedule(postback("p1", "d1", "Purchase", due=EPOCH + 10))
        await trio.sleep(30)
        nursery.cancel_scope.cancel()

    assert request_times(harness) == {"pb_i1": [0.0], "pb_p1": [10.0]}


async def test_many_devices_interleaved(autojump_clock):
    rng = random.Random(7)
    devices = 300
    slow = {f"pb_i{n}": rng.choice((0.0, 0.5, 2.0, 7.0)) for n in range(devices)}
    statuses = {f"pb_i{n}": [503] for n in range(devices) if n % 10 == 3}
    pendings = []
    for n in range(devices):
        install_due = EPOCH + rng.uniform(0, 20)
        pendings.append(postback(f"i{n}", f"d{n}", due=install_due))
        for k in range(rng.randint(0, 3)):
            pendings.append(postback(f"e{n}x{k}", f"d{n}", "Purchase", due=install_due + rng.uniform(-5, 5)))
    rng.shuffle(pendings)
    harness = Harness(scripted(slow=slow, statuses=statuses), concurrency=8, retries=2, retry_delays=(15.0,))

    await run_for(harness, pendings, 3600)

    assert harness.actor.pending == {}
    assert sorted(r.postback_id for r in harness.records if r.outcome == "delivered") == sorted(
        p.postback_id for p in pendings
    )
    times = request_times(harness)
    for pending in pendings:
        if pending.event.type != "event":
            continue
        install_id = f"pb_i{pending.event.device[1:]}"
        assert times[pending.postback_id][0] >= finished_at(harness, install_id), pending.postback_id
