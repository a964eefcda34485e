"""Read-only commands about the daemon itself."""

from __future__ import annotations

from typing import Any

from postbackd.daemon._commands import CommandContext, command
from postbackd.eventlog import Record


@command("ping")
def ping(ctx: CommandContext, args: dict[str, Any]) -> tuple[list[Record], Any]:
    return [], {"pong": True}


@command("status")
def status(ctx: CommandContext, args: dict[str, Any]) -> tuple[list[Record], Any]:
    """Return the core's counters with each partner's last-hour figures beside them.

    The keys of ``Core.status`` stay as they are, because scripts read them;
    the last-hour keys are those of ``AttemptWindow.summary``.
    """
    core = ctx.core
    result = core.status()
    now = core.now()
    for partner in result["partners"]:
        partner.update(core.recent.summary(partner["app"], partner["network"], now))
    result["snapshot_seq"] = core.snapshot_seq
    return [], result
