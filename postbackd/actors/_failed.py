"""The failed postbacks: those whose latest round of attempts ended as failed.

The daemon keeps this index in memory, rebuilt from the log and updated in
log order, so that ``resend --failed`` and ``deliveries --failed`` need no
scan of the log. It keeps one small entry per failed postback.
"""

from __future__ import annotations

from postbackd.eventlog import Attempted, Record, ResendRequested


class FailedPostback:
    """The last attempt of a failed postback."""

    __slots__ = ("postback_id", "app", "network", "event_seq", "attempt", "failed_at", "failure_class")

    def __init__(self, record: Attempted) -> None:
        self.postback_id = record.postback_id
        self.app = record.app
        self.network = record.network
        self.event_seq = record.event_seq
        self.attempt = record.attempt
        # Start time of the attempt that failed, epoch seconds.
        self.failed_at = record.started
        self.failure_class = record.failure_class


class FailedIndex:
    """Failed postbacks by postback id."""

    def __init__(self) -> None:
        self.by_id: dict[str, FailedPostback] = {}

    def __len__(self) -> int:
        return len(self.by_id)

    def apply(self, record: Record) -> None:
        """Update the index from one log record; records other than attempts and resends change nothing."""
        match record:
            case Attempted(outcome="failed"):
                self.by_id[record.postback_id] = FailedPostback(record)
            case Attempted() | ResendRequested():
                self.by_id.pop(record.postback_id, None)

    def select(
        self, *, app: str | None = None, network: str | None = None, since: float | None = None
    ) -> list[FailedPostback]:
        """Return the failed postbacks that match every given filter, latest failure first."""
        found = [
            failed
            for failed in self.by_id.values()
            if (app is None or failed.app == app)
            and (network is None or failed.network == network)
            and (since is None or failed.failed_at >= since)
        ]
        found.sort(key=lambda failed: failed.failed_at, reverse=True)
        return found
