"""``postbackd run``: the daemon's main task and its shutdown sequence.

Ownership: the main nursery owns the event log, the core (decision loop and
delivery actors) and the two socket servers, each in its own nursery so that
shutdown can stop them in order: stop accepting, finish the responses for
lines already read, give in-flight requests the grace period, then close the
log after its last commit.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio

from postbackd.daemon._control import ControlServer
from postbackd.daemon._core import Core, CoreSettings
from postbackd.daemon._ingest import IngestServer
from postbackd.daemon._snapshot_task import run_snapshots
from postbackd.eventlog import EventLog, log_path
from postbackd.integrations import load_catalog

logger = logging.getLogger("postbackd.daemon")

INGEST_SOCKET = "ingest.sock"
CONTROL_SOCKET = "control.sock"


class DaemonError(Exception):
    """The daemon cannot start; the message says why and what to do."""


def remove_stale_socket(path: Path) -> None:
    """Remove a socket file left by a daemon that is gone.

    A socket file that still accepts connections belongs to a running daemon;
    starting is refused rather than taking its place.
    """
    if not (path.exists() or path.is_symlink()):
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError as exc:
        if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT, errno.ENOTSOCK):
            raise DaemonError(f"Cannot use socket path {path}: {exc}.") from None
        path.unlink(missing_ok=True)
    else:
        raise DaemonError(f"Another postbackd is already listening on {path}. Stop it, or use another --socket-dir.")
    finally:
        probe.close()


async def listen_unix(path: Path, mode: int) -> trio.SocketListener:
    """Bind and listen on a Unix socket at ``path`` with permissions ``mode``."""
    if len(os.fsencode(path)) >= 108:
        raise DaemonError(
            f"Socket path {path} is too long for a Unix socket (107 bytes at most). Use a shorter --socket-dir."
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_socket(path)
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # The umask keeps the socket private between bind and chmod.
    old_umask = os.umask(0o177)
    try:
        await sock.bind(str(path))
    finally:
        os.umask(old_umask)
    os.chmod(path, mode)
    sock.listen(1024)
    return trio.SocketListener(sock)


async def _serve(listener: trio.SocketListener, handler: Callable[[trio.SocketStream], Awaitable[None]],
                 nursery: trio.Nursery) -> None:
    async with listener:
        while True:
            stream = await listener.accept()
            nursery.start_soon(handler, stream)


async def run_daemon(settings, *, task_status: trio.TaskStatus[dict] = trio.TASK_STATUS_IGNORED) -> None:
    """Run the daemon until SIGTERM or SIGINT, or until cancelled."""
    data_dir = Path(settings.data_dir)
    socket_dir = Path(settings.socket_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    logger.info("starting: data dir %s, socket dir %s, pid %d", data_dir, socket_dir, os.getpid())

    catalog = load_catalog(data_dir)
    core_settings = CoreSettings(
        retry_delays=tuple(settings.retry_delays),
        attempt_timeout=settings.attempt_timeout,
        concurrency=settings.concurrency,
        allow_private_endpoints=settings.allow_private_endpoints,
    )
    async with EventLog(log_path(data_dir)) as log:
        core = Core(log, catalog, core_settings)
        undecided = await trio.to_thread.run_sync(core.rebuild)

        ingest_path = socket_dir / INGEST_SOCKET
        control_path = socket_dir / CONTROL_SOCKET
        ingest_listener = await listen_unix(ingest_path, 0o660 if settings.ingest_group else 0o600)
        control_listener = await listen_unix(control_path, 0o660 if settings.control_group else 0o600)
        ingest = IngestServer(core)
        control = ControlServer(core)

        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            async with trio.open_nursery() as core_nursery:
                await core_nursery.start(core.run, undecided)
                core_nursery.start_soon(
                    run_snapshots, core, settings.snapshot_every_records, settings.snapshot_every_seconds
                )
                async with trio.open_nursery() as server_nursery:
                    async with trio.open_nursery() as connections:
                        server_nursery.start_soon(_serve, ingest_listener, ingest.handle, connections)
                        server_nursery.start_soon(_serve, control_listener, control.handle, connections)
                        logger.info("ready: ingest %s, control %s", ingest_path, control_path)
                        task_status.started({"ingest": ingest_path, "control": control_path, "core": core})

                        async for signum in signals:
                            if signum == signal.SIGHUP:
                                logger.info("SIGHUP received; integration reload is not available yet")
                                continue
                            logger.info("stopping on %s", signal.Signals(signum).name)
                            break

                        server_nursery.cancel_scope.cancel()
                        ingest.stop_reading()
                        control.stop_reading()
                        connections.cancel_scope.deadline = trio.current_time() + settings.shutdown_grace
                # Responses for committed lines are sent; now stop delivery after the grace period.
                core_nursery.cancel_scope.deadline = trio.current_time() + settings.shutdown_grace
                for actor in core.actors.values():
                    actor.stop_starting()
                await core.wait_idle()
                core_nursery.cancel_scope.cancel()
        for path in (ingest_path, control_path):
            path.unlink(missing_ok=True)
    logger.info("stopped")
