"""The real daemon as a systemd service: notifications, signals, reload and graceful stop."""

from __future__ import annotations

import json
import signal
import socket
import threading

import pytest

from postbackd.eventlog import Attempted, Event, connect, log_path, read_from
from tests.conftest import WAIT_SECONDS, setup_app
from tests.daemon.service import NotifySocket, send_ingest, spawn, wait_exit, wait_for_log

INTEGRATION = """
id = "{id}"
name = "Test network {id}"

[[fields]]
name = "account"
required = true
description = "Account id at the test network"
pattern = "[a-z0-9]{{1,20}}"

[install]
method = "GET"
url = "http://127.0.0.1:{port}/install?pb={{postback_id}}&account={{field.account}}"

[event]
method = "GET"
url = "http://127.0.0.1:{port}/event?pb={{postback_id}}&account={{field.account}}"
"""


@pytest.fixture
def notify(short_tmp):
    listener = NotifySocket(short_tmp / "notify")
    yield listener
    listener.close()


def install(event_id: str, device: str = "d1") -> dict:
    return {"type": "install", "id": event_id, "app": "demo-app", "device": device, "time": "2026-12-01T10:00:00Z"}


def ping(path) -> dict:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(path))
        sock.sendall(b'{"op": "status"}\n')
        data = b""
        while not data.endswith(b"\n"):
            data += sock.recv(65536)
    return json.loads(data)


def logged(daemon, kind: type) -> list:
    conn = connect(log_path(daemon.data_dir), readonly=True)
    try:
        return [record for _, _, record in read_from(conn) if isinstance(record, kind)]
    finally:
        conn.close()


def attempts(daemon) -> list[str]:
    return [record.outcome for record in logged(daemon, Attempted)]


# --- readiness, status and stop notifications ---------------------------------------------


def test_ready_after_rebuild_and_sockets_accept(daemon, receiver, notify):
    daemon.start()
    setup_app(daemon, receiver)
    assert daemon.stop() == 0

    spawn(daemon, environ={"NOTIFY_SOCKET": str(notify.path)})
    notify.wait_for("READY=1")
    # Both sockets accept at the moment READY=1 arrives, and the state is the rebuilt one.
    status = ping(daemon.socket_dir / "control.sock")
    assert status["ok"]
    assert [app["app"] for app in status["result"]["apps"]] == ["demo-app"]
    assert send_ingest(daemon.socket_dir / "ingest.sock", [install("i1")])[0]["status"] == "accepted"

    assert notify.messages[0] == "STATUS=Rebuilding the state from the event log"
    assert notify.messages[-1] == "READY=1"
    notify.wait_for(lambda message: message.startswith("STATUS=events 1,"))

    daemon.process.send_signal(signal.SIGTERM)
    notify.wait_for("STOPPING=1")
    assert wait_exit(daemon) == 0
    assert notify.messages.count("READY=1") == 1

    log = daemon.log()
    for line in ("starting: data dir", "ready: ingest", "stopping on SIGTERM", "stopped"):
        assert line in log


def test_status_line_counts_deliveries(daemon, receiver, notify, monkeypatch):
    monkeypatch.setenv("NOTIFY_SOCKET", str(notify.path))
    daemon.start()
    setup_app(daemon, receiver)

    responses = send_ingest(daemon.socket_dir / "ingest.sock", [install("i1"), install("i2", "d2")])

    assert [response["status"] for response in responses] == ["accepted", "accepted"]
    notify.wait_for("STATUS=events 2, pending 0, in flight 0, delivered 2, failed 0")


def test_watchdog_pings_from_daemon(daemon, notify, monkeypatch):
    monkeypatch.setenv("NOTIFY_SOCKET", str(notify.path))
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    daemon.start()

    for _ in range(3):
        notify.wait_for("WATCHDOG=1")
    assert "Sending systemd watchdog pings every 0.1 s" in daemon.log()


def test_watchdog_for_other_pid_ignored(daemon, notify, monkeypatch):
    monkeypatch.setenv("NOTIFY_SOCKET", str(notify.path))
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    monkeypatch.setenv("WATCHDOG_PID", "1")
    daemon.start()
    notify.wait_for("READY=1")

    daemon.process.send_signal(signal.SIGTERM)
    notify.wait_for("STOPPING=1")
    assert wait_exit(daemon) == 0
    assert "WATCHDOG=1" not in notify.messages


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"NOTIFY_SOCKET": "vsock:2:1234"}, "Unsupported NOTIFY_SOCKET 'vsock:2:1234'"),
        ({"NOTIFY_SOCKET": "@postbackd-test", "WATCHDOG_USEC": "soon"}, "Invalid WATCHDOG_USEC 'soon'"),
    ],
)
def test_invalid_systemd_environment_stops_start(daemon, environ, expected):
    spawn(daemon, environ=environ)

    assert wait_exit(daemon) == 1
    assert f"Error: {expected}" in daemon.log()
    assert not (daemon.socket_dir / "control.sock").exists()


# --- SIGHUP: reloading the integration files ------------------------------------------------


def test_sighup_reloads_integrations(daemon, receiver):
    daemon.start()
    setup_app(daemon, receiver)
    integrations = daemon.data_dir / "integrations"
    integrations.mkdir()
    (integrations / "testnet.toml").write_text(INTEGRATION.format(id="testnet", port=receiver.port))
    before = daemon.cli("partner", "add", "demo-app", "testnet", "--field", "account=a1", expect=1)
    assert "Unknown integration 'testnet'" in before.output

    daemon.process.send_signal(signal.SIGHUP)
    wait_for_log(daemon, "reloaded the integration files")

    daemon.cli("partner", "add", "demo-app", "testnet", "--field", "account=a1")
    daemon.cli("postback", "add", "demo-app", "testnet", "install", "--method", "all")
    send_ingest(daemon.socket_dir / "ingest.sock", [install("i1")])
    paths = sorted(request["path"] for request in receiver.wait_for(2))
    assert paths == ["/install", "/pb"]


def test_sighup_keeps_catalog_on_broken_file(daemon, receiver):
    integrations = daemon.data_dir / "integrations"
    integrations.mkdir(parents=True)
    (integrations / "testnet.toml").write_text(INTEGRATION.format(id="testnet", port=receiver.port))
    daemon.start()
    setup_app(daemon, receiver)
    (integrations / "testnet.toml").unlink()
    (integrations / "other.toml").write_text(INTEGRATION.format(id="other", port=receiver.port))
    (integrations / "broken.toml").write_text('id = "broken"\nname = \n')

    daemon.process.send_signal(signal.SIGHUP)
    log = wait_for_log(daemon, "reloading the integration files failed")

    failure = next(line for line in log.splitlines() if "reloading the integration files failed" in line)
    assert "ERROR" in failure
    assert str(integrations / "broken.toml") in failure
    daemon.cli("partner", "add", "demo-app", "testnet", "--field", "account=a1")
    refused = daemon.cli("partner", "add", "demo-app", "other", "--field", "account=a1", expect=1)
    assert "Unknown integration 'other'" in refused.output
    assert daemon.process.poll() is None


def test_sighup_keeps_integration_in_use(daemon, receiver):
    integrations = daemon.data_dir / "integrations"
    integrations.mkdir(parents=True)
    (integrations / "testnet.toml").write_text(INTEGRATION.format(id="testnet", port=receiver.port))
    daemon.start()
    setup_app(daemon, receiver)
    daemon.cli("partner", "add", "demo-app", "testnet", "--field", "account=a1")
    (integrations / "testnet.toml").unlink()

    daemon.process.send_signal(signal.SIGHUP)
    log = wait_for_log(daemon, "reloading the integration files failed")

    assert "partners use integrations that no file" in log
    assert "demo-app/testnet (testnet)" in log
    assert "partner set APP NETWORK --integration ID" in log
    daemon.cli("postback", "add", "demo-app", "testnet", "install", "--method", "all")
    send_ingest(daemon.socket_dir / "ingest.sock", [install("i1")])
    paths = sorted(request["path"] for request in receiver.wait_for(2))
    assert paths == ["/install", "/pb"]


# --- SIGTERM and SIGINT: graceful stop --------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_stop_lets_request_finish(daemon, receiver, signum):
    daemon.start("--shutdown-grace", "20s")
    setup_app(daemon, receiver, events=("install",))
    receiver.delay = 1.0
    send_ingest(daemon.socket_dir / "ingest.sock", [install("i1")])
    receiver.wait_for(1)

    daemon.process.send_signal(signum)

    assert wait_exit(daemon) == 0
    assert attempts(daemon) == ["delivered"]
    assert f"stopping on {signal.Signals(signum).name}" in daemon.log()
    assert "cancelling" not in daemon.log()


def test_stop_cancels_after_grace(daemon, receiver):
    daemon.start("--shutdown-grace", "0.2s")
    setup_app(daemon, receiver, events=("install",))
    receiver.delay = 5.0
    send_ingest(daemon.socket_dir / "ingest.sock", [install("i1")])
    receiver.wait_for(1)

    daemon.process.send_signal(signal.SIGTERM)

    assert wait_exit(daemon) == 0
    assert attempts(daemon) == []
    assert "grace period over: cancelling 1 in-flight requests" in daemon.log()

    # The postback is still pending in the log and goes out again after a restart.
    receiver.delay = 0.0
    daemon.start()
    requests = receiver.wait_for(2)
    assert requests[0]["query"]["pb"] == requests[1]["query"]["pb"]
    daemon.wait_status(lambda status: status["partners"][0]["delivered"] == 1)


def test_second_signal_ends_grace(daemon, receiver):
    daemon.start("--shutdown-grace", "60s")
    setup_app(daemon, receiver, events=("install",))
    receiver.delay = 30.0
    send_ingest(daemon.socket_dir / "ingest.sock", [install("i1")])
    receiver.wait_for(1)

    daemon.process.send_signal(signal.SIGTERM)
    wait_for_log(daemon, "stopping on SIGTERM")
    daemon.process.send_signal(signal.SIGTERM)

    assert wait_exit(daemon) == 0
    log = daemon.log()
    assert "SIGTERM received while stopping; cancelling in-flight work now" in log
    assert "grace period over: cancelling 1 in-flight requests" in log


def test_sighup_while_stopping_ignored(daemon, receiver):
    daemon.start("--shutdown-grace", "20s")
    setup_app(daemon, receiver, events=("install",))
    receiver.delay = 1.0
    send_ingest(daemon.socket_dir / "ingest.sock", [install("i1")])
    receiver.wait_for(1)

    daemon.process.send_signal(signal.SIGTERM)
    wait_for_log(daemon, "stopping on SIGTERM")
    daemon.process.send_signal(signal.SIGHUP)

    assert wait_exit(daemon) == 0
    assert "SIGHUP received while stopping" in daemon.log()
    assert attempts(daemon) == ["delivered"]


# Lines streamed in the stop test: enough that the stop always lands mid-stream.
STOP_TEST_LINES = 400_000


def test_stop_acknowledges_committed_lines(daemon, receiver):
    daemon.start("--shutdown-grace", "20s")
    setup_app(daemon, receiver, events=("install",))
    lines = b"".join(json.dumps(install(f"i{n}", f"d{n}")).encode() + b"\n" for n in range(STOP_TEST_LINES))

    def send_all(sock: socket.socket) -> None:
        try:
            sock.sendall(lines)
        except OSError:
            pass  # the daemon stopped reading and closed the connection

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(WAIT_SECONDS)
        sock.connect(str(daemon.socket_dir / "ingest.sock"))
        sender = threading.Thread(target=send_all, args=(sock,))
        sender.start()
        responses = sock.recv(65536)
        # The daemon is mid-stream: it has sent responses for some lines and more are on their way.
        daemon.process.send_signal(signal.SIGTERM)
        try:
            while chunk := sock.recv(65536):
                responses += chunk
        except ConnectionResetError:
            pass
        sender.join(WAIT_SECONDS)

    assert wait_exit(daemon) == 0
    statuses = [json.loads(line)["status"] for line in responses.splitlines()]
    assert set(statuses) == {"accepted"}
    committed = len(logged(daemon, Event))
    assert len(statuses) == committed
    assert 0 < committed < STOP_TEST_LINES
