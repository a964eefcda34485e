"""Configuring a test daemon and sending it events through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import Daemon, write_lines

APP = "demo-app"
QUERY = "event={event_name}&id={event_id}&pb={postback_id}"


def add_app(daemon: Daemon, app: str = APP) -> None:
    daemon.cli("app", "add", app, "--platform", "android", "--bundle-id", "com.example.demo", "--name", "Demo")


def add_partner(daemon: Daemon, network: str, base_url: str, *, app: str = APP, query: str = QUERY) -> None:
    """Add a partner of the custom integration whose URL template points at ``base_url``."""
    daemon.cli("partner", "add", app, network, "--integration", "custom", "--field", f"url={base_url}/pb?{query}")


def add_postback(daemon: Daemon, network: str, event: str = "install", *, app: str = APP, delay: str | None = None,
                 retries: int | None = None) -> None:
    args = ["postback", "add", app, network, event, "--method", "all"]
    if delay is not None:
        args += ["--delay", delay]
    if retries is not None:
        args += ["--retries", str(retries)]
    daemon.cli(*args)


def install(number: int, app: str = APP) -> dict:
    return {"type": "install", "id": f"i{number}", "app": app, "device": f"d{number}", "time": "2026-12-01T10:00:00Z"}


def event(number: int, name: str, app: str = APP, **extra) -> dict:
    return {"type": "event", "id": f"{name[:1].lower()}{number}", "app": app, "device": f"d{number}",
            "time": "2026-12-01T11:00:00Z", "name": name, **extra}


def send(daemon: Daemon, tmp_path: Path, events: list[dict], name: str = "events.jsonl") -> None:
    path = write_lines(tmp_path / name, events)
    result = daemon.cli("send", str(path))
    assert f"accepted {len(events)}, duplicate 0, rejected 0" in result.output


def deliveries(daemon: Daemon, *args: str) -> dict:
    """Run `postbackd deliveries --json` and return the decoded output."""
    return json.loads(daemon.cli("deliveries", "--json", *args).output)


def partner_status(daemon: Daemon, network: str) -> dict:
    status = daemon.control("status")["result"]
    return next(p for p in status["partners"] if p["network"] == network)
