"""End to end: a daemon subprocess, the real CLI, real sockets and a real HTTP receiver."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

from tests.conftest import setup_app, write_lines

EXAMPLES = Path(__file__).resolve().parents[2] / "postbackd" / "examples"


def install(event_id: str, device: str, **extra) -> dict:
    return {"type": "install", "id": event_id, "app": "demo-app", "device": device,
            "time": "2026-12-01T10:00:00Z", **extra}


def purchase(event_id: str, device: str, **extra) -> dict:
    return {"type": "event", "id": event_id, "app": "demo-app", "device": device,
            "time": "2026-12-01T11:00:00Z", "name": "Purchase", **extra}


def test_send_delivers_installs_and_events(daemon, receiver, tmp_path):
    daemon.start()
    setup_app(daemon, receiver)
    path = write_lines(tmp_path / "in.jsonl", [install("i1", "d1"), purchase("e1", "d1")])

    result = daemon.cli("send", str(path))

    assert result.output.strip().endswith("accepted 2, duplicate 0, rejected 0")
    requests = receiver.wait_for(2)
    by_id = {r["query"]["id"]: r for r in requests}
    assert by_id["i1"]["query"]["event"] == "_install"
    assert by_id["e1"]["query"]["event"] == "Purchase"
    assert by_id["e1"]["query"]["device"] == "d1"
    assert by_id["i1"]["query"]["pb"].startswith("pb_")


def test_repeated_id_is_not_delivered_twice(daemon, receiver, tmp_path):
    daemon.start()
    setup_app(daemon, receiver)
    path = write_lines(tmp_path / "in.jsonl", [install("i1", "d1"), install("i1", "d1")])

    first = daemon.cli("send", str(path))
    second = daemon.cli("send", str(path))

    assert "accepted 1, duplicate 1, rejected 0" in first.output
    assert "accepted 0, duplicate 2, rejected 0" in second.output
    receiver.wait_for(1)
    daemon.wait_status(lambda s: s["partners"][0]["delivered"] == 1)
    assert len(receiver.requests) == 1


def test_malformed_line_is_rejected_and_neighbours_delivered(daemon, receiver, tmp_path):
    daemon.start()
    setup_app(daemon, receiver)
    path = write_lines(tmp_path / "in.jsonl", [
        install("i1", "d1"),
        '{"type": "install", "id": ',
        purchase("e1", "d1"),
        {"type": "event", "id": "e2", "app": "demo-app", "device": "d1", "time": "yesterday", "name": "Purchase"},
        purchase("e3", "d1"),
    ])

    result = daemon.cli("send", str(path), expect=1)

    assert f"{path}:2: Invalid JSON" in result.output
    assert f"{path}:4: Invalid `time` 'yesterday'" in result.output
    assert "accepted 3, duplicate 0, rejected 2" in result.output
    ids = sorted(r["query"]["id"] for r in receiver.wait_for(3))
    assert ids == ["e1", "e3", "i1"]


def test_kochava_example_file_is_delivered(daemon, receiver, tmp_path):
    daemon.start()
    for app, platform, bundle in (("kotestapp-android-1a2b3c", "android", "com.example.kotest"),
                                  ("kotestapp-ios-4d5e6f", "ios", "com.example.KoTest")):
        daemon.cli("app", "add", app, "--platform", platform, "--bundle-id", bundle, "--name", "KoTest")
        daemon.cli("partner", "add", app, "localnet", "--integration", "custom", "--field",
                   f"url={receiver.url}/pb?event={{event_name}}&app={{app_id}}&ua={{user_agent}}&rev={{revenue}}"
                   f"&cur={{currency}}&idfa={{idfa}}&adid={{adid}}")
        for event in ("install", "Purchase", "Level Complete", "SessionBegin"):
            daemon.cli("postback", "add", app, "localnet", event, "--method", "all")
    example = EXAMPLES / "kochava-s2s.jsonl"
    line_count = sum(1 for line in example.read_text().splitlines() if line.strip())

    first = daemon.cli("send", "--format", "kochava", str(example))
    again = daemon.cli("send", "--format", "kochava", str(example))

    assert f"accepted {line_count}, duplicate 0, rejected 0" in first.output
    assert f"accepted 0, duplicate {line_count}, rejected 0" in again.output
    requests = receiver.wait_for(line_count - 1)
    events = sorted(r["query"]["event"] for r in requests)
    assert "_install" in events
    assert "Purchase" in events
    purchases = [r["query"] for r in requests if r["query"]["event"] == "Purchase"]
    assert {(q["rev"], q["cur"]) for q in purchases} == {("2.49", "GBP"), ("9.99", "EUR")}
    user_agents = {r["query"]["ua"] for r in requests}
    assert any(ua.startswith("Mozilla/5.0 (Linux; Android 15") for ua in user_agents)


def test_restart_keeps_config_and_does_not_resend(daemon, receiver, tmp_path):
    daemon.start()
    setup_app(daemon, receiver)
    path = write_lines(tmp_path / "in.jsonl", [install("i1", "d1"), purchase("e1", "d1")])
    daemon.cli("send", str(path))
    receiver.wait_for(2)
    daemon.wait_status(lambda s: s["partners"][0]["delivered"] == 2)
    assert daemon.stop() == 0

    daemon.start()
    status = daemon.control("status")["result"]
    assert [a["app"] for a in status["apps"]] == ["demo-app"]
    assert status["partners"][0]["network"] == "localnet"
    assert status["partners"][0]["delivered"] == 2
    resent = daemon.cli("send", str(path))
    assert "accepted 0, duplicate 2, rejected 0" in resent.output

    later = write_lines(tmp_path / "later.jsonl", [purchase("e2", "d1")])
    daemon.cli("send", str(later))
    requests = receiver.wait_for(3)
    daemon.wait_status(lambda s: s["partners"][0]["delivered"] == 3)
    assert sorted(r["query"]["id"] for r in requests) == ["e1", "e2", "i1"]


def test_macro_values_cannot_change_url_structure(daemon, receiver, tmp_path):
    daemon.start()
    setup_app(daemon, receiver, url_query="item={event_data.item}&id={event_id}")
    tricky = "Gem & Bonus #1 a/b ?x=y Zürich 東京"
    path = write_lines(tmp_path / "in.jsonl", [purchase("e1", "d1", data={"item": tricky})])

    daemon.cli("send", str(path))

    request = receiver.wait_for(1)[0]
    assert request["path"] == "/pb"
    assert request["query"]["item"] == tricky
    assert request["query"]["id"] == "e1"
    assert set(request["query"]) == {"item", "id"}
    assert urlsplit(request["target"]).fragment == ""


def test_stdin_and_dash_are_read(daemon, receiver):
    daemon.start()
    setup_app(daemon, receiver)

    result = daemon.cli("send", "-", input=json.dumps(install("i1", "d1")) + "\n")

    assert "accepted 1, duplicate 0, rejected 0" in result.output
    receiver.wait_for(1)


def test_commands_explain_when_daemon_is_not_running(daemon):
    for args in (["status"], ["app", "add", "x", "--platform", "ios", "--bundle-id", "com.x.y", "--name", "X"],
                 ["send", "-"]):
        result = daemon.cli(*args, expect=1, input="")
        assert f"nothing listens on {daemon.socket_dir}" in result.output
        assert "postbackd run" in result.output


def raw_ingest(daemon, payload: bytes) -> list[dict]:
    """Send raw bytes to ingest.sock and return the decoded responses."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(daemon.socket_dir / "ingest.sock"))
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return [json.loads(line) for line in data.splitlines()]


def test_bad_lines_get_one_response_each(daemon, receiver):
    daemon.start()
    setup_app(daemon, receiver)
    good = json.dumps(install("i1", "d1")).encode()
    payload = b"\n".join([
        b"\xff\xfe not utf-8",
        b"x" * (1024 * 1024 + 10),
        json.dumps({**install("i2", "d2"), "app": "no-such-app"}).encode(),
        json.dumps({**install("i3", "d3"), "country": "XX"}).encode(),
        json.dumps({**install("i4", "d4"), "colour": "red"}).encode(),
        json.dumps({"type": "event", "id": "e9", "app": "demo-app", "device": "d1", "time": 1}).encode(),
        b"#format nonsense",
        good,
    ]) + b"\n"

    responses = raw_ingest(daemon, payload)

    assert [r["line"] for r in responses] == list(range(1, 9))
    assert [r["status"] for r in responses] == ["rejected"] * 7 + ["accepted"]
    errors = [r["error"] for r in responses[:7]]
    assert "JSON" in errors[0] or "UTF-8" in errors[0]
    assert "Line too long" in errors[1]
    assert "Unknown app 'no-such-app'" in errors[2]
    assert "Invalid `country` 'XX'" in errors[3]
    assert "colour" in errors[4]
    assert "Missing `name`" in errors[5]
    assert "Unknown directive" in errors[6]
    receiver.wait_for(1)


def test_future_time_is_replaced_by_received_time(daemon, receiver):
    daemon.start()
    setup_app(daemon, receiver, url_query="id={event_id}&t={time}")
    event = install("i1", "d1", time="2099-01-01T00:00:00Z")

    responses = raw_ingest(daemon, json.dumps(event).encode() + b"\n")

    assert responses[0]["status"] == "accepted"
    request = receiver.wait_for(1)[0]
    assert not request["query"]["t"].startswith("2099")


def test_second_daemon_on_same_data_dir_is_refused(daemon, tmp_path):
    daemon.start()
    other_sockets = tmp_path / "other-sockets"

    result = subprocess.run(
        [sys.executable, "-m", "postbackd", "run", "--data-dir", str(daemon.data_dir),
         "--socket-dir", str(other_sockets), "--config", str(daemon.data_dir.parent / "postbackd.toml")],
        capture_output=True, text=True, timeout=60,
    )

    assert result.returncode == 1
    assert "already open for writing by another process" in result.stderr
    assert not (other_sockets / "ingest.sock").exists()
    assert daemon.control("ping")["ok"]


def test_graceful_stop_saves_a_snapshot(daemon, receiver, tmp_path):
    daemon.start()
    setup_app(daemon, receiver)
    daemon.cli("send", str(write_lines(tmp_path / "in.jsonl", [install("i1", "d1"), purchase("e1", "d1")])))
    receiver.wait_for(2)
    last = daemon.control("status")["result"]["last_seq"]

    assert daemon.stop() == 0
    daemon.start()

    assert daemon.control("status")["result"]["snapshot_seq"] >= last
    assert "restored the snapshot of log position" in daemon.log()
