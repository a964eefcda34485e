"""``postbackd run``: the daemon's main task, its sockets and its shutdown sequence.

Ownership: the core nursery runs the decision loop, the delivery actors, the
signal handler and the systemd watchdog. Inside it, the connections nursery
runs one task per client connection, and inside that the servers nursery runs
the accept loops and the systemd status line. This nesting lets shutdown stop them one at a time: stop
accepting, send the responses for lines already read, give in-flight requests
what is left of the grace period, then close the log after its last commit.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
from collections.abc import AsyncIterator, MutableMapping
from functools import partial
from pathlib import Path

import trio

from postbackd.daemon._control import ControlServer
from postbackd.daemon._core import Core, CoreSettings
from postbackd.daemon._health import LogWriterProbe, report_status
from postbackd.daemon._ingest import IngestServer
from postbackd.daemon._settings import Settings, format_duration
from postbackd.daemon._snapshot_task import run_snapshots, save_final_snapshot
from postbackd.daemon._systemd import Notifier, apply_socket_permissions, listen_fds, run_watchdog
from postbackd.eventlog import EventLog, log_path
from postbackd.integrations import Catalog, IntegrationError, load_catalog

logger = logging.getLogger("postbackd.daemon")

INGEST_SOCKET = "ingest.sock"
CONTROL_SOCKET = "control.sock"

# Modes of the socket files the daemon binds itself: owner only, or owner and the socket's group
# when the ingest_group or control_group setting names one.
PRIVATE_SOCKET_MODE = 0o600
GROUP_SOCKET_MODE = 0o660

# Connections the kernel queues for a socket before the daemon accepts them.
LISTEN_BACKLOG = 1024


class DaemonError(Exception):
    """The daemon cannot start; the message names the cause and the fix."""


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


async def listen_unix(path: Path, mode: int, group: str | None = None) -> trio.SocketListener:
    """Bind and listen on a Unix socket at ``path`` with permissions ``mode`` and ``group``.

    Raises ``DaemonError`` for an unusable path and ``ServiceSetupError`` for an unusable group;
    the socket file is removed again in both cases.
    """
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
    except OSError as exc:
        sock.close()
        raise DaemonError(f"Cannot bind socket {path}: {exc.strerror}. Check the permissions of {path.parent}.") from None
    finally:
        os.umask(old_umask)
    try:
        apply_socket_permissions(path, mode, group)
        sock.listen(LISTEN_BACKLOG)
    except BaseException:
        sock.close()
        path.unlink(missing_ok=True)
        raise
    return trio.SocketListener(sock)


async def _open_listener(
    name: str, settings: Settings, passed: dict[str, socket.socket], created: list[Path]
) -> tuple[trio.SocketListener, str]:
    """Return the listener for socket ``name`` and its address for log lines.

    A socket that systemd passed is used as it is: its file, mode and group belong to the socket
    unit. Otherwise the daemon binds the socket in the socket dir and appends its path to
    ``created``, so that the file is removed at exit.
    """
    group = settings.ingest_group if name == "ingest" else settings.control_group
    sock = passed.pop(name, None)
    if sock is not None:
        address = sock.getsockname()
        if group is not None:
            logger.warning(
                "%s_group %r is not applied: systemd passed the %s socket %s, so set SocketGroup= and "
                "SocketMode= in its socket unit instead", name, group, name, address,
            )
        return trio.SocketListener(trio.socket.from_stdlib_socket(sock)), f"{address} (from systemd)"

    path = Path(settings.socket_dir) / f"{name}.sock"
    listener = await listen_unix(path, GROUP_SOCKET_MODE if group else PRIVATE_SOCKET_MODE, group)
    created.append(path)
    return listener, str(path)


class _Shutdown:
    """Stop requests from signals: the first one starts a graceful stop, a second one ends its grace period.

    ``grace_scope`` encloses the connections and the wait for in-flight requests. It gets its
    deadline when the stop is requested, so the grace period is counted once for both.
    """

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self.requested = trio.Event()
        self.grace_scope = trio.CancelScope()
        self.signal_name = ""

    def request(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if not self.requested.is_set():
            self.signal_name = name
            self.grace_scope.deadline = trio.current_time() + self.grace
            self.requested.set()
        else:
            logger.warning("%s received while stopping; cancelling in-flight work now", name)
            self.grace_scope.cancel()


async def reload_integrations(core: Core, data_dir: Path) -> bool:
    """Load the integration files again and give them to ``core``; return whether ``core`` took them.

    A broken file is logged as an error naming the file, and ``core`` keeps its catalog. It also
    keeps it when the new files lack an integration that a partner uses, because that partner's
    postbacks would fail to render and fail for good.
    """
    try:
        catalog = await trio.to_thread.run_sync(load_catalog, data_dir)
    except IntegrationError as exc:
        logger.error("reloading the integration files failed; keeping the previous %d integrations: %s",
                     len(core.catalog), exc)
        return False

    missing = _partners_without_integration(core, catalog)
    if missing:
        logger.error(
            "reloading the integration files failed; keeping the previous %d integrations: partners use "
            "integrations that no file in %s defines any more: %s. Restore those files, or first move the "
            "partners to another integration with 'postbackd partner set APP NETWORK --integration ID'",
            len(core.catalog), data_dir / "integrations", ", ".join(missing),
        )
        return False

    # NOTE: a changed concurrency applies to partners configured after the reload; running
    # partners keep their limit until the daemon restarts.
    core.catalog = catalog
    logger.info("reloaded the integration files in %s: %d integrations: %s",
                data_dir / "integrations", len(catalog), ", ".join(catalog.ids()))
    return True


def _partners_without_integration(core: Core, catalog: Catalog) -> list[str]:
    return [
        f"{app}/{network} ({partner.integration})"
        for (app, network), partner in sorted(core.config.partners.items())
        if partner.integration not in catalog
    ]


async def _handle_signals(signals: AsyncIterator[int], shutdown: _Shutdown, core: Core, data_dir: Path) -> None:
    # Reading signals until the very end matters: trio delivers the ones left unread again when
    # the receiver closes, and the default action of SIGHUP or a second SIGTERM kills the process.
    async for signum in signals:
        if signum != signal.SIGHUP:
            shutdown.request(signum)
        elif shutdown.requested.is_set():
            logger.info("SIGHUP received while stopping; the integration files are not reloaded")
        else:
            logger.info("SIGHUP received; reloading the integration files")
            await reload_integrations(core, data_dir)


def _stop_deliveries(core: Core) -> None:
    for actor in core.actors.values():
        actor.stop_starting()


async def run_daemon(
    settings: Settings,
    *,
    environ: MutableMapping[str, str] = os.environ,
    task_status: trio.TaskStatus[dict] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the daemon until SIGTERM or SIGINT, or until cancelled.

    ``environ`` supplies the systemd variables (NOTIFY_SOCKET, WATCHDOG_USEC, LISTEN_FDS, ...).
    The LISTEN_* variables are removed from it.
    """
    data_dir = Path(settings.data_dir)
    notifier = Notifier(environ)
    # Checked now, so that an invalid WATCHDOG_USEC stops the start instead of the running daemon.
    watchdog_interval = notifier.watchdog_interval()
    passed = listen_fds(environ)
    created: list[Path] = []
    listeners: list[trio.SocketListener] = []
    try:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            logger.info("starting: data dir %s, socket dir %s, pid %d", data_dir, settings.socket_dir, os.getpid())
            data_dir.mkdir(parents=True, exist_ok=True)
            catalog = load_catalog(data_dir)

            # The sockets are bound before the state is rebuilt, so that a second daemon on the same
            # socket dir stops at once. Clients that connect meanwhile wait in the listen queue.
            ingest_listener, ingest_address = await _open_listener("ingest", settings, passed, created)
            listeners.append(ingest_listener)
            control_listener, control_address = await _open_listener("control", settings, passed, created)
            listeners.append(control_listener)

            core_settings = CoreSettings(
                retry_delays=tuple(settings.retry_delays),
                attempt_timeout=settings.attempt_timeout,
                concurrency=settings.concurrency,
                allow_private_endpoints=settings.allow_private_endpoints,
            )
            async with EventLog(log_path(data_dir)) as log:
                core = Core(log, catalog, core_settings)
                notifier.status("Rebuilding the state from the event log")
                undecided = await trio.to_thread.run_sync(core.rebuild)
                ingest = IngestServer(core)
                control = ControlServer(core)
                shutdown = _Shutdown(settings.shutdown_grace)

                async with trio.open_nursery() as core_nursery:
                    await core_nursery.start(core.run, undecided)
                    core_nursery.start_soon(
                        run_snapshots, core, settings.snapshot_every_records, settings.snapshot_every_seconds
                    )
                    core_nursery.start_soon(_handle_signals, signals, shutdown, core, data_dir)
                    with shutdown.grace_scope:
                        async with trio.open_nursery() as connections:
                            async with trio.open_nursery() as servers:
                                for listener, handler in ((ingest_listener, ingest.handle),
                                                          (control_listener, control.handle)):
                                    await servers.start(
                                        partial(trio.serve_listeners, handler, [listener], handler_nursery=connections)
                                    )
                                notifier.ready()
                                logger.info("ready: ingest %s, control %s", ingest_address, control_address)
                                # Here, not in the core nursery, so that the counters stop replacing
                                # the STATUS= line once the stop begins.
                                servers.start_soon(report_status, notifier, core)
                                if watchdog_interval is not None:
                                    # A writer stalled for a whole WatchdogSec withholds the pings.
                                    probe = LogWriterProbe(log, stall_limit=2 * watchdog_interval)
                                    core_nursery.start_soon(probe.run, watchdog_interval)
                                    core_nursery.start_soon(run_watchdog, notifier, probe.healthy)
                                task_status.started({"ingest": ingest_address, "control": control_address, "core": core})

                                await shutdown.requested.wait()
                                servers.cancel_scope.cancel()

                            notifier.stopping()
                            notifier.status(f"Stopping: {core.in_flight_count()} requests in flight")
                            logger.info(
                                "stopping on %s: no new connections; waiting up to %s for %d in-flight requests",
                                shutdown.signal_name, format_duration(settings.shutdown_grace),
                                core.in_flight_count(),
                            )
                            ingest.stop_reading()
                            control.stop_reading()
                            _stop_deliveries(core)
                        # Every response for a committed line is sent, unless the grace period ended.
                        # Run again for actors that a control command created meanwhile.
                        _stop_deliveries(core)
                        await core.wait_idle()
                    if core.in_flight_count():
                        logger.warning(
                            "grace period over: cancelling %d in-flight requests; their postbacks are sent "
                            "again at the next start", core.in_flight_count(),
                        )
                    await save_final_snapshot(core)
                    core_nursery.cancel_scope.cancel()
    finally:
        for listener in listeners:
            listener.socket.close()
        for sock in passed.values():
            sock.close()
        # Only files this daemon bound: socket files from systemd belong to their socket units.
        for path in created:
            path.unlink(missing_ok=True)
        notifier.close()
    logger.info("stopped")
