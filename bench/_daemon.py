"""A ``postbackd run`` subprocess for the benchmarks, and the setup of its apps and partners."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from postbackd.daemon._main import CONTROL_SOCKET, INGEST_SOCKET

# Seconds between checks that the daemon still runs while it has not reported READY=1.
EXIT_POLL_SECONDS = 0.1

# App and partners that every scenario registers.
APP_ID = "bench-app"
NETWORKS = ("net1", "net2", "net3")


def _stat_cpu_seconds(path: str) -> float:
    """Return the user and system time of a process or thread, in seconds, from a proc(5) stat file."""
    with open(path) as stat:
        # The fields after the command name, which is in parentheses and may contain spaces.
        fields = stat.read().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of proc(5), in clock ticks.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class BenchError(RuntimeError):
    """A benchmark step failed; the message names the step and the daemon's log file."""


class DaemonProcess:
    """A daemon on throw-away data and socket directories, driven through its sockets.

    The socket directory lives directly under /tmp, because Unix socket paths
    are limited to 107 bytes. The daemon reports readiness as a systemd
    service does: it sends READY=1 to the datagram socket named by
    NOTIFY_SOCKET, which this class binds. A thread reads that socket for the
    daemon's whole life, because the daemon keeps sending STATUS= lines.
    """

    def __init__(self, work_dir: Path, name: str, data_dir: Path | None = None) -> None:
        """Use ``data_dir`` as it is, or else a new, empty ``work_dir/NAME-data``."""
        if data_dir is None:
            data_dir = work_dir / f"{name}-data"
            shutil.rmtree(data_dir, ignore_errors=True)
        self.data_dir = data_dir
        self.socket_dir = Path(tempfile.mkdtemp(prefix="pbb-", dir="/tmp"))
        self.log_path = work_dir / f"{name}-daemon.log"
        self.settings_path = work_dir / f"{name}-settings.toml"
        self.process: subprocess.Popen | None = None
        self.started_at = 0.0
        self._ready = threading.Event()
        self._ready_at = 0.0
        self._notify: socket.socket | None = None

    @property
    def ingest_path(self) -> Path:
        return self.socket_dir / INGEST_SOCKET

    @property
    def control_path(self) -> Path:
        return self.socket_dir / CONTROL_SOCKET

    def start(self, settings: str = "", ready_timeout: float = 60.0, args: tuple[str, ...] = ()) -> float:
        """Start the daemon and return the seconds from the start of the process to READY=1.

        ``settings`` is the text of the settings file (TOML); the file keeps
        /etc/postbackd/postbackd.toml out of the run.
        """
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.settings_path.write_text(settings or "# benchmark settings come from the command line\n")
        self.socket_dir.mkdir(exist_ok=True)
        notify_path = self.socket_dir / "notify.sock"
        notify_path.unlink(missing_ok=True)
        self._notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._notify.bind(str(notify_path))
        self._ready.clear()
        threading.Thread(target=self._read_notifications, args=(self._notify,), daemon=True).start()
        command = [
            sys.executable, "-m", "postbackd", "run",
            "--data-dir", str(self.data_dir), "--socket-dir", str(self.socket_dir),
            "--config", str(self.settings_path),
            "--allow-private-endpoints", "--log-level", "WARNING", "--shutdown-grace", "2s", *args,
        ]
        environment = {**os.environ, "NOTIFY_SOCKET": str(notify_path)}
        with open(self.log_path, "ab") as log:
            self.started_at = time.monotonic()
            self.process = subprocess.Popen(command, stdout=log, stderr=log, env=environment)
        return self._wait_ready(ready_timeout)

    def _read_notifications(self, notify: socket.socket) -> None:
        while True:
            try:
                message = notify.recv(4096)
            except OSError:
                return
            if not message:
                return
            if b"READY=1" in message.split(b"\n"):
                self._ready_at = time.monotonic()
                self._ready.set()

    def _wait_ready(self, timeout: float) -> float:
        deadline = self.started_at + timeout
        assert self.process is not None
        while not self._ready.wait(EXIT_POLL_SECONDS):
            if self.process.poll() is not None:
                raise BenchError(f"postbackd run exited with {self.process.returncode}; see {self.log_path}.")
            if time.monotonic() > deadline:
                raise BenchError(f"postbackd run did not report READY=1 within {timeout:.0f} s; see {self.log_path}.")
        return self._ready_at - self.started_at

    def control(self, op: str, **args: object) -> object:
        """Run one control command and return its result; raise BenchError when it fails."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(60.0)
            sock.connect(str(self.control_path))
            sock.sendall(json.dumps({"op": op, "args": args}).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        response = json.loads(data)
        if not response.get("ok"):
            raise BenchError(f"Control command {op} failed: {response.get('error')}")
        return response.get("result")

    def status(self) -> dict:
        result = self.control("status")
        assert isinstance(result, dict)
        return result

    def rss_bytes(self) -> int:
        """Resident memory of the daemon (VmRSS from /proc/PID/status)."""
        assert self.process is not None
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise BenchError(f"No VmRSS line in /proc/{self.process.pid}/status.")

    def cpu_seconds(self) -> float:
        """CPU time the daemon has used so far, user and system, from /proc/PID/stat."""
        assert self.process is not None
        return _stat_cpu_seconds(f"/proc/{self.process.pid}/stat")

    def main_thread_cpu_seconds(self) -> float:
        """CPU time of the daemon's main thread, the one that runs trio, from /proc/PID/task/PID/stat."""
        assert self.process is not None
        return _stat_cpu_seconds(f"/proc/{self.process.pid}/task/{self.process.pid}/stat")

    def stop(self) -> None:
        """Stop with SIGTERM, and kill after 30 s; the daemon can be started again."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._notify is not None:
            # shutdown() wakes the reading thread; close() alone would leave it blocked in recv.
            self._notify.shutdown(socket.SHUT_RDWR)
            self._notify.close()
            self._notify = None

    def __enter__(self) -> DaemonProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
        shutil.rmtree(self.socket_dir, ignore_errors=True)


def partner_url(receiver_url: str, network: str) -> str:
    """URL template of a benchmark partner; the receiver reads the network and event id from it."""
    return f"{receiver_url}/pb/{network}?id={{event_id}}&pb={{postback_id}}&ev={{event_name}}&dev={{device_id}}"


def configure(daemon: DaemonProcess, receiver_url: str, *, events: tuple[str, ...], method: str, delay: str) -> None:
    """Register the benchmark app, its three partners and their postbacks through the control socket."""
    daemon.control("app.add", app_id=APP_ID, platform="android", bundle_id="com.example.bench", name="Bench")
    for network in NETWORKS:
        daemon.control(
            "partner.add", app_id=APP_ID, network=network, integration="custom",
            fields=[f"url={partner_url(receiver_url, network)}"],
        )
        for event in events:
            daemon.control("postback.add", app_id=APP_ID, network=network, event=event, method=method, delay=delay)
