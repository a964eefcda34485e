"""A real daemon sends a device's event postbacks only after its install postback has finished."""

from __future__ import annotations

import threading
import time

from postbackd.actors._snapshot import decode_snapshot, restore
from postbackd.eventlog import connect, log_path
from postbackd.eventlog._snapshots import iter_snapshots
from tests.audit.helpers import wait_for_snapshot, write_settings
from tests.delivery.daemon_setup import (
    add_app, add_partner, add_postback, deliveries, event, install, partner_status, send,
)


class InstallGate:
    """Replies of a receiver. Installs wait ``install_delay`` seconds and get ``install_status``, events get 200.

    ``log`` lists (monotonic time, event id, "arrived" or "answered") in order.
    """

    def __init__(self, install_delay: float = 0.0, install_status: int = 200) -> None:
        self.install_delay = install_delay
        self.install_status = install_status
        self.log: list[tuple[float, str, str]] = []
        self._lock = threading.Lock()

    def _note(self, event_id: str, what: str) -> None:
        with self._lock:
            self.log.append((time.monotonic(), event_id, what))

    def __call__(self, request: dict) -> tuple[int, dict[str, str], bytes]:
        event_id = request["query"]["id"]
        self._note(event_id, "arrived")
        status = 200
        if request["query"]["event"] == "_install":
            time.sleep(self.install_delay)
            status = self.install_status
        self._note(event_id, "answered" if status == 200 else f"answered {status}")
        return status, {}, b"ok"

    def first(self, event_id: str, what: str) -> float:
        with self._lock:
            return next(when for when, seen, kind in self.log if seen == event_id and kind == what)


def test_purchase_arrives_after_slow_install(daemon, make_receiver, tmp_path):
    gate = InstallGate(install_delay=1.0)
    receiver = make_receiver(gate)
    daemon.start()
    add_app(daemon)
    add_partner(daemon, "localnet", receiver.url)
    add_postback(daemon, "localnet", "install")
    add_postback(daemon, "localnet", "Purchase")

    send(daemon, tmp_path, [install(1), event(1, "Purchase"), install(2), event(2, "Purchase"),
                            event(3, "Purchase")])

    receiver.wait_for(5)
    daemon.wait_status(lambda s: partner_status(daemon, "localnet")["delivered"] == 5)
    for number in (1, 2):
        assert gate.first(f"p{number}", "arrived") > gate.first(f"i{number}", "answered")
    assert gate.first("p3", "arrived") < gate.first("i1", "answered")


def test_parked_purchase_is_pending_and_survives_restart(daemon, make_receiver, tmp_path):
    gate = InstallGate(install_status=503)
    receiver = make_receiver(gate)
    write_settings(daemon, snapshot_every_records=2, snapshot_every_seconds="1s")
    # Retries 3 s apart give the install about 28 s of failures, so a slow
    # machine cannot use them all up (and release the purchase) mid-test.
    daemon.start("--retry-delays", "1s,3s")
    add_app(daemon)
    add_partner(daemon, "localnet", receiver.url)
    add_postback(daemon, "localnet", "install", retries=10)
    add_postback(daemon, "localnet", "Purchase")
    send(daemon, tmp_path, [install(1), event(1, "Purchase")])

    receiver.wait_for(2)
    assert {r["query"]["id"] for r in receiver.requests} == {"i1"}
    assert partner_status(daemon, "localnet")["pending"] == 2
    listed = deliveries(daemon, "--pending")
    assert sorted(p["event_id"] for p in listed["postbacks"]) == ["i1", "p1"]
    parked = next(p for p in listed["postbacks"] if p["event_id"] == "p1")
    assert parked["in_flight"] is False
    assert parked["attempts"] == []

    wait_for_snapshot(daemon, daemon.control("status")["result"]["last_seq"])
    conn = connect(log_path(daemon.data_dir), readonly=True)
    try:
        row = next(iter_snapshots(conn))
        restored = restore(decode_snapshot(row))
    finally:
        conn.close()
    assert sorted(p.event.id for p in restored.pending.values()) == ["i1", "p1"]

    assert daemon.stop() == 0
    assert {r["query"]["id"] for r in receiver.requests} == {"i1"}
    gate.install_status = 200
    daemon.start()

    receiver.wait_for(len(receiver.requests) + 1)
    daemon.wait_status(lambda s: partner_status(daemon, "localnet")["delivered"] == 2)
    assert gate.first("p1", "arrived") > gate.first("i1", "answered")
    assert partner_status(daemon, "localnet")["pending"] == 0
