"""Sampling profiles of the daemon with py-spy, summarized as tables of functions.

py-spy attaches to the running daemon process and samples its Python
stacks at 100 Hz. With ``--gil`` it samples only the thread that holds the
GIL, so the profile shows what uses the one core the interpreter can use,
and leaves out time in C code that releases the GIL (SQLite's own work,
socket waits).

The raw output has one line per distinct stack: frames from the root to the
leaf, separated by ";", then the number of samples. A frame reads
``function (path:line)``.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

# Samples per second taken by py-spy.
SAMPLE_RATE = 100

# Functions listed per table.
TOP_FUNCTIONS = 12

_FRAME = re.compile(r"^(?P<function>.*) \((?P<path>[^()]*?)(?::(?P<line>\d+))?\)$")


def find_py_spy() -> str | None:
    """Path of py-spy next to the running interpreter or on PATH, None when not installed."""
    beside = Path(sys.executable).parent / "py-spy"
    if beside.exists():
        return str(beside)
    return shutil.which("py-spy")


class Profiler:
    """A py-spy process sampling ``pid`` until ``stop``; writes the raw stacks to ``output``."""

    def __init__(self, py_spy: str, pid: int, output: Path) -> None:
        self.output = output
        self._log = output.with_suffix(".log")
        with open(self._log, "wb") as log:
            self._process = subprocess.Popen(
                [py_spy, "record", "--pid", str(pid), "--gil", "--rate", str(SAMPLE_RATE), "-f", "raw",
                 "-o", str(output)],
                stdout=log, stderr=log,
            )

    def stop(self) -> str:
        """Stop sampling and return a Markdown summary, or a sentence saying why there is none."""
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)
        try:
            self._process.wait(60)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if not self.output.exists():
            return f"py-spy wrote no profile; its output is in {self._log}."
        return summarize(self.output.read_text())


def _short(frame: str, with_line: bool) -> str:
    """``function (path:line)`` with the path cut to what identifies it, and the line only if ``with_line``."""
    match = _FRAME.match(frame)
    if match is None:
        return frame
    path = match.group("path")
    for marker in ("site-packages/", "/postbackd/", "/bench/", "/lib/python3"):
        index = path.find(marker)
        if index >= 0:
            path = path[index + 1:] if marker.startswith("/") else path[index + len(marker):]
            break
    if with_line and match.group("line"):
        path += ":" + match.group("line")
    return f"{match.group('function')} ({path})"


def parse_raw(text: str) -> list[tuple[list[str], int]]:
    """Parse py-spy's raw output into (frames from root to leaf, samples) pairs."""
    stacks = []
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        stacks.append((stack.split(";"), int(count)))
    return stacks


def summarize(text: str) -> str:
    """Markdown tables of the functions with the most samples, by own time and by total time."""
    stacks = parse_raw(text)
    total = sum(count for _, count in stacks)
    if not total:
        return "The profile holds no samples."
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for frames, count in stacks:
        # The leaf is the Python line that runs, or that called into C code
        # (py-spy shows no C frames), so its line number shows which call.
        own[_short(frames[-1], with_line=True)] += count
        for frame in {_short(frame, with_line=False) for frame in frames}:
            inclusive[frame] += count

    lines = [f"{total} samples with the GIL held ({total / SAMPLE_RATE:.1f} s of interpreter time).", ""]
    lines += _table("own time: the Python line running, C calls made from it included", own, total)
    lines.append("")
    postbackd_only = Counter({name: n for name, n in inclusive.items() if "postbackd/" in name})
    lines += _table("total time, postbackd functions", postbackd_only, total)
    return "\n".join(lines)


def _table(title: str, counts: Counter[str], total: int) -> list[str]:
    lines = [f"| {title} | share |", "|---|---:|"]
    for name, count in counts.most_common(TOP_FUNCTIONS):
        lines.append(f"| `{name}` | {count / total * 100:.1f} % |")
    return lines
