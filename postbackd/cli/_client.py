"""Blocking clients for the daemon's two sockets, used by the CLI."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import click
import msgspec

from postbackd.daemon._settings import default_data_dir

INGEST_SOCKET = "ingest.sock"
CONTROL_SOCKET = "control.sock"


def default_socket_dir(data_dir: Path | None = None) -> Path:
    """``$POSTBACKD_SOCKET_DIR``, else the data dir."""
    explicit = os.environ.get("POSTBACKD_SOCKET_DIR")
    if explicit:
        return Path(explicit).expanduser()
    return data_dir if data_dir is not None else default_data_dir()


def connect_unix(path: Path) -> socket.socket:
    """Connect to a daemon socket, or raise ClickException naming the path and the fix."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
    except (FileNotFoundError, ConnectionRefusedError):
        sock.close()
        raise click.ClickException(
            f"postbackd is not running: nothing listens on {path}. Start it with `postbackd run`"
            f" (with the same --socket-dir), or pass --socket-dir where it runs."
        ) from None
    except PermissionError:
        sock.close()
        raise click.ClickException(
            f"Permission denied on {path}. Run as the daemon's user, or as a member of its socket group."
        ) from None
    return sock


class ControlClient:
    """Sends requests over ``control.sock`` and returns their results."""

    def __init__(self, socket_dir: Path) -> None:
        self.path = socket_dir / CONTROL_SOCKET
        self._sock = connect_unix(self.path)
        self._file = self._sock.makefile("rb")
        self._next_id = 1

    def call(self, op: str, **args: Any) -> Any:
        """Run one command; raise ClickException with the daemon's message when it fails."""
        request = {"id": self._next_id, "op": op, "args": {k: v for k, v in args.items() if v is not None}}
        self._next_id += 1
        self._sock.sendall(msgspec.json.encode(request) + b"\n")
        line = self._file.readline()
        if not line:
            raise click.ClickException(f"The daemon closed {self.path} without a response; see its log.")
        response = msgspec.json.decode(line)
        if not response.get("ok"):
            raise click.ClickException(response.get("error") or "The command failed.")
        return response.get("result")

    def close(self) -> None:
        self._file.close()
        self._sock.close()

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
