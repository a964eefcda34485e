"""``postbackd audit``: why each postback was or was not sent, read from the event log.

The command opens the log read-only, so it works whether or not the daemon
runs and never changes anything. ``--json`` prints one JSON object per line
and event; docs/audit.md describes the fields.
"""

from __future__ import annotations

import re
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import msgspec

from postbackd.actors import REASON_CODES
from postbackd.actors._audit import AuditQuery, DecisionView, EventView, audit
from postbackd.cli._options import json_option
from postbackd.daemon._settings import SettingsError, load_settings
from postbackd.eventlog import Attribution, LogError, connect, log_path

_RELATIVE = re.compile(r"(?:(\d+(?:\.\d+)?)([smhdw]))+")
_RELATIVE_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_time_option(text: str, option: str, now: float | None = None) -> float:
    """Parse a time option: RFC 3339 such as 2026-12-04T10:00:00Z, or an age such as 30m, 2h, 7d or 1h30m."""
    value = text.strip().lower()
    if _RELATIVE.fullmatch(value):
        age = sum(float(number) * _UNIT_SECONDS[unit] for number, unit in _RELATIVE_PART.findall(value))
        return (time.time() if now is None else now) - age
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is neither a time nor an age. Use RFC 3339 such as 2026-12-04T10:00:00Z, "
            "or an age such as 30m, 2h or 7d.",
            param_hint=f"'{option}'",
        ) from None
    if moment.tzinfo is None:
        raise click.BadParameter(
            f"The time {text!r} has no UTC offset. Add 'Z' or an offset such as '+02:00'.", param_hint=f"'{option}'"
        )
    return moment.timestamp()


def format_time(epoch: float | None) -> str | None:
    """Format epoch seconds as RFC 3339 in UTC with milliseconds, e.g. 2026-12-04T10:00:00.125Z."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def resolve_data_dir(data_dir: Path | None) -> Path:
    """Return ``data_dir``, or when it is None the same default as `postbackd run`.

    That is the settings file's data_dir, else $POSTBACKD_DATA_DIR, else the
    XDG state directory.
    """
    if data_dir is not None:
        return data_dir
    try:
        return load_settings({}, None, config_path_explicit=False).data_dir
    except SettingsError as exc:
        raise click.ClickException(f"{exc} Or pass --data-dir.") from None


def data_dir_option(function):
    """Add ``--data-dir``: where the event log is."""
    return click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Directory of the event log. Default: the data_dir of /etc/postbackd/postbackd.toml, "
             "else $POSTBACKD_DATA_DIR, else $XDG_STATE_HOME/postbackd (~/.local/state/postbackd).",
    )(function)


def open_log(data_dir: Path) -> sqlite3.Connection:
    """Open the event log in ``data_dir`` read-only, or raise ClickException naming the path and the fix."""
    path = log_path(data_dir)
    try:
        return connect(path, readonly=True)
    except LogError as exc:
        raise click.ClickException(str(exc)) from None
    except sqlite3.Error as exc:
        raise click.ClickException(f"Cannot read the event log {path}: {exc}.") from None


def event_json(view: EventView) -> dict[str, Any]:
    """Return the --json object of one event; docs/audit.md documents it, so keep it stable."""
    return {
        "seq": view.seq,
        "received": format_time(view.received),
        "app": view.app,
        "id": view.id,
        "type": view.type,
        "name": view.name,
        "time": format_time(view.time),
        "device": view.device,
        "country": view.country,
        "data_controlled": view.data_controlled,
        "attribution": _attribution_json(view.attribution),
        "decided": view.decided,
        "decisions": [_decision_json(d) for d in view.decisions],
    }


def _attribution_json(attribution: Attribution | None) -> dict[str, str | None] | None:
    if attribution is None:
        return None
    return {name: getattr(attribution, name) for name in attribution.__struct_fields__}


def _decision_json(view: DecisionView) -> dict[str, Any]:
    return {
        "partner": view.partner,
        "postback": view.postback,
        "decision": view.decision,
        "reason": view.reason,
        "postback_id": view.postback_id,
        "attribution": {
            "type": view.attribution_type,
            "network": view.attribution_network,
            "agency": view.attribution_agency,
        },
        "due": format_time(view.due),
        "session_window": view.session_window,
        "status": view.status,
        "country": view.country,
        "country_source": view.country_source,
        "attempts": [
            {
                "attempt": a.attempt,
                "started": format_time(a.started),
                "duration": a.duration,
                "outcome": a.outcome,
                "status_code": a.status_code,
                "failure_class": a.failure_class,
                "error": a.error,
                "method": a.method,
                "url": a.url,
                "manual": a.manual,
                "next_due": format_time(a.next_due),
            }
            for a in view.attempts
        ],
    }


def event_text(view: EventView) -> str:
    """Return the text block of one event: a header, then one line per partner and attempt."""
    kind = f"event {view.name}" if view.type == "event" else view.type
    lines = [
        f"{kind}  id {view.id}  app {view.app}  log position {view.seq}",
        f"  time {format_time(view.time)}  received {format_time(view.received)}  device {view.device}  "
        + (f"country {view.country}" if view.country else "no country in the event")
        + (f"  attributed to {view.attribution.network}" if view.attribution and view.attribution.network else "")
        + ("  data-controlled" if view.data_controlled else ""),
    ]
    if not view.decided:
        lines.append("  not decided yet: the daemon decides it when it runs")
    elif not view.decisions:
        lines.append("  no postback: no partner has a postback for this event")
    for decision in view.decisions:
        country = country_text(decision)
        if decision.decision == "suppressed":
            lines.append(f"  {decision.partner}: suppressed: {decision.reason}  {country}")
            continue
        window = f", SessionBegin window {decision.session_window}" if decision.session_window else ""
        lines.append(
            f"  {decision.partner}: scheduled for {format_time(decision.due)}{window}, {decision.status}"
            f"  {country}  (postback {decision.postback_id})"
        )
        for attempt in decision.attempts:
            status = f"HTTP {attempt.status_code}" if attempt.status_code is not None else "no response"
            failure = f"  {attempt.failure_class}" if attempt.failure_class else ""
            manual = "  manual" if attempt.manual else ""
            lines.append(
                f"    attempt {attempt.attempt}  {format_time(attempt.started)}  {status}  "
                f"{attempt.duration:.3f} s{failure}  {attempt.outcome}{manual}"
            )
    return "\n".join(lines)


def country_text(decision: DecisionView) -> str:
    """Return the country a decision used, for example "country US (from install)"."""
    if decision.country is None:
        return "country unknown"
    if decision.country_source == "install":
        return f"country {decision.country} (from install)"
    return f"country {decision.country}"


def _check_reason(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and value not in REASON_CODES:
        raise click.BadParameter(f"Unknown reason code {value!r}. Known codes: {', '.join(REASON_CODES)}.")
    return value


def _check_limit(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    """Return the limit, or None for 0, which shows all events as replay and deliveries do."""
    if value is not None and value < 0:
        raise click.BadParameter(f"{value} is negative. Give the number of events to show, or 0 for all.")
    return value or None


@click.command("audit")
@click.option("--device", help="Only events of this device id.")
@click.option("--partner", metavar="NETWORK", help="Only decisions for this partner.")
@click.option("--event-id", help="Only the event with this id (of any app, unless --app is given).")
@click.option("--app", "app_id", metavar="APP_ID", help="Only events of this app.")
@click.option("--since", metavar="TIME", help="Only events received at or after TIME: RFC 3339, or an age such as "
                                              "30m, 2h or 7d.")
@click.option("--until", metavar="TIME", help="Only events received at or before TIME, in the same forms as --since.")
@click.option("--decision", type=click.Choice(["scheduled", "suppressed"]), help="Only decisions with this outcome.")
@click.option("--reason", callback=_check_reason, metavar="CODE",
              help=f"Only decisions with this reason code: {', '.join(REASON_CODES)}.")
@click.option("--status", type=click.Choice(["delivered", "failed", "pending"]),
              help="Only scheduled postbacks with this delivery status.")
@click.option("--limit", type=int, callback=_check_limit, help="Show at most this many events; 0 shows all.")
@json_option
@data_dir_option
def audit_command(
    device: str | None,
    partner: str | None,
    event_id: str | None,
    app_id: str | None,
    since: str | None,
    until: str | None,
    decision: str | None,
    reason: str | None,
    status: str | None,
    limit: int | None,
    as_json: bool,
    data_dir: Path | None,
) -> None:
    """Show events with each partner's decision, the reason, and every delivery attempt.

    Reads the event log directly, read-only: the daemon need not run.
    """
    now = time.time()
    query = AuditQuery(
        device=device,
        partner=partner,
        event_id=event_id,
        app=app_id,
        since=parse_time_option(since, "--since", now) if since is not None else None,
        until=parse_time_option(until, "--until", now) if until is not None else None,
        decision=decision,
        reason=reason,
        status=status,
    )
    if query.since is not None and query.until is not None and query.since > query.until:
        raise click.BadParameter(f"--since {since} is later than --until {until}. Swap them.")
    conn = open_log(resolve_data_dir(data_dir))
    shown = 0
    try:
        for view in audit(conn, query):
            if as_json:
                click.echo(msgspec.json.encode(event_json(view)).decode())
            else:
                click.echo(("\n" if shown else "") + event_text(view))
            shown += 1
            if limit is not None and shown >= limit:
                break
    except sqlite3.Error as exc:
        raise click.ClickException(f"Reading the event log failed: {exc}.") from None
    finally:
        conn.close()
    if not shown and not as_json:
        click.echo("No events match.", err=True)
