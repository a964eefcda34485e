import grp
import json
import logging
import os
import pwd
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest
import trio

from postbackd.daemon._settings import Settings, parse_duration
from postbackd.daemon._systemd import (
    SOCKET_NAMES,
    Notifier,
    ServiceSetupError,
    apply_socket_permissions,
    listen_fds,
    run_watchdog,
)

UNIT_DIR = Path(__file__).resolve().parents[2] / "contrib" / "systemd"
UNIT_FILES = ("postbackd.service", "postbackd-ingest.socket", "postbackd-control.socket")


# --- readiness and watchdog notifications -------------------------------------------------


@pytest.fixture
def notify_path_socket(tmp_path):
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = tmp_path / "notify"
    receiver.bind(str(path))
    receiver.setblocking(False)
    yield receiver, str(path)
    receiver.close()


@pytest.fixture
def notify_abstract_socket():
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    name = f"postbackd-test-{uuid.uuid4().hex}"
    receiver.bind("\0" + name)
    receiver.setblocking(False)
    yield receiver, "@" + name
    receiver.close()


def received(receiver: socket.socket) -> list[str]:
    messages = []
    while True:
        try:
            messages.append(receiver.recv(4096).decode("utf-8"))
        except BlockingIOError:
            return messages


@pytest.mark.parametrize("fixture", ["notify_path_socket", "notify_abstract_socket"])
def test_notifier_sends_each_message(request, fixture):
    receiver, address = request.getfixturevalue(fixture)
    notifier = Notifier({"NOTIFY_SOCKET": address})
    assert notifier.enabled
    notifier.ready()
    notifier.status("Replaying log: 10 records")
    notifier.watchdog()
    notifier.stopping()
    notifier.close()
    assert received(receiver) == [
        "READY=1",
        "STATUS=Replaying log: 10 records",
        "WATCHDOG=1",
        "STOPPING=1",
    ]


def test_notifier_status_is_utf8_single_line(notify_path_socket):
    receiver, address = notify_path_socket
    Notifier({"NOTIFY_SOCKET": address}).status("Zürich ✓\nsecond line")
    assert received(receiver) == ["STATUS=Zürich ✓ second line"]


def test_notifier_disabled_without_socket():
    notifier = Notifier({})
    assert not notifier.enabled
    notifier.ready()
    notifier.status("idle")
    notifier.watchdog()
    notifier.stopping()
    assert notifier.watchdog_interval() is None


def test_notifier_rejects_unsupported_address():
    with pytest.raises(ServiceSetupError, match=r"Unsupported NOTIFY_SOCKET 'vsock:2:1234'.*Unset NOTIFY_SOCKET"):
        Notifier({"NOTIFY_SOCKET": "vsock:2:1234"})


def test_notifier_logs_send_failure(tmp_path, caplog):
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "absent")})
    with caplog.at_level(logging.WARNING, logger="postbackd.systemd"):
        notifier.ready()
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert "Sending 'READY=1' to systemd" in message
    assert str(tmp_path / "absent") in message


@pytest.mark.parametrize(
    ("environ", "interval"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
        ({}, None),
    ],
)
def test_watchdog_interval(notify_path_socket, environ, interval):
    notifier = Notifier({"NOTIFY_SOCKET": notify_path_socket[1], **environ})
    assert notifier.watchdog_interval() == interval


def test_watchdog_interval_needs_notify_socket():
    assert Notifier({"WATCHDOG_USEC": "30000000"}).watchdog_interval() is None


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"WATCHDOG_USEC": "soon"}, "Invalid WATCHDOG_USEC 'soon'"),
        ({"WATCHDOG_USEC": "0"}, "Invalid WATCHDOG_USEC '0'"),
        ({"WATCHDOG_USEC": "-5"}, "Invalid WATCHDOG_USEC '-5'"),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "me"}, "Invalid WATCHDOG_PID 'me'"),
    ],
)
def test_watchdog_interval_rejects(notify_path_socket, environ, expected):
    notifier = Notifier({"NOTIFY_SOCKET": notify_path_socket[1], **environ})
    with pytest.raises(ServiceSetupError, match=expected):
        notifier.watchdog_interval()


async def test_watchdog_pings_while_healthy(notify_abstract_socket, autojump_clock, caplog):
    caplog.set_level(logging.INFO, logger="postbackd.systemd")
    receiver, address = notify_abstract_socket
    notifier = Notifier({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "2000000"})
    state = {"healthy": True}
    checked_at = []

    def healthy() -> bool:
        checked_at.append(trio.current_time())
        return state["healthy"]

    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_watchdog, notifier, healthy)

        await trio.sleep(0.5)
        assert received(receiver) == ["WATCHDOG=1"]
        await trio.sleep(1.0)
        assert received(receiver) == ["WATCHDOG=1"]

        state["healthy"] = False
        await trio.sleep(2.0)
        assert received(receiver) == []

        state["healthy"] = True
        await trio.sleep(1.0)
        assert received(receiver) == ["WATCHDOG=1"]
        nursery.cancel_scope.cancel()

    assert [time - start for time in checked_at] == [0.0, 1.0, 2.0, 3.0, 4.0]
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "withholding systemd watchdog pings" in warnings[0].getMessage()
    assert any("healthy again" in record.getMessage() for record in caplog.records)


async def test_watchdog_returns_without_watchdog(autojump_clock):
    start = trio.current_time()
    await run_watchdog(Notifier({}), lambda: True)
    assert trio.current_time() == start


# --- socket activation --------------------------------------------------------------------

# Plays systemd's part between fork and exec: moves the passed descriptors to 3, 4, ...,
# sets LISTEN_PID to the process id that the exec keeps, and execs the reporter.
LAUNCHER = """
import fcntl, os, sys
sources = [int(fd) for fd in sys.argv[1].split(",") if fd]
moved = [fcntl.fcntl(fd, fcntl.F_DUPFD, 100) for fd in sources]
for fd in sources:
    os.close(fd)
for index, fd in enumerate(moved):
    os.dup2(fd, 3 + index)
    os.close(fd)
environ = dict(os.environ)
if environ.get("LISTEN_PID") == "self":
    environ["LISTEN_PID"] = str(os.getpid())
os.execve(sys.executable, [sys.executable, "-c", sys.argv[2]], environ)
"""

# Calls listen_fds, accepts one queued connection per socket and prints the result as JSON.
REPORTER = """
import json, os
from postbackd.daemon._systemd import ServiceSetupError, listen_fds
try:
    sockets = listen_fds()
except ServiceSetupError as exc:
    print(json.dumps({"error": str(exc)}))
    raise SystemExit(0)
report = {}
for name, sock in sockets.items():
    sock.settimeout(10)
    connection, _ = sock.accept()
    report[name] = {
        "fd": sock.fileno(),
        "address": sock.getsockname(),
        "inheritable": sock.get_inheritable(),
        "data": connection.recv(100).decode(),
    }
left = sorted(name for name in os.environ if name.startswith("LISTEN_"))
print(json.dumps({"sockets": report, "environ_left": left}))
"""


def run_activated(files: list, environ: dict[str, str]) -> dict:
    fds = [file.fileno() for file in files]
    env = {key: value for key, value in os.environ.items() if not key.startswith("LISTEN_")}
    env.update(environ)
    result = subprocess.run(
        [sys.executable, "-c", LAUNCHER, ",".join(map(str, fds)), REPORTER],
        pass_fds=fds,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def listening_socket(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.listen()
    return sock


def test_listen_fds_takes_named_sockets(tmp_path):
    ingest = listening_socket(tmp_path / "ingest.sock")
    control = listening_socket(tmp_path / "control.sock")
    clients = []
    for path, data in ((tmp_path / "ingest.sock", "to-ingest"), (tmp_path / "control.sock", "to-control")):
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect(str(path))
        client.sendall(data.encode())
        clients.append(client)

    with ingest, control:
        report = run_activated(
            [ingest, control],
            {"LISTEN_PID": "self", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "ingest:control"},
        )
    for client in clients:
        client.close()

    assert report["environ_left"] == []
    assert report["sockets"] == {
        "ingest": {"fd": 3, "address": str(tmp_path / "ingest.sock"), "inheritable": False, "data": "to-ingest"},
        "control": {"fd": 4, "address": str(tmp_path / "control.sock"), "inheritable": False, "data": "to-control"},
    }


def test_listen_fds_other_process_ignored():
    environ = {"LISTEN_PID": "1", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "ingest:control", "HOME": "/root"}
    assert listen_fds(environ) == {}
    assert environ == {"HOME": "/root"}


def test_listen_fds_without_activation():
    assert listen_fds({}) == {}


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"LISTEN_PID": "abc", "LISTEN_FDS": "1"}, "Invalid LISTEN_PID 'abc'"),
        ({"LISTEN_PID": "self", "LISTEN_FDS": "two"}, "Invalid LISTEN_FDS 'two'"),
        ({"LISTEN_PID": "self", "LISTEN_FDS": "-1"}, "Invalid LISTEN_FDS '-1'"),
        (
            {"LISTEN_PID": "self", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "ingest"},
            "LISTEN_FDNAMES 'ingest' names 1 sockets but LISTEN_FDS is 2",
        ),
        ({"LISTEN_PID": "self", "LISTEN_FDS": "1"}, "LISTEN_FDNAMES None names 0 sockets but LISTEN_FDS is 1"),
        (
            {"LISTEN_PID": "self", "LISTEN_FDS": "1", "LISTEN_FDNAMES": "unknown"},
            "file descriptor 3 named 'unknown'. Set FileDescriptorName=",
        ),
    ],
)
def test_listen_fds_rejects_environment(environ, expected):
    environ = dict(environ)
    if environ["LISTEN_PID"] == "self":
        environ["LISTEN_PID"] = str(os.getpid())
    with pytest.raises(ServiceSetupError, match=expected):
        listen_fds(environ)
    assert environ == {}


def test_listen_fds_rejects_duplicate_name(tmp_path):
    first = listening_socket(tmp_path / "a.sock")
    second = listening_socket(tmp_path / "b.sock")
    with first, second:
        report = run_activated(
            [first, second],
            {"LISTEN_PID": "self", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "ingest:ingest"},
        )
    assert "file descriptor 4 named 'ingest', but file descriptor 3 has that name too" in report["error"]


def test_listen_fds_rejects_datagram_socket(tmp_path):
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as datagram:
        datagram.bind(str(tmp_path / "dgram.sock"))
        report = run_activated([datagram], {"LISTEN_PID": "self", "LISTEN_FDS": "1", "LISTEN_FDNAMES": "ingest"})
    assert "file descriptor 3 ('ingest'), but its type is SOCK_DGRAM, not SOCK_STREAM" in report["error"]


def test_listen_fds_rejects_inet_socket():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as inet:
        report = run_activated([inet], {"LISTEN_PID": "self", "LISTEN_FDS": "1", "LISTEN_FDNAMES": "control"})
    assert "file descriptor 3 ('control'), but its address family is AF_INET, not AF_UNIX" in report["error"]


def test_listen_fds_rejects_unlistening_socket(tmp_path):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(tmp_path / "idle.sock"))
        report = run_activated([sock], {"LISTEN_PID": "self", "LISTEN_FDS": "1", "LISTEN_FDNAMES": "ingest"})
    assert "file descriptor 3 ('ingest'), but it is not listening" in report["error"]


def test_listen_fds_rejects_regular_file(tmp_path):
    with open(tmp_path / "plain.txt", "w") as file:
        report = run_activated([file], {"LISTEN_PID": "self", "LISTEN_FDS": "1", "LISTEN_FDNAMES": "ingest"})
    assert "file descriptor 3 ('ingest'), which is not a socket" in report["error"]


# --- socket file permissions --------------------------------------------------------------


def test_apply_socket_permissions_sets_mode_and_group(tmp_path):
    path = tmp_path / "ingest.sock"
    with listening_socket(path):
        group = grp.getgrgid(os.getgid()).gr_name
        apply_socket_permissions(path, 0o660, group)
        status = path.stat()
        assert stat.S_IMODE(status.st_mode) == 0o660
        assert status.st_gid == os.getgid()

        apply_socket_permissions(path, 0o600, None)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_apply_socket_permissions_unknown_group(tmp_path):
    path = tmp_path / "ingest.sock"
    with listening_socket(path):
        with pytest.raises(ServiceSetupError) as info:
            apply_socket_permissions(path, 0o660, "postbackd-no-such-group")
    message = str(info.value)
    assert "Group 'postbackd-no-such-group'" in message
    assert str(path) in message
    assert "groupadd --system postbackd-no-such-group" in message


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to another user needs root")
def test_apply_socket_permissions_foreign_group():
    # A user other than root may only give its files to groups it belongs to, and "nobody" is
    # not in the root group. The check runs in a forked child so the test process keeps root.
    nobody = pwd.getpwnam("nobody")
    directory = tempfile.mkdtemp(prefix="postbackd-test-")
    os.chmod(directory, 0o777)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        message = "no error"
        try:
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            path = Path(directory) / "ingest.sock"
            socket.socket(socket.AF_UNIX).bind(str(path))
            apply_socket_permissions(path, 0o660, "root")
        except BaseException as exc:
            message = str(exc)
        finally:
            os.write(write_end, message.encode())
            os._exit(0)

    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        message = pipe.read()
    os.waitpid(pid, 0)
    shutil.rmtree(directory)
    assert "Cannot give socket" in message
    assert "to group 'root': permission denied" in message


# --- unit files ---------------------------------------------------------------------------


def read_unit(name: str) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in (UNIT_DIR / name).read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


def test_socket_units_name_each_socket():
    names = []
    for name in SOCKET_NAMES:
        unit = read_unit(f"postbackd-{name}.socket")
        assert unit["ListenStream"] == [f"/run/postbackd/{name}.sock"]
        assert unit["FileDescriptorName"] == [name]
        assert unit["Service"] == ["postbackd.service"]
        names.append(name)
    assert read_unit("postbackd-ingest.socket")["SocketMode"] == ["0660"]
    assert read_unit("postbackd-ingest.socket")["SocketGroup"] == ["postbackd-ingest"]
    assert read_unit("postbackd-control.socket")["SocketMode"] == ["0600"]
    service = read_unit("postbackd.service")
    assert service["Sockets"] == [" ".join(f"postbackd-{name}.socket" for name in names)]


def test_service_unit_settings():
    service = read_unit("postbackd.service")
    assert service["Type"] == ["notify"]
    assert service["NotifyAccess"] == ["main"]
    assert service["ExecStart"] == [
        "/usr/local/bin/postbackd run --data-dir /var/lib/postbackd --socket-dir /run/postbackd"
    ]
    assert service["RuntimeDirectoryPreserve"] == ["yes"]
    default_grace = Settings(data_dir=Path("/"), socket_dir=Path("/")).shutdown_grace
    assert parse_duration(service["TimeoutStopSec"][0]) > default_grace


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_units_pass_systemd_analyze_verify(tmp_path):
    # verify fails when ExecStart names a missing executable, so the copies point at a stand-in
    # for /usr/local/bin/postbackd.
    executable = tmp_path / "bin" / "postbackd"
    executable.parent.mkdir()
    executable.write_text("#!/bin/sh\nexit 0\n")
    executable.chmod(0o755)
    for name in UNIT_FILES:
        text = (UNIT_DIR / name).read_text().replace("/usr/local/bin/postbackd", str(executable))
        (tmp_path / name).write_text(text)

    result = subprocess.run(
        ["systemd-analyze", "verify", *UNIT_FILES],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    # verify reports unknown keys and bad values as warnings and still exits 0.
    problems = [line for line in result.stderr.splitlines() if "postbackd" in line]
    assert problems == []
