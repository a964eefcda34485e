"""``postbackd audit``: filters, text and JSON output, index lookups and bad input, on simulated logs."""

from __future__ import annotations

import json
import os
import re

import pytest
from click.testing import CliRunner

from postbackd.actors._audit import AuditQuery, apps_in_log, audit, first_position_received
from postbackd.cli import main as cli_main
from postbackd.daemon._core import event_dedup_key
from postbackd.eventlog import Append, Attempted, Decided, Event, connect

from .logsim import APP, simulate, write_log

EVENT_KEYS = {"seq", "received", "app", "id", "type", "name", "time", "device", "country", "data_controlled",
              "attribution", "decided", "decisions"}
DECISION_KEYS = {"partner", "postback", "decision", "reason", "postback_id", "attribution", "due", "session_window",
                 "status", "country", "country_source", "attempts"}
ATTEMPT_KEYS = {"attempt", "started", "duration", "outcome", "status_code", "failure_class", "error", "method", "url",
                "manual", "next_due"}


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """A simulated log with a second app that reuses one event id of the first."""
    sim = simulate(11, steps=500)
    first_event = next(a.record for a in sim.appends if isinstance(a.record, Event))
    twin = Event(app="other-app", id=first_event.id, type="install", device="x1", time=first_event.time)
    sim.appends.append(Append(twin, received=sim.clock + 1, dedup_key=event_dedup_key("other-app", twin.id)))
    data_dir = tmp_path_factory.mktemp("audit") / "data"
    path = write_log(data_dir, sim.appends)
    return sim, data_dir, path


def records(sim):
    return [(seq, a.received, a.record) for seq, a in enumerate(sim.appends, start=1)]


def run_audit(data_dir, *args, expect=0):
    result = CliRunner().invoke(cli_main, ["audit", "--data-dir", str(data_dir), *args])
    assert result.exit_code == expect, result.output
    return result


def audit_json(data_dir, *args) -> list[dict]:
    return [json.loads(line) for line in run_audit(data_dir, "--json", *args).stdout.splitlines()]


def test_every_event_with_its_recorded_decisions(simulated):
    sim, _, path = simulated
    conn = connect(path, readonly=True)
    views = list(audit(conn, AuditQuery()))
    events = [(seq, r) for seq, _, r in records(sim) if isinstance(r, Event)]
    decided = {r.event_seq: r for _, _, r in records(sim) if isinstance(r, Decided)}

    assert [v.seq for v in views] == [seq for seq, _ in events]
    for view in views:
        recorded = decided.get(view.seq)
        assert view.decided == (recorded is not None)
        assert [(d.partner, d.decision, d.reason) for d in view.decisions] == (
            [(d.network, d.outcome, d.reason) for d in recorded.decisions] if recorded else []
        )


def test_attempts_and_status_come_from_attempt_records(simulated):
    sim, _, path = simulated
    attempts: dict[str, list[Attempted]] = {}
    for _, _, record in records(sim):
        if isinstance(record, Attempted):
            attempts.setdefault(record.postback_id, []).append(record)
    conn = connect(path, readonly=True)

    checked = 0
    for view in audit(conn, AuditQuery(decision="scheduled")):
        for decision in view.decisions:
            recorded = attempts.get(decision.postback_id, [])
            assert [a.attempt for a in decision.attempts] == [a.attempt for a in recorded]
            expected = "pending" if not recorded or recorded[-1].outcome == "retry" else recorded[-1].outcome
            assert decision.status == expected
            checked += len(recorded)
    assert checked > 10


def test_event_id_uses_index_across_apps(simulated):
    sim, data_dir, path = simulated
    event = next(a.record for a in sim.appends if isinstance(a.record, Event))

    both = audit_json(data_dir, "--event-id", event.id)
    one = audit_json(data_dir, "--event-id", event.id, "--app", "other-app")

    assert [e["app"] for e in both] == [APP, "other-app"]
    assert [e["app"] for e in one] == ["other-app"]
    assert apps_in_log(connect(path, readonly=True)) == ["other-app", APP]


def test_device_and_app_filters(simulated):
    sim, data_dir, _ = simulated
    expected = [seq for seq, _, r in records(sim) if isinstance(r, Event) and r.device == "d3" and r.app == APP]

    found = audit_json(data_dir, "--device", "d3", "--app", APP)

    assert [e["seq"] for e in found] == expected
    assert expected


def test_time_range_filters_on_received(simulated):
    sim, data_dir, path = simulated
    events = [(seq, received) for seq, received, r in records(sim) if isinstance(r, Event)]
    low, high = events[len(events) // 4][1], events[len(events) // 2][1]
    since = low_text = _rfc3339(low)
    until = _rfc3339(high)

    found = audit_json(data_dir, "--since", since, "--until", until)

    assert [e["seq"] for e in found] == [seq for seq, received in events if low <= received <= high]
    assert low_text
    conn = connect(path, readonly=True)
    assert first_position_received(conn, low) == events[len(events) // 4][0]


def test_decision_filters_keep_matching_decisions_only(simulated):
    _, data_dir, _ = simulated

    found = audit_json(data_dir, "--partner", "netA", "--decision", "suppressed", "--reason", "not_attributed")

    assert found
    for event in found:
        assert event["decisions"]
        for decision in event["decisions"]:
            assert (decision["partner"], decision["decision"], decision["reason"]) == (
                "netA", "suppressed", "not_attributed")


@pytest.mark.parametrize("status", ["delivered", "failed", "pending"])
def test_status_filter(simulated, status):
    _, data_dir, _ = simulated

    found = audit_json(data_dir, "--status", status)

    assert found
    assert {d["status"] for e in found for d in e["decisions"]} == {status}


def test_json_schema_keys_are_stable(simulated):
    _, data_dir, _ = simulated

    found = audit_json(data_dir, "--status", "delivered", "--limit", "3")

    assert len(found) == 3
    for event in found:
        assert set(event) == EVENT_KEYS
        for decision in event["decisions"]:
            assert set(decision) == DECISION_KEYS
            assert set(decision["attribution"]) == {"type", "network", "agency"}
            for attempt in decision["attempts"]:
                assert set(attempt) == ATTEMPT_KEYS
                assert attempt["started"].endswith("Z")


def test_limit_zero_shows_all(simulated):
    _, data_dir, _ = simulated

    everything = audit_json(data_dir, "--status", "delivered")
    zero = audit_json(data_dir, "--status", "delivered", "--limit", "0")

    assert len(everything) > 3
    assert zero == everything


def test_text_output_shows_partners_and_attempts(simulated):
    _, data_dir, _ = simulated

    output = run_audit(data_dir, "--status", "failed", "--limit", "1").stdout

    lines = output.splitlines()
    assert lines[0].split()[0] in ("install", "event")
    assert "device" in lines[1]
    assert "country" in lines[1]
    assert any(re.search(r", failed  country (\w\w( \(from install\))?|unknown)  \(postback pb_", line)
               for line in lines)
    assert any(line.startswith("    attempt ") and "rejected_by_partner" in line for line in lines)


def test_no_match_says_so(simulated):
    _, data_dir, _ = simulated

    result = run_audit(data_dir, "--device", "no-such-device")

    assert result.stdout == ""
    assert "No events match." in result.stderr


def test_audit_never_writes(simulated):
    _, data_dir, path = simulated

    def contents() -> dict:
        # The -shm file is left out: every reader of a WAL database writes its read marks there.
        return {p.name: p.read_bytes() for p in data_dir.iterdir() if not p.name.endswith("-shm")}

    before = contents()

    run_audit(data_dir)
    run_audit(data_dir, "--json", "--event-id", "e20")

    assert contents() == before


@pytest.mark.parametrize(("args", "message"), [
    (["--since", "yesterday"], "'yesterday' is neither a time nor an age"),
    (["--until", "2026-12-04T10:00:00"], "has no UTC offset. Add 'Z'"),
    (["--reason", "too_late"], "Unknown reason code 'too_late'. Known codes: scheduled"),
    (["--decision", "maybe"], "'maybe' is not one of 'scheduled', 'suppressed'"),
    (["--status", "lost"], "'lost' is not one of 'delivered', 'failed', 'pending'"),
    (["--limit", "-1"], "-1 is negative. Give the number of events to show, or 0 for all."),
    (["--since", "1h", "--until", "2h"], "is later than --until"),
])
def test_bad_options_are_rejected(simulated, args, message):
    _, data_dir, _ = simulated

    result = run_audit(data_dir, *args, expect=2)

    assert message in result.output


def test_missing_log_names_path(tmp_path):
    result = run_audit(tmp_path / "nothing", expect=1)

    assert f"No event log at {tmp_path / 'nothing' / 'events.sqlite3'}" in result.output
    assert "--data-dir" in result.output


def test_default_data_dir_comes_from_environment(simulated, monkeypatch):
    _, data_dir, _ = simulated
    monkeypatch.setenv("POSTBACKD_DATA_DIR", str(data_dir))
    monkeypatch.setattr("postbackd.daemon._settings.DEFAULT_CONFIG_PATH", data_dir / "absent.toml")

    result = CliRunner().invoke(cli_main, ["audit", "--limit", "1", "--json"])

    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 1
    assert os.environ["POSTBACKD_DATA_DIR"] == str(data_dir)


def _rfc3339(epoch: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")
