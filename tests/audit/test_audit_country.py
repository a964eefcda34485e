"""The country a decision used, in ``audit`` and ``replay --verify``, for new logs and logs without the field."""

from __future__ import annotations

import json

import msgspec
import pytest
from click.testing import CliRunner

from postbackd.actors import ConfigState, DecisionEngine
from postbackd.actors._verify import comparable
from postbackd.cli import main as cli_main
from postbackd.daemon._core import decided_dedup_key, event_dedup_key
from postbackd.eventlog import (
    Append,
    AppConfig,
    AppConfigured,
    CountryFilter,
    Decided,
    Decision,
    Event,
    PartnerConfig,
    PartnerConfigured,
    PostbackConfig,
    PostbackConfigured,
    connect,
)

from .logsim import write_log

APP = "demo-app"
# 2026-12-01 10:00:00 UTC.
T0 = 1_796_119_200.0
US_ONLY = CountryFilter(mode="allow_only", countries=("US",))


def build_log(strip_country: bool = False) -> list[Append]:
    """A log whose Purchase postback of netA is for US devices only.

    Device d1 is installed in the US, d2 without a country. ``strip_country``
    drops ``Decision.country`` as logs written before the field existed lack it.
    """
    config_records = [
        AppConfigured(AppConfig(APP, "android", "com.example.demo", "Demo")),
        PartnerConfigured(PartnerConfig(APP, "netA", "custom", {"url": "http://127.0.0.1/pb"})),
        PartnerConfigured(PartnerConfig(APP, "netB", "custom", {"url": "http://127.0.0.1/pb"})),
        PostbackConfigured(PostbackConfig(APP, "netA", "install", method="all")),
        PostbackConfigured(PostbackConfig(APP, "netA", "Purchase", method="all", countries=US_ONLY)),
        PostbackConfigured(PostbackConfig(APP, "netB", "Purchase", method="all")),
    ]
    events = [
        Event(app=APP, id="i1", type="install", device="d1", time=T0, country="US"),
        Event(app=APP, id="p1", type="event", device="d1", time=T0 + 60, name="Purchase"),
        Event(app=APP, id="i2", type="install", device="d2", time=T0 + 120),
        Event(app=APP, id="p2", type="event", device="d2", time=T0 + 180, name="Purchase"),
        Event(app=APP, id="p3", type="event", device="d1", time=T0 + 240, name="Purchase", country="DE"),
    ]
    config = ConfigState()
    engine = DecisionEngine()
    appends = []
    for record in config_records:
        appends.append(Append(record, received=T0))
        config.apply(len(appends), record)
    for event in events:
        appends.append(Append(event, received=event.time, dedup_key=event_dedup_key(APP, event.id)))
        seq = len(appends)
        decisions = engine.decide(config, event, event.time)
        engine.apply(event, decisions)
        if strip_country:
            decisions = tuple(msgspec.structs.replace(d, country=None) for d in decisions)
        record = Decided(event_seq=seq, app=APP, event_id=event.id, decisions=decisions)
        appends.append(Append(record, received=event.time, dedup_key=decided_dedup_key(seq)))
    return appends


def run_cli(*args: str, expect: int = 0) -> str:
    result = CliRunner().invoke(cli_main, list(args))
    assert result.exit_code == expect, result.output
    return result.stdout


def audit_text(data_dir, event_id: str) -> list[str]:
    return run_cli("audit", "--data-dir", str(data_dir), "--event-id", event_id).splitlines()


def audit_json(data_dir, event_id: str) -> dict:
    (line,) = run_cli("audit", "--data-dir", str(data_dir), "--event-id", event_id, "--json").splitlines()
    return json.loads(line)


def decision_line(lines: list[str], network: str) -> str:
    return next(line for line in lines if line.startswith(f"  {network}: "))


@pytest.fixture(scope="module")
def new_log(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("new") / "data"
    write_log(data_dir, build_log())
    return data_dir


@pytest.fixture(scope="module")
def old_log(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("old") / "data"
    write_log(data_dir, build_log(strip_country=True))
    return data_dir


def test_text_names_install_country(new_log):
    lines = audit_text(new_log, "p1")

    assert "no country in the event" in lines[1]
    assert "country unknown" not in lines[1]
    assert decision_line(lines, "netA").startswith("  netA: scheduled for ")
    assert "country US (from install)" in decision_line(lines, "netA")
    assert decision_line(lines, "netB") == "  netB: scheduled for 2026-12-01T10:01:00.000Z, pending  " \
        "country US (from install)  (postback " + audit_json(new_log, "p1")["decisions"][1]["postback_id"] + ")"


def test_json_names_install_country(new_log):
    event = audit_json(new_log, "p1")

    assert event["country"] is None
    assert [(d["partner"], d["country"], d["country_source"]) for d in event["decisions"]] == [
        ("netA", "US", "install"), ("netB", "US", "install"),
    ]


def test_own_country_is_shown_as_is(new_log):
    lines = audit_text(new_log, "p3")
    event = audit_json(new_log, "p3")

    assert "country DE" in lines[1]
    assert decision_line(lines, "netA") == "  netA: suppressed: country_not_allowed  country DE"
    assert [(d["country"], d["country_source"]) for d in event["decisions"]] == [("DE", "event"), ("DE", "event")]


def test_unknown_country_says_unknown(new_log):
    lines = audit_text(new_log, "p2")
    event = audit_json(new_log, "p2")

    assert decision_line(lines, "netA") == "  netA: suppressed: country_unknown  country unknown"
    assert [(d["country"], d["country_source"]) for d in event["decisions"]] == [(None, None), (None, None)]


def test_new_log_verifies_clean(new_log):
    output = run_cli("replay", "--data-dir", str(new_log), "--verify")

    assert ": 0 mismatches" in output


def test_old_log_lacks_the_field(old_log):
    conn = connect(old_log / "events.sqlite3", readonly=True)
    try:
        bodies = [body for (body,) in conn.execute("SELECT body FROM log WHERE kind = 'decided'")]
    finally:
        conn.close()

    assert len(bodies) == 5
    for body in bodies:
        # MessagePack writes the 7-byte key "country" as 0xa7 and its bytes.
        assert b"\xa7country" not in body


def test_old_log_verifies_clean(old_log):
    output = run_cli("replay", "--data-dir", str(old_log), "--verify")

    assert "checked the decisions of 5 events" in output
    assert ": 0 mismatches" in output
    assert "mismatch at" not in output


def test_old_log_audit_falls_back_to_event(old_log):
    own = audit_json(old_log, "p3")
    unrecorded = audit_json(old_log, "p1")

    assert [(d["country"], d["country_source"]) for d in own["decisions"]] == [("DE", "event"), ("DE", "event")]
    assert [(d["country"], d["country_source"]) for d in unrecorded["decisions"]] == [(None, None), (None, None)]


def test_verify_reports_wrong_recorded_country(tmp_path):
    appends = build_log()
    index = next(i for i, a in enumerate(appends) if isinstance(a.record, Decided) and a.record.event_id == "p1")
    record = appends[index].record
    wrong = tuple(msgspec.structs.replace(d, country="FR") for d in record.decisions)
    appends[index] = Append(msgspec.structs.replace(record, decisions=wrong), received=appends[index].received,
                            dedup_key=appends[index].dedup_key)
    write_log(tmp_path, appends)

    output = run_cli("replay", "--data-dir", str(tmp_path), "--verify", expect=1)

    assert f"mismatch at log position {record.event_seq}: event p1 (app {APP}) decisions differ" in output
    assert ": 1 mismatches" in output


def test_comparable_ignores_only_unrecorded_country():
    derived = (
        Decision(network="netA", postback="Purchase", outcome="scheduled", reason="scheduled", country="US"),
        Decision(network="netB", postback="Purchase", outcome="scheduled", reason="scheduled", country="US"),
        Decision(network="netC", postback="Purchase", outcome="scheduled", reason="scheduled", country="US"),
    )
    recorded = (
        msgspec.structs.replace(derived[0], country=None),
        msgspec.structs.replace(derived[1], country="DE"),
    )

    result = comparable(derived, recorded)

    assert result[0].country is None
    assert result[1].country == "US"
    assert result[2].country == "US"
