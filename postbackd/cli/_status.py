"""``postbackd status``: counters of the running daemon."""

from __future__ import annotations

import json
from pathlib import Path

import click

from postbackd.cli._client import ControlClient
from postbackd.cli._options import json_option, socket_dir_option
from postbackd.cli._table import format_table


@click.command()
@json_option
@socket_dir_option
def status(as_json: bool, socket_dir: Path) -> None:
    """Show the daemon's uptime, log position and per-partner counters."""
    with ControlClient(socket_dir) as client:
        result = client.call("status")
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(
        f"uptime {result['uptime']:.0f} s, last seq {result['last_seq']}, log {result['log_bytes'] / 1e6:.1f} MB, "
        f"pending {result['pending']}, in flight {result['in_flight']}"
    )
    rows = [
        [p["app"], p["network"], "yes" if p["active"] else "no", p["scheduled"], p["suppressed"], p["delivered"],
         p["failed"], p["retried"], p["pending"]]
        for p in result["partners"]
    ]
    click.echo(format_table(
        ["app", "partner", "active", "scheduled", "suppressed", "delivered", "failed", "retried", "pending"], rows
    ))
    click.echo(format_table(["app", "events"], [[a["app"], a["events"]] for a in result["apps"]]))
