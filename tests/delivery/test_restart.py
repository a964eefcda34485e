"""Durable timers: pending, overdue and retrying postbacks across a restart of the daemon."""

from __future__ import annotations

import time

from postbackd.daemon._timestamps import format_timestamp
from postbackd.eventlog import Attempted, Decided
from tests.delivery.conftest import log_records
from tests.delivery.daemon_setup import add_app, add_partner, add_postback, deliveries, event, install, send


def scheduled_due(data_dir) -> dict[str, float]:
    """Return the due time of every scheduled postback, by event id."""
    due = {}
    for _seq, _received, record in log_records(data_dir):
        if isinstance(record, Decided):
            for decision in record.decisions:
                if decision.outcome == "scheduled":
                    due[record.event_id] = decision.due
    return due


def wait_for_decisions(data_dir, count: int) -> dict[str, float]:
    """Wait until ``count`` postbacks are scheduled in the log and return their due times."""
    deadline = time.monotonic() + 20
    while len(due := scheduled_due(data_dir)) < count:
        assert time.monotonic() < deadline, f"only {len(due)} of {count} postbacks were scheduled"
        time.sleep(0.05)
    return due


def attempts(data_dir) -> list[Attempted]:
    return [record for _seq, _received, record in log_records(data_dir) if isinstance(record, Attempted)]


def wait_until(epoch: float) -> None:
    """Wait until the wall clock has passed ``epoch``; the daemon is down, so nothing else can be polled."""
    while time.time() <= epoch:
        time.sleep(0.05)


def test_pending_and_overdue_postbacks_survive_sigkill(daemon, make_receiver, tmp_path):
    receiver = make_receiver()
    daemon.start()
    add_app(daemon)
    add_partner(daemon, "localnet", receiver.url)
    add_postback(daemon, "localnet", "install", delay="1s")
    add_postback(daemon, "localnet", "Level Complete", delay="6s")
    add_postback(daemon, "localnet", "Purchase", delay="1h")
    send(daemon, tmp_path, [install(1), install(2), event(1, "Level Complete"), event(1, "Purchase")])
    due = wait_for_decisions(daemon.data_dir, 4)
    daemon.kill()
    assert receiver.requests == []
    wait_until(max(due["i1"], due["i2"]) + 0.5)

    daemon.start()

    requests = receiver.wait_for(3)
    daemon.wait_status(lambda s: s["partners"][0]["delivered"] == 3)
    assert [r["query"]["id"] for r in requests] in (["i1", "i2", "l1"], ["i2", "i1", "l1"])
    started = {record.postback_id: record.started for record in attempts(daemon.data_dir)}
    by_event = {r["query"]["id"]: r["query"]["pb"] for r in requests}
    # The overdue installs went out before the next postback came due, that one not before its due time.
    assert started[by_event["i1"]] < due["l1"]
    assert started[by_event["i2"]] < due["l1"]
    assert started[by_event["l1"]] >= due["l1"]
    pending = deliveries(daemon, "--pending")["postbacks"]
    assert [(p["event_id"], p["status"], p["due"]) for p in pending] == [("p1", "pending", format_timestamp(due["p1"]))]
    assert pending[0]["attempts"] == []


def test_retry_due_time_survives_a_restart(daemon, make_receiver, tmp_path):
    answers = [500]
    receiver = make_receiver(lambda request: (answers[0], {}, b"busy" if answers[0] == 500 else b"ok"))
    daemon.start("--retry-delays", "4s")
    add_app(daemon)
    add_partner(daemon, "localnet", receiver.url)
    add_postback(daemon, "localnet", retries=2)
    send(daemon, tmp_path, [install(1)])
    receiver.wait_for(1)
    daemon.wait_status(lambda s: s["partners"][0]["retried"] == 1)
    assert daemon.stop() == 0
    answers[0] = 200

    daemon.start()

    requests = receiver.wait_for(2)
    daemon.wait_status(lambda s: s["partners"][0]["delivered"] == 1)
    first, second = attempts(daemon.data_dir)
    assert (first.attempt, first.outcome, first.status_code) == (1, "retry", 500)
    assert (second.attempt, second.outcome, second.status_code) == (2, "delivered", 200)
    assert second.started >= first.next_due
    assert second.manual is False
    assert requests[0]["query"]["pb"] == requests[1]["query"]["pb"] == first.postback_id
