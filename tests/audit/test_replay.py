"""``postbackd replay --verify`` and ``--what-if`` on simulated logs."""

from __future__ import annotations

import io
import json
import re

import msgspec
import pytest
from click.testing import CliRunner

from postbackd.actors._replay import Replayer
from postbackd.actors._snapshot import SNAPSHOT_VERSION, capture_replayer, compress_state, encode_state
from postbackd.cli import main as cli_main
from postbackd.cli._replay import progress_bar
from postbackd.daemon._config_io import export_config
from postbackd.eventlog import Append, Decided, Event, PartnerConfig, PartnerConfigured, connect
from postbackd.eventlog._snapshots import save_snapshot
from postbackd.integrations import load_catalog

from .logsim import APP, simulate, write_log


def run_replay(data_dir, *args, expect=0):
    result = CliRunner().invoke(cli_main, ["replay", "--data-dir", str(data_dir), *args])
    assert result.exit_code == expect, result.output
    return result


def decided_positions(sim) -> list[int]:
    return [i for i, a in enumerate(sim.appends) if isinstance(a.record, Decided)]


def replace_record(sim, index: int, record, dedup_key: str | None = None) -> None:
    old = sim.appends[index]
    sim.appends[index] = Append(record, received=old.received, dedup_key=dedup_key or old.dedup_key)


def tamper(sim, index: int) -> Decided:
    """Flip the outcome of the first decision of the Decided record at ``index``; return the new record."""
    record = sim.appends[index].record
    first = record.decisions[0]
    flipped = msgspec.structs.replace(
        first,
        outcome="suppressed" if first.outcome == "scheduled" else "scheduled",
        reason="data_controlled" if first.outcome == "scheduled" else "scheduled",
    )
    changed = msgspec.structs.replace(record, decisions=(flipped, *record.decisions[1:]))
    replace_record(sim, index, changed)
    return changed


def with_decisions(sim) -> list[int]:
    return [i for i in decided_positions(sim) if sim.appends[i].record.decisions]


def test_verify_clean_log(tmp_path):
    sim = simulate(21)
    write_log(tmp_path, sim.appends)

    result = run_replay(tmp_path, "--verify")

    decided = len(decided_positions(sim))
    assert f"checked the decisions of {decided} events from log position 1" in result.output
    assert ": 0 mismatches" in result.output
    assert "replayed from the start of the log" in result.output
    assert "mismatch at" not in result.output


def test_verify_reports_changed_decision(tmp_path):
    sim = simulate(22)
    index = with_decisions(sim)[10]
    changed = tamper(sim, index)
    write_log(tmp_path, sim.appends)

    result = run_replay(tmp_path, "--verify", expect=1)

    assert f"mismatch at log position {changed.event_seq}: event {changed.event_id} (app {APP})" in result.output
    network = changed.decisions[0].network
    line = next(line for line in result.output.splitlines() if line.startswith(f"  {network}: recorded"))
    assert "derived" in line
    assert "decision" in line
    assert "->" in line
    assert ": 1 mismatches" in result.output


def test_verify_json_clean_log_is_one_summary(tmp_path):
    sim = simulate(21)
    write_log(tmp_path, sim.appends)

    result = run_replay(tmp_path, "--verify", "--json")
    text = run_replay(tmp_path, "--verify").output

    [summary] = [json.loads(line) for line in result.stdout.splitlines()]
    undecided = summary.pop("undecided")
    assert summary == {
        "type": "summary", "checked": len(decided_positions(sim)), "mismatches": 0, "from": 1,
        "to": len(sim.appends), "replayed_from": 0,
    }
    assert f"{undecided} events at the end have no recorded decisions yet" in text


def test_verify_json_reports_changed_decision(tmp_path):
    sim = simulate(22)
    # A scheduled postback whose change cannot spread: SessionBegin postbacks use up their window.
    index = next(i for i in with_decisions(sim)[10:]
                 if sim.appends[i].record.decisions[0].outcome == "scheduled"
                 and sim.appends[i].record.decisions[0].postback != "SessionBegin")
    original = sim.appends[index].record
    changed = tamper(sim, index)
    write_log(tmp_path, sim.appends)

    result = run_replay(tmp_path, "--verify", "--json", expect=1)

    mismatch, summary = [json.loads(line) for line in result.stdout.splitlines()]
    assert (mismatch["type"], mismatch["seq"], mismatch["app"], mismatch["event_id"]) == (
        "mismatch", changed.event_seq, APP, changed.event_id)
    assert mismatch["problem"] == "decisions differ"
    [partner] = mismatch["partners"]
    assert partner["partner"] == changed.decisions[0].network
    assert partner["recorded"]["decision"] == "suppressed"
    assert partner["derived"]["decision"] == "scheduled"
    assert partner["derived"]["postback"] == original.decisions[0].postback
    assert set(partner["derived"]) == {"postback", "decision", "reason", "postback_id", "attribution", "due",
                                       "session_window", "country"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", partner["derived"]["due"])
    assert (summary["type"], summary["mismatches"]) == ("summary", 1)


def test_verify_reports_event_without_decisions(tmp_path):
    sim = simulate(23)
    index = decided_positions(sim)[5]
    removed = sim.appends.pop(index).record
    # Positions after the removed record move down by one.
    for position in range(index, len(sim.appends)):
        record = sim.appends[position].record
        if isinstance(record, Decided) and record.event_seq > index:
            replace_record(sim, position, msgspec.structs.replace(record, event_seq=record.event_seq - 1),
                           f"decided:{record.event_seq - 1}")
        elif hasattr(record, "event_seq") and record.event_seq > index:
            replace_record(sim, position, msgspec.structs.replace(record, event_seq=record.event_seq - 1))
    write_log(tmp_path, sim.appends)

    result = run_replay(tmp_path, "--verify", expect=1)

    assert (f"mismatch at log position {removed.event_seq}: event {removed.event_id} (app {APP}) "
            "has no recorded decisions, but the later event") in result.output


def test_verify_from_uses_snapshot_and_skips_earlier_events(tmp_path):
    sim = simulate(24)
    positions = with_decisions(sim)
    early, late = positions[5], positions[-5]
    early_record, late_record = tamper(sim, early), tamper(sim, late)
    path = write_log(tmp_path, sim.appends)
    from_seq = (early + 1 + late_record.event_seq) // 2
    snapshot_seq = from_seq - 3
    replayer = Replayer(fetch_event=lambda seq: sim.appends[seq - 1].record)
    for seq, append in enumerate(sim.appends[:snapshot_seq], start=1):
        replayer.feed(seq, append.received, append.record)
    conn = connect(path)
    save_snapshot(conn, snapshot_seq, SNAPSHOT_VERSION, compress_state(encode_state(capture_replayer(replayer))))
    conn.close()

    result = run_replay(tmp_path, "--verify", "--from", str(from_seq), expect=1)

    assert f"replayed from the snapshot at log position {snapshot_seq}" in result.output
    assert f"event {late_record.event_id} " in result.output
    assert f"event {early_record.event_id} " not in result.output
    assert ": 1 mismatches" in result.output


def test_verify_from_without_snapshot_replays_from_start(tmp_path):
    sim = simulate(25)
    write_log(tmp_path, sim.appends)

    result = run_replay(tmp_path, "--verify", "--from", "40")

    assert "from log position 40" in result.output
    assert "replayed from the start of the log" in result.output


@pytest.mark.parametrize(("args", "message", "code"), [
    ([], "Give exactly one of --verify and --what-if CONFIG.toml.", 2),
    (["--verify", "--what-if", "x.toml"], "Give exactly one of --verify and --what-if", 2),
    (["--what-if", "x.toml", "--from", "3"], "--from works with --verify only.", 2),
    (["--verify", "--from", "0"], "0 is not in the range x>=1", 2),
    (["--verify", "--from", "100000"], "--from 100000 is past the end of the log", 2),
    (["--what-if", "missing.toml"], "Cannot read missing.toml", 2),
    (["--what-if", "x.toml", "--limit", "-1"], "-1 is negative", 2),
])
def test_bad_replay_options(tmp_path, args, message, code):
    write_log(tmp_path, simulate(26, steps=20).appends)

    result = run_replay(tmp_path, *args, expect=code)

    assert message in result.output


def test_progress_bar_only_on_terminal(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    for stream, drawn in ((io.StringIO(), False), (Terminal(), True)):
        monkeypatch.setattr("sys.stderr", stream)
        with progress_bar(30_000, "verifying") as advance:
            for seq in range(1, 30_001):
                advance(seq)
        assert ("30.0k/30.0k" in stream.getvalue()) == drawn


def export_file(tmp_path, sim, change=None) -> str:
    config = sim.config.copy()
    if change is not None:
        config.apply(config.seq + 1, change)
    path = tmp_path / "what-if.toml"
    path.write_text(export_config(config, load_catalog(None)))
    return str(path)


def static_history(seed: int, events: int, attempts: bool = False):
    """A history without configuration changes, so every event saw the final configuration."""
    sim = simulate(seed, steps=0)
    for _ in range(events):
        sim.event()
        sim.flush_decided()
        if attempts:
            sim.attempt()
    return sim


def test_what_if_same_config_changes_nothing(tmp_path):
    sim = static_history(27, 150)
    write_log(tmp_path, sim.appends)

    result = run_replay(tmp_path, "--what-if", export_file(tmp_path, sim), "--json")

    report = json.loads(result.stdout)
    assert report["events"] == 150
    assert report["undecided"] == 0
    assert report["differing_events"] == 0
    assert report["differences"] == []
    assert all(p["gained"] == p["lost"] == 0 for p in report["partners"])


def test_what_if_inactive_partner_loses_its_postbacks(tmp_path):
    sim = static_history(28, 120, attempts=True)
    write_log(tmp_path, sim.appends)
    inactive = PartnerConfig(APP, "netB", "custom", {"url": "http://127.0.0.1/pb"}, active=False)

    result = run_replay(tmp_path, "--what-if", export_file(tmp_path, sim, PartnerConfigured(inactive)), "--json",
                        "--limit", "0")

    report = json.loads(result.stdout)
    partners = {p["partner"]: p for p in report["partners"]}
    assert partners["netB"]["what_if_scheduled"] == 0
    assert partners["netB"]["lost"] == partners["netB"]["scheduled"] > 0
    assert partners["netA"]["gained"] == partners["netA"]["lost"] == 0
    assert partners["netB"]["delivered"] > 0
    assert {d["partner"] for d in report["differences"]} == {"netB"}
    assert all(d["what_if"]["reason"] == "partner_inactive" for d in report["differences"])
    events = {a.record.id for a in sim.appends if isinstance(a.record, Event)}
    assert {d["event_id"] for d in report["differences"]} <= events

    text = run_replay(tmp_path, "--what-if", export_file(tmp_path, sim, PartnerConfigured(inactive)),
                      "--limit", "2").output
    assert "what-if scheduled" in text
    assert "-> suppressed: partner_inactive" in text
    assert "(first 2 differing decisions shown" in text


def test_what_if_rejects_invalid_config(tmp_path):
    write_log(tmp_path, simulate(29, steps=20).appends)
    broken = tmp_path / "broken.toml"
    broken.write_text("[apps.sim-app\n")
    unknown = tmp_path / "unknown.toml"
    unknown.write_text('[apps.sim-app]\nplatform = "android"\nbundle_id = "com.example.sim"\nname = "Sim"\n'
                       '[apps.sim-app.partners.netA]\nintegration = "nosuch"\n')

    assert "Invalid TOML in" in run_replay(tmp_path, "--what-if", str(broken), expect=1).output
    assert "Unknown integration 'nosuch'" in run_replay(tmp_path, "--what-if", str(unknown), expect=1).output
