"""Fixtures of the delivery tests: scripted receivers, a daemon without --allow-private-endpoints,
and reading the daemon's event log."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from postbackd.eventlog import Record, connect, log_path, read_from
from tests.conftest import Daemon
from tests.delivery.servers import RawServer, ScriptedReceiver


@pytest.fixture
def make_receiver():
    """Start ScriptedReceivers; all are closed after the test."""
    started: list[ScriptedReceiver] = []

    def make(reply=None) -> ScriptedReceiver:
        server = ScriptedReceiver(reply) if reply is not None else ScriptedReceiver()
        started.append(server)
        return server

    yield make
    for server in started:
        server.close()


@pytest.fixture
def make_raw_server():
    """Start RawServers; all are closed after the test."""
    started: list[RawServer] = []

    def make(serve) -> RawServer:
        server = RawServer(serve)
        started.append(server)
        return server

    yield make
    for server in started:
        server.close()


class StrictDaemon(Daemon):
    """A daemon that refuses private endpoints, as it does in production."""

    def start(self, *args: str) -> StrictDaemon:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable, "-m", "postbackd", "run",
            "--data-dir", str(self.data_dir), "--socket-dir", str(self.socket_dir),
            "--config", str(self._settings_file()),
            "--retry-delays", "1s,1s", "--shutdown-grace", "2s", *args,
        ]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=log)
        self.wait_ready()
        return self


@pytest.fixture
def strict_daemon(tmp_path, short_tmp):
    instance = StrictDaemon(tmp_path / "data", short_tmp)
    yield instance
    if instance.process is not None and instance.process.poll() is None:
        instance.stop()


def log_records(data_dir: Path) -> list[tuple[int, float, Record]]:
    """Read every record of a daemon's event log, running or not."""
    conn = connect(log_path(data_dir), readonly=True)
    try:
        return list(read_from(conn))
    finally:
        conn.close()
