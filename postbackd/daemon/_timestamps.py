"""Times in the JSON results of control commands: RFC 3339 in UTC with milliseconds.

``postbackd audit --json`` writes times in the same form, so every JSON
output of the CLI reads alike, e.g. ``2026-12-01T09:00:00.123Z``.
"""

from __future__ import annotations

from datetime import UTC, datetime


def format_timestamp(epoch: float | None) -> str | None:
    """Format epoch seconds as RFC 3339 in UTC with milliseconds; None stays None."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
