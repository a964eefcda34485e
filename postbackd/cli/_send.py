"""``postbackd send``: stream JSON lines into the ingest socket."""

from __future__ import annotations

import bisect
import socket
import sys
import threading
from pathlib import Path
from typing import BinaryIO

import click
import msgspec

from postbackd.cli._client import INGEST_SOCKET, connect_unix
from postbackd.cli._options import socket_dir_option


class _Source:
    """Maps line numbers of the connection back to input files and their lines."""

    def __init__(self) -> None:
        self.starts: list[int] = []  # first connection line number of each file
        self.names: list[str] = []

    def add(self, first_line: int, name: str) -> None:
        self.starts.append(first_line)
        self.names.append(name)

    def locate(self, line: int) -> tuple[str, int]:
        index = bisect.bisect_right(self.starts, line) - 1
        return self.names[index], line - self.starts[index] + 1


class _Response(msgspec.Struct):
    line: int
    status: str
    error: str | None = None


def _open_inputs(files: tuple[str, ...]) -> list[tuple[str, BinaryIO]]:
    inputs = []
    for name in files or ("-",):
        if name == "-":
            inputs.append(("<stdin>", sys.stdin.buffer))
            continue
        try:
            inputs.append((name, open(name, "rb")))
        except OSError as exc:
            raise click.ClickException(f"Cannot read input file {name}: {exc.strerror}.") from None
    return inputs


@click.command()
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False, allow_dash=True))
@click.option(
    "--format", "input_format", type=click.Choice(["native", "kochava"]), default="native", show_default=True,
    help="Input format: native JSON lines, or the reference platform's server-to-server objects.",
)
@socket_dir_option
def send(files: tuple[str, ...], input_format: str, socket_dir: Path) -> None:
    """Stream JSON lines from FILES (standard input when none, or for -) into the daemon.

    Prints FILE:LINE and the error for each rejected line, then the counts.
    Exits with status 1 when any line was rejected.
    """
    inputs = _open_inputs(files)
    sock = connect_unix(socket_dir / INGEST_SOCKET)
    source = _Source()
    failure: list[BaseException] = []
    lines_sent = [0]

    def write() -> None:
        line_number = 0
        try:
            if input_format != "native":
                line_number += 1
                sock.sendall(f"#format {input_format}\n".encode())
                source.add(line_number, "<directive>")
            for name, stream in inputs:
                source.add(line_number + 1, name)
                chunk: list[bytes] = []
                for line in stream:
                    line_number += 1
                    chunk.append(line if line.endswith(b"\n") else line + b"\n")
                    if len(chunk) >= 512:
                        sock.sendall(b"".join(chunk))
                        chunk.clear()
                if chunk:
                    sock.sendall(b"".join(chunk))
            lines_sent[0] = line_number
            sock.shutdown(socket.SHUT_WR)  # so the daemon reads the end of input
        except OSError as exc:
            failure.append(exc)

    writer = threading.Thread(target=write, name="postbackd-send", daemon=True)
    writer.start()

    counts = {"accepted": 0, "duplicate": 0, "rejected": 0}
    answered = 0
    decoder = msgspec.json.Decoder(_Response)
    with sock.makefile("rb") as responses:
        for raw in responses:
            response = decoder.decode(raw)
            answered += 1
            if response.status in counts:
                counts[response.status] += 1
            if response.status == "rejected":
                name, line = source.locate(response.line)
                click.echo(f"{name}:{line}: {response.error}", err=True)
    writer.join()
    sock.close()
    for _, stream in inputs:
        if stream is not sys.stdin.buffer:
            stream.close()

    click.echo(f"accepted {counts['accepted']}, duplicate {counts['duplicate']}, rejected {counts['rejected']}")
    if failure or answered < lines_sent[0]:
        reason = failure[0] if failure else "the daemon closed the connection"
        raise click.ClickException(
            f"Sending to the daemon failed after {answered} lines: {reason}. "
            f"Lines without a response were not accepted; send them again (accepted ids count as duplicates)."
        )
    if counts["rejected"]:
        sys.exit(1)
