"""The daemon saves snapshots, restarts from the newest usable one, and skips broken ones."""

from __future__ import annotations

import sqlite3

from postbackd.actors._snapshot import decode_snapshot, restore
from postbackd.eventlog import connect, log_path, read_from
from postbackd.eventlog._snapshots import SNAPSHOTS_KEPT, iter_snapshots
from tests.conftest import setup_app, write_lines

from .helpers import replay_log, replay_view, wait_for_snapshot, write_settings


def events(count: int, start: int = 0) -> list[dict]:
    items = []
    for number in range(start, start + count):
        device = f"d{number % 4}"
        if number % 3 == 0:
            items.append({"type": "install", "id": f"i{number}", "app": "demo-app", "device": device,
                          "time": "2026-12-01T10:00:00Z", "attribution": {"network": "localnet"}})
        else:
            items.append({"type": "event", "id": f"e{number}", "app": "demo-app", "device": device,
                          "time": "2026-12-01T11:00:00Z", "name": "Purchase"})
    return items


def counters(status: dict) -> list[tuple]:
    return [(p["network"], p["scheduled"], p["suppressed"], p["delivered"], p["failed"], p["retried"])
            for p in status["partners"]] + [(a["app"], a["events"]) for a in status["apps"]]


def send_and_settle(daemon, tmp_path, items: list[dict], name: str) -> dict:
    """Send events and wait until all of them are decided and every postback has finished."""
    before = daemon.control("status")["result"]
    expected_events = sum(a["events"] for a in before["apps"]) + len(items)
    daemon.cli("send", str(write_lines(tmp_path / name, items)))
    return daemon.wait_status(
        lambda s: sum(a["events"] for a in s["apps"]) == expected_events
        and s["pending"] == 0 and s["in_flight"] == 0
        and sum(p["scheduled"] + p["suppressed"] for p in s["partners"]) == expected_events
        and sum(p["scheduled"] for p in s["partners"]) == sum(p["delivered"] + p["failed"] for p in s["partners"])
    )


def start_snapshotting(daemon, receiver, tmp_path) -> dict:
    write_settings(daemon, snapshot_every_records=5, snapshot_every_seconds="1h")
    daemon.start()
    setup_app(daemon, receiver, method="all")
    return send_and_settle(daemon, tmp_path, events(24), "first.jsonl")


def test_snapshots_equal_replay_at_their_position(daemon, receiver, tmp_path):
    status = start_snapshotting(daemon, receiver, tmp_path)
    wait_for_snapshot(daemon)
    assert daemon.stop() == 0

    conn = connect(log_path(daemon.data_dir), readonly=True)
    records = {seq: record for seq, _, record in read_from(conn)}
    rows = list(iter_snapshots(conn))
    conn.close()

    assert 1 <= len(rows) <= SNAPSHOTS_KEPT
    for row in rows:
        restored = restore(decode_snapshot(row), fetch_event=records.__getitem__)
        assert replay_view(restored) == replay_view(replay_log(daemon, row.seq)), f"snapshot at {row.seq}"


def test_restart_uses_snapshot_and_keeps_counters(daemon, receiver, tmp_path):
    status = start_snapshotting(daemon, receiver, tmp_path)
    snapshot_seq = wait_for_snapshot(daemon)
    assert daemon.stop() == 0

    daemon.start()
    restarted = daemon.control("status")["result"]

    assert f"restored the snapshot of log position {snapshot_seq}" in daemon.log()
    assert counters(restarted) == counters(status)
    later = send_and_settle(daemon, tmp_path, events(6, start=100), "later.jsonl")
    # Two of the six are repeated installs, which are suppressed.
    assert sum(p["delivered"] for p in later["partners"]) == sum(p["delivered"] for p in status["partners"]) + 4


def break_snapshots(daemon, how: dict[int, str]) -> list[int]:
    """Damage snapshots, newest first: 'checksum' or 'version' per rank; return the positions of all."""
    conn = sqlite3.connect(log_path(daemon.data_dir))
    rows = conn.execute("SELECT id, seq FROM snapshots ORDER BY seq DESC, id DESC").fetchall()
    for rank, damage in how.items():
        snapshot_id = rows[rank][0]
        if damage == "checksum":
            conn.execute("UPDATE snapshots SET body = body || x'00' WHERE id = ?", (snapshot_id,))
        else:
            conn.execute("UPDATE snapshots SET version = 99 WHERE id = ?", (snapshot_id,))
    conn.commit()
    conn.close()
    return [seq for _, seq in rows]


def test_broken_snapshots_are_skipped_with_warning(daemon, receiver, tmp_path):
    status = start_snapshotting(daemon, receiver, tmp_path)
    newest = wait_for_snapshot(daemon)
    for batch in range(2):
        status = send_and_settle(daemon, tmp_path, events(6, start=50 + 10 * batch), f"more{batch}.jsonl")
        newest = wait_for_snapshot(daemon, newest + 1)
    assert daemon.stop() == 0
    positions = break_snapshots(daemon, {0: "checksum", 1: "version"})
    assert len(positions) >= 3, positions

    daemon.start()
    restarted = daemon.control("status")["result"]

    log = daemon.log()
    assert f"at log position {positions[0]}: checksum mismatch" in log
    assert f"at log position {positions[1]}: unknown version 99" in log
    assert f"restored the snapshot of log position {positions[2]}" in log
    assert counters(restarted) == counters(daemon.control("status")["result"])
    assert counters(restarted)[0][3] == sum(p["delivered"] for p in status["partners"])


def test_all_snapshots_broken_means_full_replay(daemon, receiver, tmp_path):
    status = start_snapshotting(daemon, receiver, tmp_path)
    wait_for_snapshot(daemon)
    assert daemon.stop() == 0
    conn = sqlite3.connect(log_path(daemon.data_dir))
    broken = conn.execute("UPDATE snapshots SET version = 99").rowcount
    conn.commit()
    conn.close()

    daemon.start()
    restarted = daemon.control("status")["result"]

    second_start = daemon.log().split("starting:")[-1]
    assert second_start.count("unknown version 99") == broken
    assert "restored the snapshot" not in second_start
    assert counters(restarted) == counters(status)
