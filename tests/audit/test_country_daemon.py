"""A real daemon sends the install's country in {country} and audit names it as the country used."""

from __future__ import annotations

import json

from click.testing import CliRunner

from postbackd.cli import main as cli_main
from tests.conftest import write_lines


def test_install_country_reaches_partner_and_audit(daemon, receiver, tmp_path):
    daemon.start()
    daemon.cli("app", "add", "demo-app", "--platform", "android", "--bundle-id", "com.example.demo", "--name", "Demo")
    daemon.cli("partner", "add", "demo-app", "localnet", "--integration", "custom", "--field",
               f"url={receiver.url}/pb?id={{event_id}}&country={{country}}")
    daemon.cli("postback", "add", "demo-app", "localnet", "install", "--method", "all")
    daemon.cli("postback", "add", "demo-app", "localnet", "Purchase", "--method", "all", "--allow-only", "US")
    daemon.cli("send", str(write_lines(tmp_path / "in.jsonl", [
        {"type": "install", "id": "i1", "app": "demo-app", "device": "d1", "time": "2026-12-01T10:00:00Z",
         "country": "US"},
        {"type": "event", "id": "p1", "app": "demo-app", "device": "d1", "time": "2026-12-01T11:00:00Z",
         "name": "Purchase"},
    ])))

    requests = receiver.wait_for(2)
    daemon.wait_status(lambda s: s["partners"][0]["delivered"] == 2)
    assert {r["query"]["id"]: r["query"]["country"] for r in requests} == {"i1": "US", "p1": "US"}

    result = CliRunner().invoke(cli_main, ["audit", "--data-dir", str(daemon.data_dir), "--event-id", "p1"])
    assert result.exit_code == 0, result.output
    assert "no country in the event" in result.stdout
    assert "localnet: scheduled for" in result.stdout
    assert "delivered  country US (from install)" in result.stdout

    result = CliRunner().invoke(cli_main, ["audit", "--data-dir", str(daemon.data_dir), "--event-id", "p1", "--json"])
    (decision,) = json.loads(result.stdout)["decisions"]
    assert (decision["country"], decision["country_source"]) == ("US", "install")

    result = CliRunner().invoke(cli_main, ["replay", "--data-dir", str(daemon.data_dir), "--verify"])
    assert result.exit_code == 0, result.output
    assert ": 0 mismatches" in result.stdout
