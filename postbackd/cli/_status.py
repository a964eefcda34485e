"""``postbackd status``: counters of the running daemon."""

from __future__ import annotations

import json
from pathlib import Path

import click

from postbackd.cli._client import ControlClient
from postbackd.cli._options import json_option, socket_dir_option
from postbackd.cli._table import format_table


def format_uptime(seconds: float) -> str:
    """Format seconds as days, hours, minutes and seconds, e.g. 2d 3h 4m 5s."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    parts = [f"{days}d"] if days else []
    if days or hours:
        parts.append(f"{hours}h")
    if days or hours or minutes:
        parts.append(f"{minutes}m")
    parts.append(f"{secs}s")
    return " ".join(parts)


def format_latency(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def format_rate(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.1f} %"


@click.command()
@json_option
@socket_dir_option
def status(as_json: bool, socket_dir: Path) -> None:
    """Show the daemon's uptime, log position and per-partner counters.

    Per partner: postbacks pending and in flight now, delivered and failed in
    the last hour with the success rate and the p50 and p99 latency of the
    attempts (estimates within about 2.5 %), and the totals since the log
    began.
    """
    with ControlClient(socket_dir) as client:
        result = client.call("status")
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(
        f"uptime {format_uptime(result['uptime'])}, last seq {result['last_seq']}, "
        f"log {result['log_bytes'] / 1e6:.1f} MB, pending {result['pending']}, in flight {result['in_flight']}"
        + (f", snapshot at seq {result['snapshot_seq']}" if result.get("snapshot_seq") else "")
    )
    click.echo("\nlast hour:")
    rows = [
        [p["app"], p["network"], "yes" if p["active"] else "no", p["pending"], p["in_flight"],
         p["delivered_last_hour"], p["failed_last_hour"], format_rate(p["success_rate"]),
         format_latency(p["latency_p50"]), format_latency(p["latency_p99"])]
        for p in result["partners"]
    ]
    click.echo(format_table(
        ["app", "partner", "active", "pending", "in flight", "delivered", "failed", "success", "p50", "p99"], rows
    ))
    click.echo("\nsince the log began:")
    rows = [
        [p["app"], p["network"], p["scheduled"], p["suppressed"], p["delivered"], p["failed"], p["retried"]]
        for p in result["partners"]
    ]
    click.echo(format_table(["app", "partner", "scheduled", "suppressed", "delivered", "failed", "retried"], rows))
    click.echo()
    click.echo(format_table(["app", "events"], [[a["app"], a["events"]] for a in result["apps"]]))
