"""The control command framework: handlers, their registry and shared argument checks.

A command handler never appends by itself. It raises ``CommandError`` for bad
input, before anything is written, or returns the records of the change and
the result to send back. The control server appends all records of one
command in one transaction, so a rejected command appends nothing and an
accepted one is never half applied.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from postbackd.eventlog import Origin, Record

if TYPE_CHECKING:
    from postbackd.daemon._core import Core


class CommandError(Exception):
    """A control command was rejected; the message names the value and the fix."""


class Request(msgspec.Struct):
    op: str
    args: dict[str, Any] = {}
    id: int | None = None


class CommandContext:
    """The state a handler reads: the core, and the origin of the command."""

    def __init__(self, core: Core, origin: Origin) -> None:
        self.core = core
        self.origin = origin

    @property
    def config(self):
        return self.core.config


# A handler returns the records to append and the result to return.
Handler = Callable[[CommandContext, dict[str, Any]], tuple[list[Record], Any]]
HANDLERS: dict[str, Handler] = {}


def command(op: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        HANDLERS[op] = handler
        return handler

    return register


def require(args: dict[str, Any], name: str, kind: type = str) -> Any:
    value = args.get(name)
    if value is None:
        raise CommandError(f"Missing argument {name!r}.")
    if not isinstance(value, kind):
        raise CommandError(f"Invalid {name} {value!r}: expected {kind.__name__}.")
    return value
