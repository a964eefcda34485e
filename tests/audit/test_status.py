"""``postbackd status``: the last-hour window, the snapshot timer and the daemon's status output."""

from __future__ import annotations

import json

import pytest
import trio

from postbackd.daemon import _snapshot_task
from postbackd.daemon._attempt_window import AttemptWindow, bin_latency, latency_bin
from postbackd.daemon._snapshot_task import run_snapshots, snapshot_due
from tests.conftest import setup_app, write_lines

# 2026-01-05 00:00:00 UTC, a whole minute.
NOW = 1_767_571_200.0
OLD_KEYS = {"app", "network", "active", "scheduled", "suppressed", "delivered", "failed", "retried", "pending",
            "in_flight"}
NEW_KEYS = {"delivered_last_hour", "failed_last_hour", "retried_last_hour", "success_rate", "latency_p50",
            "latency_p99"}


def test_window_counts_last_hour_only():
    window = AttemptWindow()
    window.add("app", "net", NOW - 3700, "delivered", 0.1)
    window.add("app", "net", NOW - 3500, "delivered", 0.1)
    window.add("app", "net", NOW - 10, "failed", 0.2)
    window.add("app", "net", NOW - 5, "retry", 0.3)

    summary = window.summary("app", "net", NOW)

    assert summary["delivered_last_hour"] == 1
    assert summary["failed_last_hour"] == 1
    assert summary["retried_last_hour"] == 1
    assert summary["success_rate"] == 0.5


def test_window_without_attempts():
    summary = AttemptWindow().summary("app", "net", NOW)

    assert summary == {"delivered_last_hour": 0, "failed_last_hour": 0, "retried_last_hour": 0,
                       "success_rate": None, "latency_p50": None, "latency_p99": None}


def test_window_percentiles_within_bin_width():
    window = AttemptWindow()
    durations = [0.010 * (i + 1) for i in range(100)]
    for duration in durations:
        window.add("app", "net", NOW - 30, "delivered", duration)

    summary = window.summary("app", "net", NOW)

    assert summary["latency_p50"] == pytest.approx(0.50, rel=0.05)
    assert summary["latency_p99"] == pytest.approx(0.99, rel=0.05)


def test_latency_bins_cover_their_values():
    for seconds in (0.0002, 0.013, 0.5, 9.9, 120.0):
        assert bin_latency(latency_bin(seconds)) == pytest.approx(seconds, rel=0.03)
    assert latency_bin(0.0) == 0
    assert latency_bin(float("nan")) == 0


def test_window_takes_late_attempts_and_keeps_bounded():
    window = AttemptWindow()
    for minute in range(200):
        window.add("app", "net", NOW + minute * 60, "delivered", 0.1)
    window.add("app", "net", NOW + 190 * 60 + 1, "failed", 0.1)
    window.add("app", "net", NOW, "failed", 0.1)

    summary = window.summary("app", "net", NOW + 199 * 60)

    assert summary["delivered_last_hour"] == 61
    assert summary["failed_last_hour"] == 1
    assert len(window.to_buckets()) == 61


def test_window_round_trip():
    window = AttemptWindow()
    window.add("app", "net", NOW - 100, "delivered", 0.1)
    window.add("app", "other", NOW - 50, "failed", 2.0)

    copy = AttemptWindow.from_buckets(window.to_buckets())

    for network in ("net", "other"):
        assert copy.summary("app", network, NOW) == window.summary("app", network, NOW)


@pytest.mark.parametrize(("new", "elapsed", "due"), [
    (0, 10_000.0, False),
    (99, 299.0, False),
    (100, 0.0, True),
    (1, 300.0, True),
])
def test_snapshot_due(new, elapsed, due):
    assert snapshot_due(new, elapsed, every_records=100, every_seconds=300.0) == due


@pytest.mark.parametrize(("new", "state_size", "due"), [
    (100, 0, True),
    (100, 25, True),
    (100, 26, False),
    (3_999, 1_000, False),
    (4_000, 1_000, True),
])
def test_snapshot_due_scales_with_state(new, state_size, due):
    assert snapshot_due(new, 0.0, every_records=100, every_seconds=300.0, state_size=state_size) == due


class FakeLog:
    def __init__(self) -> None:
        self.last_seq = 0
        self.path = None


class FakeCore:
    def __init__(self) -> None:
        self.log = FakeLog()
        self.snapshot_seq = 0
        self.engine = FakeEngine()

    def pending_count(self) -> int:
        return 0


class FakeEngine:
    devices: dict = {}


async def test_snapshot_timer_on_records_and_seconds(autojump_clock, monkeypatch):
    core = FakeCore()
    snapshots: list[tuple[float, int]] = []

    async def fake_take(core_arg, conn) -> int:
        snapshots.append((trio.current_time(), core_arg.log.last_seq))
        core_arg.snapshot_seq = core_arg.log.last_seq
        return core_arg.snapshot_seq

    class FakeConnection:
        def close(self) -> None:
            pass

    monkeypatch.setattr(_snapshot_task, "take_snapshot", fake_take)
    monkeypatch.setattr(_snapshot_task, "connect", lambda path: FakeConnection())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_snapshots, core, 100, 300.0)
        await trio.sleep(10.5)
        core.log.last_seq = 150
        await trio.sleep(1)
        core.log.last_seq = 160
        await trio.sleep(400)
        await trio.sleep(400)
        nursery.cancel_scope.cancel()

    assert snapshots == [(11.0, 150), (311.0, 160)]


def test_status_reports_last_hour_and_keeps_keys(daemon, receiver, tmp_path):
    daemon.start()
    setup_app(daemon, receiver, method="all")
    installs = [{"type": "install", "id": f"i{n}", "app": "demo-app", "device": f"d{n}",
                 "time": "2026-12-01T10:00:00Z"} for n in range(4)]
    daemon.cli("send", str(write_lines(tmp_path / "ok.jsonl", installs)))
    daemon.wait_status(lambda s: s["partners"][0]["delivered"] == 4)
    receiver.status = 400
    purchases = [{"type": "event", "id": f"e{n}", "app": "demo-app", "device": "d0", "name": "Purchase",
                  "time": "2026-12-01T11:00:00Z"} for n in range(2)]
    daemon.cli("send", str(write_lines(tmp_path / "bad.jsonl", purchases)))
    daemon.wait_status(lambda s: s["partners"][0]["failed"] == 2)

    result = json.loads(daemon.cli("status", "--json").stdout)
    text = daemon.cli("status").stdout

    (partner,) = result["partners"]
    assert OLD_KEYS | NEW_KEYS <= set(partner)
    assert {"uptime", "last_seq", "log_bytes", "pending", "in_flight", "partners", "apps"} <= set(result)
    assert (partner["delivered_last_hour"], partner["failed_last_hour"]) == (4, 2)
    assert partner["success_rate"] == pytest.approx(4 / 6)
    assert 0 < partner["latency_p50"] <= partner["latency_p99"] < 10
    assert result["apps"] == [{"app": "demo-app", "events": 6}]
    assert "66.7 %" in text
    assert "p99" in text
    assert text.startswith("uptime ")
