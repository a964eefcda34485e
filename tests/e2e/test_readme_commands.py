"""The server-to-server example of the README, run as written against a real daemon."""

from __future__ import annotations

import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
S2S_EXAMPLE = "postbackd/examples/kochava-s2s.jsonl"


def readme_commands(prefix: str) -> list[list[str]]:
    """Return the README's command lines that start with ``prefix``, split into arguments without 'postbackd'."""
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    return [shlex.split(line)[1:] for line in lines if line.startswith(prefix)]


def test_s2s_example_needs_its_apps(daemon):
    daemon.start()
    example = str(ROOT / S2S_EXAMPLE)

    before = daemon.cli("send", "--format", "kochava", example, expect=1)
    app_commands = readme_commands("postbackd app add kotestapp-")
    for args in app_commands:
        daemon.cli(*args)
    [send] = readme_commands(f"postbackd send --format kochava {S2S_EXAMPLE}")
    after = daemon.cli(*send[:-1], example)

    assert "accepted 0, duplicate 0, rejected 6" in before.output
    assert "Unknown app 'kotestapp-android-1a2b3c'" in before.output
    assert len(app_commands) == 2
    assert after.output.strip() == "accepted 6, duplicate 0, rejected 0"
