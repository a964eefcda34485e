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
    return [], ctx.core.status()
