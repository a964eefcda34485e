"""The benchmark harness runs end to end with tiny sizes, and rejects invalid options.

No test here checks a time or a rate: the figures depend on the machine.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench._machine import REPORT_PATH, git_revision
from bench._report import _target_row
from bench._results import Target
from bench.run import FULL_SIZES, main, smaller_sizes

REPOSITORY = Path(__file__).resolve().parents[2]

TINY_SIZES = [
    "--events", "300", "--postbacks", "60", "--plain-requests", "60", "--capacity-seconds", "1",
    "--latency-seconds", "1", "--latency-events", "50", "--restart-records", "2000", "--devices", "300",
]


@pytest.mark.timeout(300)
def test_quick_run_writes_report(tmp_path):
    output = tmp_path / "benchmarks.md"

    result = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--no-profile", *TINY_SIZES,
         "--output", str(output), "--work-dir", str(tmp_path / "work")],
        cwd=REPOSITORY, capture_output=True, text=True, timeout=280,
    )

    assert result.returncode == 0, result.stderr
    report = output.read_text()
    for heading in ("## Run", "## Targets", "## Ingest", "## Delivery", "## Latency", "## Restart", "## Memory"):
        assert heading in report
    assert "The scenario failed" not in report
    assert "start with a snapshot, to READY=1" in report
    assert "| **no** |" not in report
    assert "not judged: --events below the full size" in report
    assert "- measured in the same run as the scenario above" in report


def test_full_sizes_are_judged():
    full = dict(FULL_SIZES)
    assert smaller_sizes("ingest", full) == []
    assert smaller_sizes("memory", {**full, "devices": 10}) == ["--devices"]
    assert smaller_sizes("restart", {**full, "restart_records": 10, "devices": 10}) == [
        "--restart-records", "--devices"
    ]


def test_target_row_says_why_not_judged():
    target = Target("acknowledged events/s", 7_000.0, ">=", 50_000, "events/s")
    target.not_judged = "--events below the full size"
    judged = Target("acknowledged events/s", 7_000.0, ">=", 50_000, "events/s")

    assert "| not judged: --events below the full size | |" in _target_row(target)
    assert "| **no** | 86 % below |" in _target_row(judged)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--events", "ten"], "invalid count 'ten': expected a whole number"),
        (["--events", "0"], "invalid count '0': expected 1 or more"),
        (["--latency-seconds", "-1"], "invalid number '-1': expected more than 0"),
        (["--only", "ingest,speed"], "invalid scenario list 'ingest,speed'"),
        (["--only", "latency"], "the latency run needs --latency-rate"),
        (["--only", "restart", "--restart-records", "100", "--devices", "1000"],
         "--restart-records 100 is too small for --devices 1000"),
    ],
)
def test_invalid_option_is_rejected(arguments, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--quick", *arguments])

    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_rewritten_page_does_not_mark_the_tree_changed(tmp_path):
    def git(*arguments):
        subprocess.run(["git", "-C", str(tmp_path), *arguments], check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "docs").mkdir()
    (tmp_path / REPORT_PATH).write_text("old page\n")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("add", ".")
    git("-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-q", "-m", "first")

    (tmp_path / REPORT_PATH).write_text("new page\n")
    assert "uncommitted" not in git_revision(tmp_path)
    (tmp_path / "code.py").write_text("x = 2\n")
    assert git_revision(tmp_path).endswith("(with uncommitted changes)")
