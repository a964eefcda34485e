"""`postbackd resend` and `postbackd deliveries` against a running daemon."""

from __future__ import annotations

import json
import re

import pytest

from postbackd.eventlog import ResendRequested
from tests.delivery.conftest import log_records
from tests.delivery.daemon_setup import (
    APP,
    add_app,
    add_partner,
    add_postback,
    deliveries,
    install,
    partner_status,
    send,
)
from tests.delivery.servers import hang

# A time as the JSON outputs write it: RFC 3339 in UTC with milliseconds.
RFC3339_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def switchable_receiver(make_receiver, status: int):
    """A receiver whose status code the test can change through the returned list."""
    current = [status]
    receiver = make_receiver(lambda request: (current[0], {}, f"answer {current[0]}".encode()))
    return receiver, current


def one_partner(daemon, receiver, **postback) -> None:
    add_app(daemon)
    add_partner(daemon, "localnet", receiver.url)
    add_postback(daemon, "localnet", **postback)


def test_resend_failed_delivers_as_manual(daemon, make_receiver, tmp_path):
    receiver, status = switchable_receiver(make_receiver, 404)
    daemon.start()
    one_partner(daemon, receiver)
    send(daemon, tmp_path, [install(n) for n in range(3)])
    daemon.wait_status(lambda s: s["partners"][0]["failed"] == 3)

    failed = deliveries(daemon, "--failed")
    table = daemon.cli("deliveries", "--failed").output
    status[0] = 200
    result = daemon.cli("resend", "--failed")
    daemon.wait_status(lambda s: s["partners"][0]["delivered"] == 3)
    again = daemon.cli("resend", "--failed")

    assert result.output.strip() == "resending 3 failed postbacks"
    assert again.output.strip() == "No failed postbacks match."
    assert failed["failed_total"] == 3
    assert {p["status"] for p in failed["postbacks"]} == {"failed"}
    assert sorted(p["event_id"] for p in failed["postbacks"]) == ["i0", "i1", "i2"]
    attempt = failed["postbacks"][0]["attempts"][0]
    assert (attempt["status_code"], attempt["failure_class"], attempt["error"]) == (
        404, "rejected_by_partner", "HTTP 404 Not Found")
    assert attempt["response_head"] == "answer 404"
    assert "rejected_by_partner: HTTP 404 Not Found" in table
    assert "3 failed postbacks in all" in table
    delivered = deliveries(daemon, "--delivered")["postbacks"]
    assert len(delivered) == 3
    for postback in delivered:
        attempts = postback["attempts"]
        assert [(a["attempt"], a["manual"], a["outcome"]) for a in attempts] == [
            (1, False, "failed"), (2, True, "delivered")]
    received = [r["query"]["pb"] for r in receiver.requests]
    assert len(received) == 6
    assert sorted(set(received)) == sorted(p["postback_id"] for p in delivered)
    resends = [r for _s, _t, r in log_records(daemon.data_dir) if isinstance(r, ResendRequested)]
    assert len(resends) == 3
    assert {(r.after_attempt, r.origin.command) for r in resends} == {(1, "resend")}


def test_resend_one_delivered_postback(daemon, make_receiver, tmp_path):
    receiver, _status = switchable_receiver(make_receiver, 200)
    daemon.start()
    one_partner(daemon, receiver)
    send(daemon, tmp_path, [install(1), install(2)])
    daemon.wait_status(lambda s: s["partners"][0]["delivered"] == 2)
    postback_id = receiver.requests[0]["query"]["pb"]

    result = daemon.cli("resend", postback_id)
    daemon.wait_status(lambda s: s["partners"][0]["delivered"] == 3)

    assert result.output.strip() == f"resending postback {postback_id}"
    assert [r["query"]["pb"] for r in receiver.requests].count(postback_id) == 2
    listed = {p["postback_id"]: p for p in deliveries(daemon)["postbacks"]}
    assert [(a["attempt"], a["manual"]) for a in listed[postback_id]["attempts"]] == [(1, False), (2, True)]
    assert len(listed) == 2


def test_deliveries_are_the_same_after_restart(daemon, make_receiver, tmp_path):
    receiver, status = switchable_receiver(make_receiver, 404)
    daemon.start()
    one_partner(daemon, receiver)
    add_postback(daemon, "localnet", "Purchase", delay="1h")
    send(daemon, tmp_path, [install(1), install(2),
                            {**install(3), "type": "event", "id": "p3", "name": "Purchase"}])
    daemon.wait_status(lambda s: s["partners"][0]["failed"] == 2)
    status[0] = 200
    daemon.cli("resend", receiver.requests[0]["query"]["pb"])
    daemon.wait_status(lambda s: s["partners"][0]["delivered"] == 1)
    before = {flag: deliveries(daemon, *flag) for flag in ((), ("--pending",), ("--failed",), ("--delivered",))}
    assert daemon.stop() == 0

    daemon.start()
    after = {flag: deliveries(daemon, *flag) for flag in ((), ("--pending",), ("--failed",), ("--delivered",))}

    assert after == before
    assert [p["event_id"] for p in after[("--pending",)]["postbacks"]] == ["p3"]
    assert len(after[("--failed",)]["postbacks"]) == 1
    assert len(after[("--delivered",)]["postbacks"]) == 1


def test_resend_pending_postback_sends_it_now(daemon, make_receiver, tmp_path):
    receiver, _status = switchable_receiver(make_receiver, 200)
    daemon.start()
    one_partner(daemon, receiver, delay="1h")
    send(daemon, tmp_path, [install(1)])
    daemon.wait_status(lambda s: s["pending"] == 1)
    pending = deliveries(daemon, "--pending")["postbacks"]

    daemon.cli("resend", pending[0]["postback_id"])
    receiver.wait_for(1)
    daemon.wait_status(lambda s: s["pending"] == 0 and s["partners"][0]["delivered"] == 1)

    delivered = deliveries(daemon, "--delivered")["postbacks"]
    assert delivered[0]["postback_id"] == pending[0]["postback_id"]
    assert [(a["attempt"], a["manual"], a["outcome"]) for a in delivered[0]["attempts"]] == [(1, True, "delivered")]


def test_resend_filters_by_partner_app_and_time(daemon, make_receiver, tmp_path):
    first, _ = switchable_receiver(make_receiver, 410)
    second, second_status = switchable_receiver(make_receiver, 410)
    daemon.start()
    add_app(daemon)
    add_app(daemon, "other-app")
    add_partner(daemon, "neta", first.url)
    add_partner(daemon, "netb", second.url)
    add_postback(daemon, "neta")
    add_postback(daemon, "netb")
    send(daemon, tmp_path, [install(1), install(2)])
    daemon.wait_status(lambda s: all(p["failed"] == 2 for p in s["partners"]))
    second_status[0] = 200

    future = daemon.cli("resend", "--failed", "--since", "2999-01-01T00:00:00Z")
    other_app = daemon.cli("resend", "--failed", "--app", "other-app")
    by_partner = json.loads(daemon.cli("resend", "--failed", "--partner", "netb", "--since", "1h", "--json").output)
    daemon.wait_status(lambda s: partner_status(daemon, "netb")["delivered"] == 2)

    assert future.output.strip() == "No failed postbacks match."
    assert other_app.output.strip() == "No failed postbacks match."
    assert len(by_partner["resent"]) == 2
    assert by_partner["skipped"] == []
    assert len(first.requests) == 2
    assert len(second.requests) == 4
    left = deliveries(daemon, "--failed")["postbacks"]
    assert {p["network"] for p in left} == {"neta"}
    assert len(deliveries(daemon, "--failed", "--partner", "netb")["postbacks"]) == 0


def test_resend_after_partner_removal_is_rejected(daemon, make_receiver, tmp_path):
    receiver, _status = switchable_receiver(make_receiver, 404)
    daemon.start()
    one_partner(daemon, receiver)
    send(daemon, tmp_path, [install(1)])
    daemon.wait_status(lambda s: s["partners"][0]["failed"] == 1)
    postback_id = receiver.requests[0]["query"]["pb"]
    assert daemon.control("partner.remove", app_id=APP, network="localnet")["ok"]

    single = daemon.cli("resend", postback_id, expect=1)
    batch = daemon.cli("resend", "--failed", "--partner", "localnet")
    listed = deliveries(daemon, "--failed", "--partner", "localnet")["postbacks"]

    assert f"Partner 'localnet' of app '{APP}' was removed" in single.output
    assert "Add the partner again first" in single.output
    assert f"skipped {postback_id}: partner localnet of app {APP} was removed" in batch.output
    assert "No failed postbacks match." in batch.output
    assert [p["postback_id"] for p in listed] == [postback_id]


def test_removed_partner_with_delivered_postbacks_is_a_filter(daemon, make_receiver, tmp_path):
    receiver, _status = switchable_receiver(make_receiver, 200)
    daemon.start()
    one_partner(daemon, receiver)
    send(daemon, tmp_path, [install(1)])
    daemon.wait_status(lambda s: s["partners"][0]["delivered"] == 1)
    daemon.cli("partner", "remove", APP, "localnet")
    daemon.cli("partner", "add", APP, "othernet", "--integration", "custom", "--field", f"url={receiver.url}/pb")

    listed = deliveries(daemon, "--partner", "localnet")["postbacks"]
    resent = daemon.cli("resend", "--failed", "--partner", "localnet")

    assert [p["event_id"] for p in listed] == ["i1"]
    assert resent.output.strip() == "No failed postbacks match."


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["resend", "--failed", "--partner", "netz"],
         "Error: Partner 'netz' does not exist and never did, so no postbacks match. Did you mean 'neta'?"),
        (["deliveries", "--partner", "zzz"],
         "Error: Partner 'zzz' does not exist and never did, so no postbacks match. Partners: neta."),
        (["deliveries", "--failed", "--app", "demo-ap"],
         "Error: App 'demo-ap' does not exist. Did you mean 'demo-app'?"),
        (["resend", "--failed", "--app", "zzz"], "Error: App 'zzz' does not exist (existing: demo-app)."),
    ],
    ids=["resend partner typo", "deliveries unknown partner", "deliveries app typo", "resend unknown app"],
)
def test_filter_naming_nothing_is_rejected(daemon, make_receiver, args, message):
    receiver, _status = switchable_receiver(make_receiver, 200)
    daemon.start()
    add_app(daemon)
    add_partner(daemon, "neta", receiver.url)

    result = daemon.cli(*args, expect=1)

    assert result.output.strip() == message


def test_resend_during_an_attempt_is_rejected(daemon, make_raw_server, tmp_path):
    server = make_raw_server(hang)
    daemon.start("--attempt-timeout", "60s")
    add_app(daemon)
    add_partner(daemon, "hangnet", server.url)
    add_postback(daemon, "hangnet")
    send(daemon, tmp_path, [install(1)])
    daemon.wait_status(lambda s: s["in_flight"] == 1)
    pending = deliveries(daemon, "--pending")["postbacks"]

    result = daemon.cli("resend", pending[0]["postback_id"], expect=1)
    table = daemon.cli("deliveries", "--pending").output

    assert pending[0]["in_flight"] is True
    assert "has an attempt in flight. Run the resend again when it has finished." in result.output
    assert "in flight" in table


def test_deliveries_filters_and_limit(daemon, make_receiver, tmp_path):
    receiver, _status = switchable_receiver(make_receiver, 200)
    daemon.start()
    add_app(daemon)
    add_partner(daemon, "neta", receiver.url)
    add_partner(daemon, "netb", receiver.url)
    add_postback(daemon, "neta")
    add_postback(daemon, "netb")
    send(daemon, tmp_path, [install(n) for n in range(5)])
    daemon.wait_status(lambda s: all(p["delivered"] == 5 for p in s["partners"]))

    everything = deliveries(daemon, "--limit", "100")["postbacks"]
    only_b = deliveries(daemon, "--partner", "netb")["postbacks"]
    limited = deliveries(daemon, "--delivered", "--limit", "3")["postbacks"]
    table = daemon.cli("deliveries", "--limit", "2").output.splitlines()

    assert len(everything) == 10
    assert {p["network"] for p in only_b} == {"netb"}
    assert len(only_b) == 5
    assert len(limited) == 3
    assert len({p["postback_id"] for p in everything}) == 10
    assert table[0].split() == ["postback", "app", "partner", "event", "status", "attempts", "code", "duration",
                                "time", "error"]
    assert len(table) == 4
    assert "delivered" in table[1]
    assert " 200 " in table[1]


def test_deliveries_limit_zero_lists_more_than_default(daemon, make_receiver, tmp_path):
    receiver, _status = switchable_receiver(make_receiver, 200)
    daemon.start()
    one_partner(daemon, receiver)
    send(daemon, tmp_path, [install(n) for n in range(25)])
    daemon.wait_status(lambda s: s["partners"][0]["delivered"] == 25)

    default = deliveries(daemon)["postbacks"]
    unlimited = deliveries(daemon, "--limit", "0")["postbacks"]
    unlimited_delivered = deliveries(daemon, "--delivered", "--limit", "0")["postbacks"]

    assert len(default) == 20
    assert len(unlimited) == 25
    assert len(unlimited_delivered) == 25


def test_deliveries_json_times_are_rfc3339(daemon, make_receiver, tmp_path):
    receiver, _status = switchable_receiver(make_receiver, 500)
    daemon.start("--retry-delays", "1h")
    one_partner(daemon, receiver, retries=1)
    add_postback(daemon, "localnet", "Purchase", delay="1h")
    send(daemon, tmp_path, [install(1), {**install(2), "type": "event", "id": "p2", "name": "Purchase"}])
    daemon.wait_status(lambda s: s["partners"][0]["retried"] == 1)

    listed = {p["event_id"]: p for p in deliveries(daemon, "--pending")["postbacks"]}

    retrying, waiting = listed["i1"], listed["p2"]
    [attempt] = retrying["attempts"]
    assert RFC3339_MS.fullmatch(attempt["started"])
    assert RFC3339_MS.fullmatch(attempt["next_due"])
    assert RFC3339_MS.fullmatch(retrying["due"])
    assert RFC3339_MS.fullmatch(waiting["due"])
    assert waiting["attempts"] == []
    assert isinstance(attempt["duration"], float)
    assert "time" not in attempt


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["resend"], "Missing POSTBACK_ID"),
        (["resend", "--partner", "f500"], "--partner works only with --failed. Add --failed to resend every failed "
                                          "postback that matches, or give a POSTBACK_ID instead."),
        (["resend", "--app", "a", "--since", "2h"], "--app and --since work only with --failed."),
        (["resend", "pb_1", "--failed"], "Give either POSTBACK_ID or --failed, not both."),
        (["resend", "pb_1", "--partner", "neta"], "--app, --partner and --since apply only with --failed."),
        (["resend", "--failed", "--since", "yesterday"], "'yesterday' is neither a time nor a duration"),
        (["resend", "--failed", "--since", "2026-01-01T00:00:00"], "has no UTC offset"),
        (["deliveries", "--limit", "-1"], "-1 is not in the range x>=0"),
        (["deliveries", "--pending", "--failed"], "Give at most one of --pending, --failed and --delivered"),
    ],
)
def test_command_line_errors(daemon, args, message):
    daemon.start()

    result = daemon.cli(*args, expect=2)

    assert message in result.output


def test_unknown_postback_id(daemon):
    daemon.start()

    result = daemon.cli("resend", "pb_0000", expect=1)

    assert "Unknown postback id 'pb_0000'" in result.output
    assert "`postbackd deliveries` lists postback ids" in result.output


@pytest.mark.parametrize(
    ("op", "args", "message"),
    [
        ("deliveries", {"status": "lost"}, "Invalid status 'lost': use pending, failed or delivered."),
        ("deliveries", {"limit": "ten"}, "Invalid limit 'ten': expected a whole number of postbacks, or 0 for all."),
        ("deliveries", {"limit": -1}, "Invalid limit -1"),
        ("deliveries", {"network": 7}, "Invalid network 7: expected text."),
        ("resend", {}, "Missing argument 'postback_id'"),
        ("resend", {"network": "neta"}, "The filter network works only with failed=true. Add failed=true"),
        ("resend", {"failed": "yes"}, "Invalid failed 'yes': expected true or false."),
        ("resend", {"postback_id": "pb_1", "failed": True}, "Give either a postback id or failed=true, not both."),
        ("resend", {"postback_id": "pb_1", "since": 5}, "The filters app, network and since apply only"),
        ("resend", {"failed": True, "since": "yesterday"}, "Invalid since 'yesterday': expected epoch seconds."),
    ],
)
def test_control_argument_errors(daemon, op, args, message):
    daemon.start()

    response = daemon.control(op, **args)

    assert response["ok"] is False
    assert message in response["error"]
