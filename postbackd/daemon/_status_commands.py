"""Read-only commands about the daemon itself."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from postbackd.daemon._commands import CommandContext, command
from postbackd.eventlog import Record, log_size

if TYPE_CHECKING:
    from postbackd.daemon._core import Core


@command("ping")
def ping(ctx: CommandContext, args: dict[str, Any]) -> tuple[list[Record], Any]:
    return [], {"pong": True}


@command("status")
def status(ctx: CommandContext, args: dict[str, Any]) -> tuple[list[Record], Any]:
    """Return the core's counters with each partner's last-hour figures beside them.

    The keys of ``status_report`` stay as they are, because scripts read them;
    the last-hour keys are those of ``AttemptWindow.summary``.
    """
    core = ctx.core
    result = status_report(core)
    now = core.now()
    for partner in result["partners"]:
        partner.update(core.recent.summary(partner["app"], partner["network"], now))
    result["snapshot_seq"] = core.snapshot_seq
    return [], result


def status_report(core: Core) -> dict:
    """Return the uptime, log position and the counters of every partner and app."""
    partners = []
    for (app, network), partner in sorted(core.config.partners.items()):
        stats = core.partner_stats(app, network)
        actor = core.actors.get((app, network))
        partners.append({
            "app": app,
            "network": network,
            "active": partner.active,
            "scheduled": stats.scheduled,
            "suppressed": stats.suppressed,
            "delivered": stats.delivered,
            "failed": stats.failed,
            "retried": stats.retried,
            "pending": len(actor.pending) if actor else 0,
            "in_flight": actor.in_flight if actor else 0,
        })
    return {
        "uptime": time.time() - core.started,
        "last_seq": core.log.last_seq,
        "log_bytes": log_size(core.log.path),
        "pending": core.pending_count(),
        "in_flight": core.in_flight_count(),
        "partners": partners,
        "apps": [{"app": app, "events": core.events_received.get(app, 0)} for app in sorted(core.config.apps)],
    }
