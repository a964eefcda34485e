"""The real daemon with sockets passed by socket activation, and the modes of sockets it binds."""

from __future__ import annotations

import grp
import os
import signal
import stat

import pytest

from tests.daemon.service import listening_socket, send_ingest, spawn, wait_exit, wait_for_log

APP = ("app", "add", "demo-app", "--platform", "android", "--bundle-id", "com.example.demo", "--name", "Demo")


def install(event_id: str) -> dict:
    return {"type": "install", "id": event_id, "app": "demo-app", "device": "d1", "time": "2026-12-01T10:00:00Z"}


def own_group() -> str:
    return grp.getgrgid(os.getgid()).gr_name


# --- socket activation ----------------------------------------------------------------------


def test_activation_serves_passed_sockets(daemon):
    # The test binds the sockets where the CLI looks (daemon.socket_dir) and points the daemon's own
    # --socket-dir elsewhere, so everything that works below went through the passed sockets.
    ingest_path = daemon.socket_dir / "ingest.sock"
    control_path = daemon.socket_dir / "control.sock"
    own_dir = daemon.socket_dir / "own"
    with listening_socket(ingest_path) as ingest, listening_socket(control_path) as control:
        spawn(daemon, "--socket-dir", str(own_dir),
              environ={"LISTEN_FDS": "2", "LISTEN_FDNAMES": "ingest:control"}, passed=[ingest, control])
        daemon.wait_ready()

        daemon.cli(*APP)
        responses = send_ingest(ingest_path, [install("i1")])

        assert [response["status"] for response in responses] == ["accepted"]
        assert daemon.wait_status(lambda status: status["apps"] == [{"app": "demo-app", "events": 1}])
        assert not (own_dir / "ingest.sock").exists()
        assert not (own_dir / "control.sock").exists()
        log = daemon.log()
        assert f"ready: ingest {ingest_path} (from systemd), control {control_path} (from systemd)" in log

        assert daemon.stop() == 0
        # The socket files belong to the socket units, which keep listening across restarts.
        assert ingest_path.exists()
        assert control_path.exists()


def test_activation_binds_missing_socket(daemon):
    passed_dir = daemon.socket_dir / "passed"
    passed_dir.mkdir()
    ingest_path = passed_dir / "ingest.sock"
    with listening_socket(ingest_path) as ingest:
        spawn(daemon, "--ingest-group", own_group(),
              environ={"LISTEN_FDS": "1", "LISTEN_FDNAMES": "ingest"}, passed=[ingest])
        daemon.wait_ready()

        daemon.cli(*APP)
        assert [response["status"] for response in send_ingest(ingest_path, [install("i1")])] == ["accepted"]
        assert not (daemon.socket_dir / "ingest.sock").exists()
        assert stat.S_IMODE((daemon.socket_dir / "control.sock").stat().st_mode) == 0o600
        log = daemon.log()
        assert f"ingest_group '{own_group()}' is not applied: systemd passed the ingest socket" in log
        assert "SocketGroup=" in log

        assert daemon.stop() == 0
        assert not (daemon.socket_dir / "control.sock").exists()
        assert ingest_path.exists()


@pytest.mark.parametrize(
    ("count", "names", "expected"),
    [
        ("1", "events", "Socket activation passed file descriptor 3 named 'events'"),
        ("2", "ingest", "LISTEN_FDNAMES 'ingest' names 1 sockets but LISTEN_FDS is 2"),
    ],
)
def test_activation_rejects_bad_names(daemon, count, names, expected):
    with listening_socket(daemon.socket_dir / "a.sock") as first, listening_socket(daemon.socket_dir / "b.sock") as second:
        spawn(daemon, environ={"LISTEN_FDS": count, "LISTEN_FDNAMES": names}, passed=[first, second][: int(count)])
        assert wait_exit(daemon) == 1
    assert f"Error: {expected}" in daemon.log()
    assert not (daemon.socket_dir / "control.sock").exists()


# --- sockets the daemon binds itself --------------------------------------------------------


def test_own_sockets_private_by_default(daemon):
    daemon.start()

    for name in ("ingest.sock", "control.sock"):
        status = (daemon.socket_dir / name).stat()
        assert stat.S_ISSOCK(status.st_mode)
        assert stat.S_IMODE(status.st_mode) == 0o600
    assert daemon.stop() == 0
    assert not (daemon.socket_dir / "ingest.sock").exists()
    assert not (daemon.socket_dir / "control.sock").exists()


@pytest.mark.parametrize(("option", "name", "other"), [
    ("--ingest-group", "ingest.sock", "control.sock"),
    ("--control-group", "control.sock", "ingest.sock"),
])
def test_own_socket_group(daemon, option, name, other):
    daemon.start(option, own_group())

    status = (daemon.socket_dir / name).stat()
    assert stat.S_IMODE(status.st_mode) == 0o660
    assert status.st_gid == os.getgid()
    assert stat.S_IMODE((daemon.socket_dir / other).stat().st_mode) == 0o600


def test_socket_group_from_settings_file(daemon):
    settings = daemon.data_dir.parent / "postbackd.toml"
    settings.write_text(f'ingest_group = "{own_group()}"\n')
    daemon.start()

    assert stat.S_IMODE((daemon.socket_dir / "ingest.sock").stat().st_mode) == 0o660
    assert stat.S_IMODE((daemon.socket_dir / "control.sock").stat().st_mode) == 0o600


@pytest.mark.parametrize("option", ["--ingest-group", "--control-group"])
def test_unknown_socket_group_stops_start(daemon, option):
    spawn(daemon, option, "postbackd-no-such-group")

    assert wait_exit(daemon) == 1
    log = daemon.log()
    assert "Error: Group 'postbackd-no-such-group' for socket" in log
    assert "groupadd --system postbackd-no-such-group" in log
    assert not (daemon.socket_dir / "ingest.sock").exists()
    assert not (daemon.socket_dir / "control.sock").exists()


def test_running_daemon_keeps_its_sockets(daemon, tmp_path):
    daemon.start()
    second = type(daemon)(tmp_path / "second" / "data", daemon.socket_dir)
    spawn(second)

    assert wait_exit(second) == 1
    assert f"Another postbackd is already listening on {daemon.socket_dir / 'ingest.sock'}" in second.log()
    assert daemon.control("ping")["ok"]


def test_sigterm_removes_own_sockets_only(daemon):
    daemon.start()
    stray = daemon.socket_dir / "other.sock"
    stray.write_text("not ours")

    daemon.process.send_signal(signal.SIGTERM)
    assert wait_exit(daemon) == 0
    wait_for_log(daemon, "stopped")
    assert stray.exists()
    assert not (daemon.socket_dir / "control.sock").exists()
