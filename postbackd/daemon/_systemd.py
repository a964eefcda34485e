"""systemd integration: readiness and watchdog notifications, socket activation, socket modes.

Everything here reads the environment variables that systemd sets for a service (NOTIFY_SOCKET,
WATCHDOG_USEC, LISTEN_FDS, ...) and does nothing when they are absent, so the daemon runs the same
from a shell.
"""

from __future__ import annotations

import grp
import logging
import os
import socket
from collections.abc import Callable, MutableMapping
from pathlib import Path

import trio

logger = logging.getLogger("postbackd.systemd")

# First file descriptor that systemd passes to a socket-activated service (sd_listen_fds(3)).
LISTEN_FDS_START = 3

# Names that the socket units give their sockets with FileDescriptorName=.
SOCKET_NAMES = ("ingest", "control")


class ServiceSetupError(RuntimeError):
    """A service environment or socket problem that keeps the daemon from starting."""


def _notify_address(value: str) -> str:
    if value.startswith("@"):
        # A leading "@" names a socket in the Linux abstract namespace, where the name's first
        # byte is NUL.
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    raise ServiceSetupError(
        f"Unsupported NOTIFY_SOCKET {value!r}: expected a Unix socket path ('/...') or an "
        "abstract socket name ('@...'). Unset NOTIFY_SOCKET to run without systemd notifications."
    )


class Notifier:
    """Sends sd_notify(3) messages to systemd; every method is a no-op when NOTIFY_SOCKET is unset.

    The `sdnotify` package (0.3.2) handles abstract "@" names correctly but is not used, for three
    reasons. It reads NOTIFY_SOCKET from the process environment only, so it cannot take
    `environ`. It encodes messages as Latin-1, although systemd expects UTF-8 STATUS text. And it
    swallows every send error with a bare `except:`, so a failing notification cannot be logged.
    """

    def __init__(self, environ: MutableMapping[str, str] = os.environ) -> None:
        value = environ.get("NOTIFY_SOCKET")
        self._address = _notify_address(value) if value else None
        self._display_address = value
        self._watchdog_usec = environ.get("WATCHDOG_USEC")
        self._watchdog_pid = environ.get("WATCHDOG_PID")
        self._socket: socket.socket | None = None

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def ready(self) -> None:
        self._send("READY=1")

    def status(self, text: str) -> None:
        # A newline would end the STATUS= assignment and start another one.
        self._send("STATUS=" + " ".join(text.splitlines()))

    def stopping(self) -> None:
        self._send("STOPPING=1")

    def watchdog(self) -> None:
        self._send("WATCHDOG=1")

    def watchdog_interval(self) -> float | None:
        """Return seconds between watchdog pings, half of WATCHDOG_USEC, or None when the service
        has no watchdog for this process."""
        if not self.enabled or not self._watchdog_usec:
            return None
        if self._watchdog_pid:
            try:
                watchdog_pid = int(self._watchdog_pid)
            except ValueError:
                raise ServiceSetupError(
                    f"Invalid WATCHDOG_PID {self._watchdog_pid!r}: expected a process id. "
                    "Unset it, or set it to the daemon's process id."
                ) from None
            if watchdog_pid != os.getpid():
                return None
        try:
            usec = int(self._watchdog_usec)
        except ValueError:
            usec = 0
        if usec <= 0:
            raise ServiceSetupError(
                f"Invalid WATCHDOG_USEC {self._watchdog_usec!r}: expected a positive number of "
                "microseconds. Set WatchdogSec= in the service unit instead of setting it by hand."
            )
        # Pinging at half the timeout, as sd_watchdog_enabled(3) recommends, leaves a full half
        # interval for one late ping.
        return usec / 1_000_000 / 2

    def _send(self, message: str) -> bool:
        if self._address is None:
            return False
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._socket.sendto(message.encode("utf-8"), self._address)
        except OSError as exc:
            logger.warning(
                "Sending %r to systemd at NOTIFY_SOCKET=%s failed: %s", message, self._display_address, exc
            )
            return False
        return True

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


async def run_watchdog(notifier: Notifier, healthy: Callable[[], bool]) -> None:
    """Ping the systemd watchdog every `notifier.watchdog_interval()` seconds while `healthy()`.

    Returns at once when the service has no watchdog. Runs in the trio loop on purpose: a blocked
    loop sends no pings, so systemd kills and restarts the daemon after WatchdogSec. While
    `healthy()` returns False the pings stop for the same effect; the change is logged once at
    WARNING and the recovery at INFO. Exceptions from `healthy()` propagate.
    """
    interval = notifier.watchdog_interval()
    if interval is None:
        return
    logger.info("Sending systemd watchdog pings every %.3g s", interval)

    was_healthy = True
    deadline = trio.current_time()
    while True:
        if healthy():
            notifier.watchdog()
            if not was_healthy:
                logger.info("Daemon healthy again; resuming systemd watchdog pings")
            was_healthy = True
        elif was_healthy:
            logger.warning(
                "Daemon unhealthy; withholding systemd watchdog pings, so systemd restarts the "
                "service unless it recovers within WatchdogSec"
            )
            was_healthy = False
        deadline += interval
        await trio.sleep_until(deadline)


def _parse_int(name: str, value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        raise ServiceSetupError(
            f"Invalid {name} {value!r}: expected a non-negative integer. Leave socket activation "
            "variables to systemd, or unset LISTEN_PID to bind the sockets directly."
        )
    return number


def _adopt_socket(fd: int, name: str) -> socket.socket:
    try:
        os.set_inheritable(fd, False)
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        raise ServiceSetupError(
            f"Socket activation passed file descriptor {fd} ({name!r}), which is not a socket: "
            f"{exc.strerror}. Check ListenStream= in the socket unit."
        ) from None

    problem = None
    if sock.family != socket.AF_UNIX:
        problem = f"its address family is {sock.family.name}, not AF_UNIX"
    elif sock.type != socket.SOCK_STREAM:
        problem = f"its type is {sock.type.name}, not SOCK_STREAM"
    elif not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        problem = "it is not listening"
    if problem is not None:
        sock.close()
        raise ServiceSetupError(
            f"Socket activation passed file descriptor {fd} ({name!r}), but {problem}. "
            "Use ListenStream=/path/to/socket in the socket unit."
        )
    return sock


def listen_fds(environ: MutableMapping[str, str] = os.environ) -> dict[str, socket.socket]:
    """Take the listening sockets that systemd passed by socket activation, keyed by name.

    Returns {} unless LISTEN_PID is this process. Every socket must be a listening AF_UNIX
    SOCK_STREAM socket named one of SOCKET_NAMES by LISTEN_FDNAMES. The LISTEN_* variables are
    removed from `environ` in every case, like sd_listen_fds(1), so child processes do not take
    the sockets for their own. Raises ServiceSetupError naming the file descriptor.
    """
    pid_text = environ.pop("LISTEN_PID", None)
    count_text = environ.pop("LISTEN_FDS", None)
    names_text = environ.pop("LISTEN_FDNAMES", None)
    if not pid_text or _parse_int("LISTEN_PID", pid_text) != os.getpid():
        return {}
    count = _parse_int("LISTEN_FDS", count_text) if count_text else 0

    names = names_text.split(":") if names_text else []
    if len(names) != count:
        raise ServiceSetupError(
            f"LISTEN_FDNAMES {names_text!r} names {len(names)} sockets but LISTEN_FDS is {count}. "
            f"Give each socket unit FileDescriptorName= with one of: {', '.join(SOCKET_NAMES)}."
        )

    sockets: dict[str, socket.socket] = {}
    try:
        for index, name in enumerate(names):
            fd = LISTEN_FDS_START + index
            if name not in SOCKET_NAMES:
                raise ServiceSetupError(
                    f"Socket activation passed file descriptor {fd} named {name!r}. Set "
                    f"FileDescriptorName= in its socket unit to one of: {', '.join(SOCKET_NAMES)}."
                )
            if name in sockets:
                raise ServiceSetupError(
                    f"Socket activation passed file descriptor {fd} named {name!r}, but "
                    f"file descriptor {sockets[name].fileno()} has that name too. Give each socket "
                    "unit its own FileDescriptorName=, and one ListenStream= each."
                )
            sockets[name] = _adopt_socket(fd, name)
    except ServiceSetupError:
        for sock in sockets.values():
            sock.close()
        raise
    return sockets


def apply_socket_permissions(path: Path, mode: int, group: str | None) -> None:
    """Set the mode of the socket file at `path`, and its group when `group` is not None.

    Raises ServiceSetupError when the group does not exist or the daemon may not give the file
    to it (a user other than root can only choose among its own groups).
    """
    if group is not None:
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            raise ServiceSetupError(
                f"Group {group!r} for socket {str(path)!r} not found. Create it with "
                f"'groupadd --system {group}' or change the group setting."
            ) from None
        try:
            os.chown(path, -1, gid)
        except PermissionError:
            raise ServiceSetupError(
                f"Cannot give socket {str(path)!r} to group {group!r}: permission denied. Add the "
                f"daemon's user to the group ('usermod -a -G {group} USER') and restart."
            ) from None
    os.chmod(path, mode)
