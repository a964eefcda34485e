"""Crash recovery: SIGKILL at random moments of a delivery run loses no postback."""

from __future__ import annotations

import collections
import random
import time

from postbackd.actors import postback_id_for
from postbackd.eventlog import Attempted, Decided
from tests.delivery.conftest import log_records
from tests.delivery.daemon_setup import APP, add_app, add_partner, add_postback, event, install, send

INSTALLS = 200
PURCHASES = 100
KILLS = 4
# Concurrent requests per partner; the custom integration sets no limit of its own.
CONCURRENCY = 8


def slow_ok(request: dict) -> tuple[int, dict[str, str], bytes]:
    # 300 postbacks at 40 ms each over 8 connections take about 1.5 s, so the kills land mid-run.
    time.sleep(0.04)
    return 200, {}, b"ok"


def test_sigkill_loses_no_postback(daemon, make_receiver, tmp_path):
    seed = random.randrange(1 << 32)
    rng = random.Random(seed)
    receiver = make_receiver(slow_ok)
    daemon.start()
    add_app(daemon)
    add_partner(daemon, "localnet", receiver.url)
    add_postback(daemon, "localnet", "install")
    add_postback(daemon, "localnet", "Purchase", delay="1s")
    events = [install(n) for n in range(INSTALLS)] + [event(n, "Purchase") for n in range(PURCHASES)]
    send(daemon, tmp_path, events)

    for _ in range(KILLS):
        time.sleep(rng.uniform(0.05, 0.8))
        daemon.kill()
        daemon.start()

    receiver.wait_for(len(events))
    daemon.wait_status(lambda s: s["pending"] == 0 and s["in_flight"] == 0)
    records = [record for _seq, _received, record in log_records(daemon.data_dir)]
    scheduled = {
        decision.postback_id
        for record in records if isinstance(record, Decided)
        for decision in record.decisions if decision.outcome == "scheduled"
    }
    delivered = collections.Counter(
        record.postback_id for record in records if isinstance(record, Attempted) and record.outcome == "delivered"
    )
    received = collections.Counter(request["query"]["pb"] for request in receiver.requests)
    pb_by_event = collections.defaultdict(set)
    for request in receiver.requests:
        pb_by_event[request["query"]["id"]].add(request["query"]["pb"])

    context = f"random seed {seed}"
    assert len(scheduled) == len(events), context
    assert set(received) == scheduled, context
    assert set(delivered) == scheduled, context
    assert max(delivered.values()) == 1, context
    # Only attempts in flight at a kill may be repeated: at most CONCURRENCY per kill.
    repeated = [pb for pb, count in received.items() if count > 1]
    assert len(repeated) <= KILLS * CONCURRENCY, context
    assert max(received.values()) <= KILLS + 1, context
    for event_id, postback_ids in pb_by_event.items():
        assert postback_ids == {postback_id_for(APP, event_id, "localnet")}, context
    assert not any(isinstance(r, Attempted) and r.outcome != "delivered" for r in records), context
