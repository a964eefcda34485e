"""Safe requests: header injection, secret masking everywhere, and private endpoints refused."""

from __future__ import annotations

import json

from click.testing import CliRunner

from postbackd.cli import main as cli_main
from tests.delivery.conftest import log_records
from tests.delivery.daemon_setup import APP, add_app, add_partner, add_postback, deliveries, install, send
from tests.delivery.servers import ScriptedReceiver

SECRET = "Zk3vQ9sPq7LmW2xY8tR4nB6c"

INTEGRATION = """
id = "secretnet"
name = "Secret Net"

[[fields]]
name = "api_key"
required = true
secret = true

[install]
method = "POST"
url = "{base}/pb/{{field.api_key}}?id={{event_id}}&pb={{postback_id}}"
body = '{{{{"postback_id": "{{postback_id}}", "key": "{{field.api_key}}", "note": "{{event_data.note}}"}}}}'

[install.headers]
X-Api-Key = "{{field.api_key}}"
X-Note = "{{event_data.note}}"

[event]
url = "{base}/ev/{{field.api_key}}?id={{event_id}}"
"""


def echo_everything(request: dict) -> tuple[int, dict[str, str], bytes]:
    """Respond with the whole request, so any secret in it comes back in the response body."""
    status = 500 if request["query"].get("id") == "i3" else 200
    echoed = json.dumps({"target": request["target"], "headers": request["headers"],
                         "body": request["body"].decode()})
    return status, {}, echoed.encode()


def audit(daemon, *args: str) -> str:
    """Run `postbackd audit`, which reads the event log directly."""
    result = CliRunner().invoke(cli_main, ["audit", "--data-dir", str(daemon.data_dir), *args])
    assert result.exit_code == 0, result.output
    return result.output


def write_integration(daemon, receiver: ScriptedReceiver) -> None:
    directory = daemon.data_dir / "integrations"
    directory.mkdir(parents=True)
    (directory / "secretnet.toml").write_text(INTEGRATION.format(base=receiver.url))


def test_secrets_stay_out_of_records_output_and_logs(daemon, make_receiver, tmp_path):
    receiver = make_receiver(echo_everything)
    write_integration(daemon, receiver)
    daemon.start("--log-level", "DEBUG")
    add_app(daemon)
    daemon.cli("partner", "add", APP, "secretnet", "--field", f"api_key={SECRET}")
    add_postback(daemon, "secretnet", retries=1)
    events = [
        {**install(1), "data": {"note": "hello"}},
        {**install(2), "data": {"note": "line one\r\nX-Injected: yes"}},
        {**install(3), "data": {"note": "fails"}},
    ]

    send(daemon, tmp_path, events)
    daemon.wait_status(lambda s: s["partners"][0]["delivered"] == 1 and s["partners"][0]["failed"] == 2)

    requests = receiver.requests
    ids = [r["query"]["id"] for r in requests]
    assert sorted(ids) == ["i1", "i3", "i3"]
    first = next(r for r in requests if r["query"]["id"] == "i1")
    assert first["headers"]["X-Api-Key"] == SECRET
    assert first["headers"]["X-Note"] == "hello"
    assert json.loads(first["body"])["key"] == SECRET
    assert all("X-Injected" not in r["headers"] for r in requests)

    listed = {p["event_id"]: p for p in deliveries(daemon, "--limit", "10")["postbacks"]}
    injected = listed["i2"]["attempts"]
    assert [(a["outcome"], a["failure_class"]) for a in injected] == [("failed", "render_error")]
    assert "contains a CR, LF or NUL character and cannot be sent in header 'X-Note'" in injected[0]["error"]
    assert [a["outcome"] for a in listed["i3"]["attempts"]] == ["retry", "failed"]
    delivered = listed["i1"]["attempts"][0]
    assert delivered["url"].startswith(f"{receiver.url}/pb/***?id=i1&pb=pb_")
    assert '"X-Api-Key": "***"' in delivered["response_head"]

    outputs = {
        "deliveries --json": daemon.cli("deliveries", "--json", "--limit", "10").output,
        "deliveries": daemon.cli("deliveries", "--limit", "10").output,
        "deliveries --failed": daemon.cli("deliveries", "--failed").output,
        "status": daemon.cli("status", "--json").output,
        "daemon log": daemon.log(),
        "audit --json": audit(daemon, "--json"),
        "audit": audit(daemon),
    }
    for name, text in outputs.items():
        assert SECRET not in text, name
    assert "***" in outputs["deliveries --json"]
    assert "render_error" in outputs["audit --json"]
    for seq, _received, record in log_records(daemon.data_dir):
        if type(record).__name__ in ("Attempted", "Decided", "ResendRequested", "Event"):
            assert SECRET not in repr(record), f"record {seq}"


def test_private_endpoints_are_refused_without_the_flag(strict_daemon, make_receiver, tmp_path):
    receiver = make_receiver()
    strict_daemon.start()
    add_app(strict_daemon)
    add_partner(strict_daemon, "byaddress", receiver.url)
    add_partner(strict_daemon, "byname", f"http://localhost:{receiver.port}")
    add_postback(strict_daemon, "byaddress")
    add_postback(strict_daemon, "byname")

    send(strict_daemon, tmp_path, [install(1)])
    strict_daemon.wait_status(lambda s: all(p["failed"] == 1 for p in s["partners"]))

    failed = {p["network"]: p for p in deliveries(strict_daemon, "--failed")["postbacks"]}
    assert receiver.requests == []
    for network, host in (("byaddress", "127.0.0.1"), ("byname", "localhost")):
        attempts = failed[network]["attempts"]
        assert len(attempts) == 1
        assert attempts[0]["failure_class"] == "private_endpoint"
        assert f"The endpoint host '{host}' resolves to " in attempts[0]["error"]
        assert "--allow-private-endpoints" in attempts[0]["error"]
