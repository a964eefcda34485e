"""``postbackd deliveries`` and ``postbackd resend``: inspect and repeat postback deliveries."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from postbackd.cli._client import ControlClient
from postbackd.cli._options import json_option, socket_dir_option
from postbackd.cli._table import format_table
from postbackd.daemon._settings import parse_duration

# Characters of an error shown in the table; --json prints the whole text.
ERROR_WIDTH = 80


def parse_since(text: str, now: float | None = None) -> float:
    """Parse ``--since``: an RFC 3339 time such as 2026-12-04T10:00:00Z, or a duration ago such as 2h."""
    try:
        return (time.time() if now is None else now) - parse_duration(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is neither a time nor a duration. Use RFC 3339 such as 2026-12-04T10:00:00Z, "
            "or a duration ago such as 30m or 2h.",
            param_hint="'--since'",
        ) from None
    if moment.tzinfo is None:
        raise click.BadParameter(
            f"The time {text!r} has no UTC offset. Add 'Z' or an offset such as '+02:00'.", param_hint="'--since'"
        )
    return moment.timestamp()


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.1f} s"


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= ERROR_WIDTH else text[: ERROR_WIDTH - 1] + "…"


def _row(postback: dict[str, Any]) -> list[object]:
    attempts = postback["attempts"]
    last = attempts[-1] if attempts else None
    if postback["status"] == "pending":
        status = "in flight" if postback["in_flight"] else "pending"
        when = f"due {postback['due']}"
    else:
        status = postback["status"]
        when = last["started"] if last else ""
    error = ""
    if last is not None and last["failure_class"]:
        error = _shorten(f"{last['failure_class']}: {last['error'] or ''}")
    return [
        postback["postback_id"],
        postback["app"],
        postback["network"],
        postback["event"] or "",
        status,
        len(attempts),
        last["status_code"] if last else "",
        format_seconds(last["duration"]) if last else "",
        when,
        error,
    ]


@click.command()
@click.option("--pending", is_flag=True, help="Only postbacks waiting for an attempt, soonest first.")
@click.option("--failed", is_flag=True, help="Only failed postbacks, latest failure first.")
@click.option("--delivered", is_flag=True, help="Only delivered postbacks, latest first.")
@click.option("--app", "app_id", default=None, help="Only postbacks of this app.")
@click.option("--partner", "network", default=None, help="Only postbacks to this network.")
@click.option("--limit", type=click.IntRange(min=0), default=20, show_default=True,
              help="Number of postbacks listed; 0 lists all.")
@json_option
@socket_dir_option
def deliveries(pending: bool, failed: bool, delivered: bool, app_id: str | None, network: str | None, limit: int,
               as_json: bool, socket_dir: Path) -> None:
    """List recent postbacks with their attempts: status code, duration and error.

    Without --pending, --failed or --delivered, lists the postbacks attempted
    most recently. --json adds every attempt's URL (secrets masked) and the
    first 1 KiB of each response. Times in the output are RFC 3339 in UTC.
    """
    chosen = [name for name, flag in (("pending", pending), ("failed", failed), ("delivered", delivered)) if flag]
    if len(chosen) > 1:
        raise click.UsageError(f"Give at most one of --pending, --failed and --delivered, not {' and '.join(chosen)}.")
    status = chosen[0] if chosen else None
    with ControlClient(socket_dir) as client:
        result = client.call("deliveries", status=status, app=app_id, network=network, limit=limit)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    rows = [_row(postback) for postback in result["postbacks"]]
    click.echo(format_table(
        ["postback", "app", "partner", "event", "status", "attempts", "code", "duration", "time", "error"], rows
    ))
    click.echo(f"{result['pending_total']} pending and {result['failed_total']} failed postbacks in all.")
    if result["scan_truncated"]:
        click.echo("The search stopped in the older part of the log; narrow it with --partner or --app.")


@click.command()
@click.argument("postback_id", required=False)
@click.option("--failed", is_flag=True, help="Resend every failed postback that matches --app, --partner and --since.")
@click.option("--app", "app_id", default=None, help="With --failed: only postbacks of this app.")
@click.option("--partner", "network", default=None, help="With --failed: only postbacks to this network.")
@click.option("--since", default=None, metavar="TIME",
              help="With --failed: only postbacks that failed at or after TIME, given as RFC 3339 "
                   "(2026-12-04T10:00:00Z) or as a duration ago (30m, 2h).")
@json_option
@socket_dir_option
def resend(postback_id: str | None, failed: bool, app_id: str | None, network: str | None, since: str | None,
           as_json: bool, socket_dir: Path) -> None:
    """Send POSTBACK_ID again, or every failed postback with --failed.

    Each resend starts a new round of attempts, recorded as manual, with the
    postback's retry attempts and the same postback id as before.
    """
    if postback_id is not None and failed:
        raise click.UsageError("Give either POSTBACK_ID or --failed, not both.")
    if postback_id is None and not failed:
        filters = [name for name, value in (("--app", app_id), ("--partner", network), ("--since", since)) if value]
        if filters:
            raise click.UsageError(
                f"{' and '.join(filters)} work{'s' if len(filters) == 1 else ''} only with --failed. Add --failed to "
                "resend every failed postback that matches, or give a POSTBACK_ID instead."
            )
        raise click.UsageError("Missing POSTBACK_ID. Give a postback id, or --failed to resend every failed postback.")
    if postback_id is not None and (app_id or network or since):
        raise click.UsageError("--app, --partner and --since apply only with --failed.")
    since_epoch = parse_since(since) if since is not None else None

    with ControlClient(socket_dir) as client:
        result = client.call(
            "resend", postback_id=postback_id, failed=failed or None, app=app_id, network=network, since=since_epoch
        )
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    for item in result["skipped"]:
        click.echo(f"skipped {item['postback_id']}: {item['reason']}")
    resent = result["resent"]
    if postback_id is not None:
        click.echo(f"resending postback {postback_id}")
    elif not resent:
        click.echo("No failed postbacks match.")
    else:
        click.echo(f"resending {len(resent)} failed postback{'s' if len(resent) != 1 else ''}")
