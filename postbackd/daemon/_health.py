"""Reports of the running daemon to systemd: the STATUS= line and the watchdog's health check."""

from __future__ import annotations

import logging
import trio

from postbackd.daemon._core import Core
from postbackd.daemon._systemd import Notifier
from postbackd.eventlog import EventLog

logger = logging.getLogger("postbackd.daemon")

# Seconds between checks whether the STATUS= line changed. `systemctl status` shows the latest one.
STATUS_INTERVAL = 2.0


def status_line(core: Core) -> str:
    """Return the daemon's counters as one short line, e.g. for `systemctl status`."""
    events = sum(core.events_received.values())
    delivered = sum(stats.delivered for stats in core.stats.values())
    failed = sum(stats.failed for stats in core.stats.values())
    return (
        f"events {events}, pending {core.pending_count()}, in flight {core.in_flight_count()}, "
        f"delivered {delivered}, failed {failed}"
    )


async def report_status(notifier: Notifier, core: Core, interval: float = STATUS_INTERVAL) -> None:
    """Send `status_line(core)` to systemd every `interval` seconds when it has changed."""
    last = None
    while True:
        line = status_line(core)
        if line != last:
            notifier.status(line)
            last = line
        await trio.sleep(interval)


class LogWriterProbe:
    """Check that the event log's writer thread still commits, for the systemd watchdog.

    The trio loop can run on while the writer thread hangs in SQLite, for example on a stuck disk.
    Then nothing the daemon accepts is committed or acknowledged. Every `interval` seconds the
    probe queues an empty transaction, unless the previous one is still waiting. `healthy()`
    returns False once a probe has waited `stall_limit` seconds, so the watchdog pings stop.
    """

    def __init__(self, log: EventLog, stall_limit: float) -> None:
        self._log = log
        self.stall_limit = stall_limit
        self._waiting_since: float | None = None
        self._stall_logged = False

    async def run(self, interval: float) -> None:
        while True:
            if self._waiting_since is None:
                self._waiting_since = trio.current_time()
                self._log.submit([], self._committed)
            await trio.sleep(interval)

    def _committed(self, seqs: list[int | None]) -> None:
        if self._stall_logged:
            logger.info("the event log writer commits again")
        self._waiting_since = None
        self._stall_logged = False

    def healthy(self) -> bool:
        if self._waiting_since is None:
            return True
        waited = trio.current_time() - self._waiting_since
        if waited < self.stall_limit:
            return True
        if not self._stall_logged:
            logger.error("the event log writer has not committed for %.0f s; check the disk of %s", waited,
                         self._log.path)
            self._stall_logged = True
        return False
