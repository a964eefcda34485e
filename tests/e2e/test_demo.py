"""The demo that `make demo` runs, as a subprocess, the way a new user starts it."""

from __future__ import annotations

import re
import subprocess
import sys


def test_demo_runs_and_delivers():
    result = subprocess.run([sys.executable, "-m", "postbackd.demo"], capture_output=True, text=True, timeout=120)

    assert result.returncode == 0, result.stdout + result.stderr
    received = re.search(r"The receiver got (\d+) postbacks", result.stdout)
    assert received is not None, result.stdout
    assert int(received.group(1)) >= 10
    assert "accepted 6, duplicate 0, rejected 0" in result.stdout
    assert re.search(r"demo-app\s+localnet\s+yes\s+\d+\s+\d+\s+\d+\s+0", result.stdout)
    assert "localnet: suppressed: data_controlled" in result.stdout
    assert "daemon stopped with exit status 0" in result.stdout
