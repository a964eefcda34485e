"""``postbackd audit`` against a real daemon's log: while it runs, after it stops, with a secret field."""

from __future__ import annotations

import json

from click.testing import CliRunner

from postbackd.cli import main as cli_main
from tests.conftest import write_lines

SECRET = "s3cr3t-token-4711"


def secret_integration(daemon, receiver) -> None:
    """Write an operator integration whose secret field goes into the URL."""
    directory = daemon.data_dir / "integrations"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "localsecret.toml").write_text(f'''
id = "localsecret"
name = "Local receiver with a token"

[[fields]]
name = "token"
required = true
secret = true

[install]
method = "GET"
url = "{receiver.url}/pb?token={{field.token}}&id={{event_id}}"

[event]
method = "GET"
url = "{receiver.url}/pb?token={{field.token}}&id={{event_id}}&event={{event_name}}"
''')


def audit(daemon, *args: str) -> str:
    result = CliRunner().invoke(cli_main, ["audit", "--data-dir", str(daemon.data_dir), *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_audit_of_running_and_stopped_daemon_masks_secrets(daemon, receiver, tmp_path):
    daemon.data_dir.mkdir(parents=True)
    secret_integration(daemon, receiver)
    daemon.start()
    daemon.cli("app", "add", "demo-app", "--platform", "android", "--bundle-id", "com.example.demo", "--name", "Demo")
    daemon.cli("partner", "add", "demo-app", "localnet", "--integration", "localsecret", "--field", f"token={SECRET}")
    daemon.cli("postback", "add", "demo-app", "localnet", "install", "--method", "all")
    daemon.cli("send", str(write_lines(tmp_path / "in.jsonl", [
        {"type": "install", "id": "i1", "app": "demo-app", "device": "d1", "time": "2026-12-01T10:00:00Z",
         "country": "DE"},
    ])))
    assert receiver.wait_for(1)[0]["query"]["token"] == SECRET
    daemon.wait_status(lambda s: s["partners"][0]["delivered"] == 1)

    running = audit(daemon, "--json")
    text = audit(daemon)
    assert daemon.stop() == 0
    stopped = audit(daemon, "--json")

    assert running == stopped
    (event,) = [json.loads(line) for line in running.splitlines()]
    (decision,) = event["decisions"]
    assert (event["id"], event["country"], decision["status"]) == ("i1", "DE", "delivered")
    assert decision["attempts"][0]["status_code"] == 200
    assert "token=***" in decision["attempts"][0]["url"]
    for output in (running, text, stopped):
        assert SECRET not in output
    assert "localnet: scheduled for" in text
    assert "HTTP 200" in text


def test_daemon_log_verifies_clean(daemon, receiver, tmp_path):
    daemon.start()
    daemon.cli("app", "add", "demo-app", "--platform", "android", "--bundle-id", "com.example.demo", "--name", "Demo")
    daemon.cli("partner", "add", "demo-app", "localnet", "--integration", "custom", "--field",
               f"url={receiver.url}/pb?id={{event_id}}")
    daemon.cli("postback", "add", "demo-app", "localnet", "install")
    daemon.cli("postback", "add", "demo-app", "localnet", "SessionBegin", "--method", "all")
    lines = []
    for number in range(12):
        lines.append({"type": "install", "id": f"i{number}", "app": "demo-app", "device": f"d{number % 5}",
                      "time": "2026-12-01T10:00:00Z", "attribution": {"network": "localnet" if number % 2 else "x"}})
        lines.append({"type": "event", "id": f"s{number}", "app": "demo-app", "device": f"d{number % 5}",
                      "name": "SessionBegin", "time": f"2026-12-0{2 + number % 3}T11:00:00Z"})
    daemon.cli("send", str(write_lines(tmp_path / "first.jsonl", lines[:12])))
    daemon.cli("postback", "add", "demo-app", "localnet", "Purchase", "--method", "all")
    daemon.cli("send", str(write_lines(tmp_path / "second.jsonl", lines[12:])))
    daemon.wait_status(lambda s: s["apps"][0]["events"] == 24 and s["pending"] == 0 and s["in_flight"] == 0)
    assert daemon.stop() == 0

    result = CliRunner().invoke(cli_main, ["replay", "--verify", "--data-dir", str(daemon.data_dir)])

    assert result.exit_code == 0, result.output
    assert "checked the decisions of 24 events" in result.output
    assert ": 0 mismatches" in result.output
