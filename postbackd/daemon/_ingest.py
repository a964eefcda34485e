"""The ingest socket: producers stream input lines and get one response per line.

The protocol is described in docs/protocol.md. Each connection has a reader
task, which decodes the lines of each received chunk and queues them for one
group commit, and a writer task, which sends the responses in line order once
the commit is done. The reader does not wait for commits, so a producer can
stream without waiting for each acknowledgement.

Error handling: an invalid line gets a ``rejected`` response and the stream
goes on. A peer that disconnects early ends its own connection only. A log
failure propagates and stops the daemon.
"""

from __future__ import annotations

import logging
import time

import msgspec
import trio

from postbackd.daemon._core import Core, event_dedup_key
from postbackd.daemon._inputs import InputError, InputFormat, decode_input
from postbackd.daemon._lines import Oversized, read_line_batches
from postbackd.eventlog import Append

logger = logging.getLogger("postbackd.ingest")

# Batches of lines a connection may have awaiting their commit; the reader
# stops reading from the peer when that many are queued.
MAX_BATCHES_IN_FLIGHT = 32

# Records the decision loop may have queued before readers wait for it.
MAX_DECISION_BACKLOG = 200_000


class Response(msgspec.Struct, omit_defaults=True, gc=False):
    line: int
    status: str
    id: str | None = None
    seq: int | None = None
    error: str | None = None


_encoder = msgspec.json.Encoder()


class _Batch:
    """Responses for the lines of one received chunk, complete after its commit."""

    __slots__ = ("responses", "accepted", "done")

    def __init__(self) -> None:
        self.responses: list[Response] = []
        # (index into responses, append) for lines that wait for the commit
        self.accepted: list[tuple[int, Append]] = []
        self.done = trio.Event()

    def committed(self, seqs: list[int | None]) -> None:
        for (index, _), seq in zip(self.accepted, seqs):
            response = self.responses[index]
            if seq is None:
                response.status = "duplicate"
            else:
                response.seq = seq
        if len(seqs) < len(self.accepted):
            for index, _ in self.accepted[len(seqs):]:
                self.responses[index].status = "rejected"
                self.responses[index].error = "The event log failed to commit this line; send it again."
        self.done.set()


class IngestServer:
    def __init__(self, core: Core) -> None:
        self.core = core
        self._readers: set[trio.CancelScope] = set()
        self.connections = 0
        self.lines_accepted = 0
        self.lines_duplicate = 0
        self.lines_rejected = 0

    def stop_reading(self) -> None:
        """Stop reading from every connection; responses already due are still sent."""
        for scope in list(self._readers):
            scope.cancel()

    async def handle(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        send_batches, receive_batches = trio.open_memory_channel[_Batch](MAX_BATCHES_IN_FLIGHT)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._write_responses, stream, receive_batches)
                with trio.CancelScope() as scope:
                    self._readers.add(scope)
                    try:
                        async with send_batches:
                            await self._read_lines(stream, send_batches)
                    finally:
                        self._readers.discard(scope)
        except trio.BrokenResourceError:
            logger.debug("an ingest peer disconnected before reading its responses")
        finally:
            self.connections -= 1
            await trio.aclose_forcefully(stream)

    async def _read_lines(self, stream: trio.SocketStream, batches: trio.MemorySendChannel[_Batch]) -> None:
        line_number = 0
        input_format: InputFormat = "native"
        config = self.core.config
        async for lines in read_line_batches(stream):
            batch = _Batch()
            received = time.time()
            for line in lines:
                line_number += 1
                if isinstance(line, Oversized):
                    batch.responses.append(Response(line_number, "rejected", error=(
                        f"Line too long: {line.size} bytes, the limit is 1 MiB. Split the input or shorten its data."
                    )))
                    continue
                text = line.strip()
                if not text:
                    batch.responses.append(Response(line_number, "skipped"))
                    continue
                if text.startswith(b"#"):
                    response, input_format = _directive(line_number, text, input_format)
                    batch.responses.append(response)
                    continue
                try:
                    event = decode_input(text, received, input_format)
                except InputError as exc:
                    batch.responses.append(Response(line_number, "rejected", error=str(exc)))
                    continue
                except UnicodeDecodeError:
                    batch.responses.append(Response(line_number, "rejected", error="Invalid UTF-8 in the line."))
                    continue
                if event.app not in config.apps:
                    batch.responses.append(Response(line_number, "rejected", id=event.id, error=(
                        f"Unknown app {event.app!r}. Register it first: postbackd app add {event.app} "
                        f"--platform android|ios --bundle-id ID --name NAME."
                    )))
                    continue
                append = Append(event, received=received, dedup_key=event_dedup_key(event.app, event.id))
                batch.accepted.append((len(batch.responses), append))
                batch.responses.append(Response(line_number, "accepted", id=event.id))

            while batch.accepted and self.core.decision_backlog() > MAX_DECISION_BACKLOG:
                await trio.sleep(0.01)
            # The writer task gets the batch before it is submitted: a stop that
            # cancels this task between the two steps must not leave committed
            # lines without their responses.
            await batches.send(batch)
            if batch.accepted:
                self.core.submit([a for _, a in batch.accepted], batch.committed)
            else:
                batch.done.set()

    async def _write_responses(self, stream: trio.SocketStream, batches: trio.MemoryReceiveChannel[_Batch]) -> None:
        async for batch in batches:
            await batch.done.wait()
            accepted = duplicate = rejected = 0
            for response in batch.responses:
                status = response.status
                if status == "accepted":
                    accepted += 1
                elif status == "duplicate":
                    duplicate += 1
                elif status == "rejected":
                    rejected += 1
            self.lines_accepted += accepted
            self.lines_duplicate += duplicate
            self.lines_rejected += rejected
            await stream.send_all(_encoder.encode_lines(batch.responses))


def _directive(line_number: int, text: bytes, current: InputFormat) -> tuple[Response, InputFormat]:
    words = text[1:].decode("utf-8", "replace").split()
    if len(words) == 2 and words[0] == "format" and words[1] in ("native", "kochava"):
        return Response(line_number, "ok"), words[1]  # type: ignore[return-value]
    return (
        Response(line_number, "rejected", error=(
            f"Unknown directive {text.decode('utf-8', 'replace')!r}. The only directive is "
            f"'#format native' or '#format kochava'."
        )),
        current,
    )
