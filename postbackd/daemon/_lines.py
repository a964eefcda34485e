"""Newline-delimited framing over a trio byte stream."""

from __future__ import annotations

from collections.abc import AsyncIterator

import trio

# Longest accepted line in bytes, without the newline. A longer line is
# skipped up to its newline and reported as one oversized line.
MAX_LINE_BYTES = 1024 * 1024

# Bytes asked for per receive call.
RECEIVE_SIZE = 256 * 1024


class Oversized:
    """Marker yielded in place of a line that exceeded ``MAX_LINE_BYTES``."""

    __slots__ = ("size",)

    def __init__(self, size: int) -> None:
        self.size = size


async def read_line_batches(
    stream: trio.abc.ReceiveStream, max_line: int = MAX_LINE_BYTES
) -> AsyncIterator[list[bytes | Oversized]]:
    """Yield the complete lines of each received chunk of ``stream``, without newlines.

    A line longer than ``max_line`` comes as ``Oversized``, and reading
    resumes after its newline. A final line without a newline is yielded too.
    Batches let callers commit and acknowledge many lines at once.
    """
    buffer = bytearray()
    skipping = 0  # bytes dropped so far of an oversized line, 0 when not skipping
    while True:
        chunk = await stream.receive_some(RECEIVE_SIZE)
        if not chunk:
            break
        start = 0
        lines: list[bytes | Oversized] = []
        while True:
            newline = chunk.find(b"\n", start)
            if newline < 0:
                rest = chunk[start:]
                if skipping:
                    skipping += len(rest)
                elif len(buffer) + len(rest) > max_line:
                    skipping = len(buffer) + len(rest)
                    buffer.clear()
                else:
                    buffer += rest
                if lines:
                    yield lines
                break
            piece = chunk[start:newline]
            if skipping:
                lines.append(Oversized(skipping + len(piece)))
                skipping = 0
            elif len(buffer) + len(piece) > max_line:
                lines.append(Oversized(len(buffer) + len(piece)))
                buffer.clear()
            else:
                if buffer:
                    buffer += piece
                    lines.append(bytes(buffer))
                    buffer.clear()
                else:
                    lines.append(piece)
            start = newline + 1
    if skipping:
        yield [Oversized(skipping)]
    elif buffer:
        yield [bytes(buffer)]
