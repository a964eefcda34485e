"""The benchmark harness runs end to end with tiny sizes, and rejects invalid options.

No test here checks a time or a rate: the figures depend on the machine.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.run import main

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
