"""A description of the machine and the software a benchmark run used."""

from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
from importlib import metadata
from pathlib import Path

# Libraries whose versions the report names.
LIBRARIES = ("trio", "httpx", "httpcore", "h11", "msgspec")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_total() -> str:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    return "unknown"


# The benchmark page, relative to the repository.
REPORT_PATH = "docs/benchmarks.md"


def git_revision(repository: Path) -> str:
    """Return the short commit of ``repository``, marked when tracked files have uncommitted changes."""
    try:
        revision = subprocess.run(
            ["git", "-C", str(repository), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        # The page itself is tracked, and every run rewrites it.
        dirty = subprocess.run(
            ["git", "-C", str(repository), "status", "--porcelain", "--untracked-files=no", "--",
             ".", f":(exclude){REPORT_PATH}"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{revision} (with uncommitted changes)" if dirty else revision


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def describe_machine(revision: str) -> list[tuple[str, str]]:
    """Return (name, value) pairs: CPUs, CPU model, memory, OS, Python, SQLite, libraries, and ``revision``."""
    versions = []
    for name in LIBRARIES:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} not installed")
    return [
        ("CPUs available (nproc)", str(len(os.sched_getaffinity(0)))),
        ("CPU model", _cpu_model()),
        ("memory", _memory_total()),
        ("OS", f"{platform.system()} {platform.release()}"),
        ("Python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("SQLite", sqlite3.sqlite_version),
        ("libraries", ", ".join(versions)),
        ("postbackd commit", revision),
    ]
