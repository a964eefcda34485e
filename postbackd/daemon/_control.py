"""The control socket: one JSON request per line, one JSON response per line.

Commands run one at a time. A command's records are appended in one
transaction, and its response is sent once the decision loop has applied
them, so the next command reads the changed state.

Error handling: a ``CommandError`` becomes an error response and changes
nothing. An unexpected exception in a handler is logged with its traceback
and gets an internal-error response. The connection stays open. A log
failure propagates and stops the daemon.
"""

from __future__ import annotations

import logging
import socket
import struct
from typing import Any

import msgspec
import trio

from postbackd.daemon import (  # noqa: F401  (they register handlers)
    _config_commands,
    _config_history,
    _config_io,
    _config_views,
    _delivery_commands,
    _status_commands,
)
from postbackd.daemon._commands import HANDLERS, CommandContext, CommandError, Request
from postbackd.daemon._core import Core
from postbackd.daemon._lines import Oversized, read_line_batches
from postbackd.eventlog import Append, Origin

logger = logging.getLogger("postbackd.control")


class Response(msgspec.Struct, omit_defaults=True):
    ok: bool
    id: int | None = None
    result: Any = None
    error: str | None = None


_request_decoder = msgspec.json.Decoder(Request)
_encoder = msgspec.json.Encoder()


def peer_credentials(stream: trio.SocketStream) -> tuple[int | None, int | None]:
    """Return the peer's (uid, pid) from SO_PEERCRED, or Nones where unsupported."""
    try:
        raw = stream.socket.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except (OSError, AttributeError):
        return None, None
    pid, uid, _gid = struct.unpack("3i", raw)
    return uid, pid


class ControlServer:
    def __init__(self, core: Core) -> None:
        self.core = core
        self._lock = trio.Lock()
        self._readers: set[trio.CancelScope] = set()

    def stop_reading(self) -> None:
        """Stop reading requests; a command already running completes."""
        for scope in list(self._readers):
            scope.cancel()

    async def handle(self, stream: trio.SocketStream) -> None:
        uid, pid = peer_credentials(stream)
        try:
            with trio.CancelScope() as scope:
                self._readers.add(scope)
                async for lines in read_line_batches(stream):
                    for line in lines:
                        with trio.CancelScope(shield=True):
                            response = await self._respond(line, uid, pid)
                            await stream.send_all(_encoder.encode(response) + b"\n")
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            logger.debug("a control peer disconnected")
        finally:
            self._readers.discard(scope)
            await trio.aclose_forcefully(stream)

    async def _respond(self, line: bytes | Oversized, uid: int | None, pid: int | None) -> Response:
        if isinstance(line, Oversized):
            return Response(ok=False, error=f"Request too long: {line.size} bytes, the limit is 1 MiB.")
        try:
            request = _request_decoder.decode(line)
        except msgspec.DecodeError as exc:
            return Response(ok=False, error=f"Invalid request: {exc}.")
        handler = HANDLERS.get(request.op)
        if handler is None:
            return Response(ok=False, id=request.id, error=f"Unknown command {request.op!r}.")
        origin = Origin(uid=uid, pid=pid, command=request.op)
        async with self._lock:
            try:
                result = await self._run(handler, CommandContext(self.core, origin), request)
            except CommandError as exc:
                return Response(ok=False, id=request.id, error=str(exc))
            except Exception:
                logger.exception("command %s failed", request.op)
                return Response(
                    ok=False, id=request.id, error=f"Internal error in {request.op}; the daemon log has the details."
                )
        return Response(ok=True, id=request.id, result=result)

    async def _run(self, handler, ctx: CommandContext, request: Request) -> Any:
        result = handler(ctx, request.args)
        if hasattr(result, "__await__"):
            result = await result
        records, value = result
        if records:
            seqs = await self.core.append([Append(record) for record in records])
            await self.core.wait_processed(max(s for s in seqs if s is not None))
            for record in records:
                logger.info("config change %s by uid %s pid %s: %s", ctx.origin.command, ctx.origin.uid,
                            ctx.origin.pid, _describe(record))
        return value


def _describe(record: msgspec.Struct) -> str:
    """Short text for a config change log line, without network-specific field values."""
    data = msgspec.to_builtins(record)
    data.pop("origin", None)
    partner = data.get("partner")
    if isinstance(partner, dict) and "fields" in partner:
        partner["fields"] = sorted(partner["fields"])
    return msgspec.json.encode(data).decode()
