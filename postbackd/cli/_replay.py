"""``postbackd replay``: verify the recorded decisions, or decide the log again under another configuration.

Both modes read the event log read-only and send nothing. A progress bar
goes to standard error when it is a terminal.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from tqdm import tqdm

from postbackd.actors._verify import Mismatch, verify_log
from postbackd.actors._whatif import Difference, WhatIfReport, logged_config, what_if
from postbackd.cli._audit import data_dir_option, open_log, resolve_data_dir
from postbackd.cli._options import json_option
from postbackd.cli._table import format_table
from postbackd.daemon._commands import CommandError
from postbackd.daemon._config_io import plan_import
from postbackd.daemon._timestamps import format_timestamp
from postbackd.eventlog import Decision, Origin, last_seq
from postbackd.integrations import IntegrationError, load_catalog

# Records between two updates of the progress bar; updating per record
# would cost more than the replay.
PROGRESS_STEP = 10_000


@contextmanager
def progress_bar(total: int, description: str):
    """Yield a callback taking the log position reached; it draws a bar only when stderr is a terminal."""
    bar = tqdm(total=total, desc=description, unit="records", unit_scale=True, file=sys.stderr,
               disable=not sys.stderr.isatty())
    reported = 0
    start = None

    def advance(seq: int) -> None:
        nonlocal reported, start
        if start is None:
            start = seq - 1
        done = seq - start
        if done - reported >= PROGRESS_STEP:
            bar.update(done - reported)
            reported = done

    try:
        yield advance
        bar.update(max(0, total - reported))
    finally:
        bar.close()


def describe(decision: Decision | None) -> str:
    if decision is None:
        return "no postback"
    if decision.outcome == "suppressed":
        return f"suppressed: {decision.reason}"
    return "scheduled"


def decision_fields(decision: Decision) -> dict[str, Any]:
    return {
        "decision": decision.outcome,
        "reason": decision.reason,
        "postback_id": decision.postback_id,
        "attribution_type": decision.attribution_type,
        "attribution_network": decision.attribution_network,
        "attribution_agency": decision.attribution_agency,
        "due": decision.due,
        "session_window": decision.session_window,
        "country": decision.country,
    }


def decision_json(decision: Decision | None) -> dict[str, Any] | None:
    """Return a decision as ``replay --verify --json`` writes it: the fields of ``audit --json`` decisions."""
    if decision is None:
        return None
    return {
        "postback": decision.postback,
        "decision": decision.outcome,
        "reason": decision.reason,
        "postback_id": decision.postback_id,
        "attribution": {
            "type": decision.attribution_type,
            "network": decision.attribution_network,
            "agency": decision.attribution_agency,
        },
        "due": format_timestamp(decision.due),
        "session_window": decision.session_window,
        "country": decision.country,
    }


def _differing_partners(mismatch: Mismatch) -> list[tuple[str, Decision | None, Decision | None]]:
    """Return each partner whose recorded and derived decisions differ, as (network, recorded, derived).

    When one side is missing, because the event cannot be decided again or the
    recorded decisions cannot be applied, every recorded decision is listed.
    """
    if mismatch.recorded is None or mismatch.derived is None:
        return [(decision.network, decision, None) for decision in mismatch.recorded or ()]
    recorded = {d.network: d for d in mismatch.recorded}
    derived = {d.network: d for d in mismatch.derived}
    return [
        (network, recorded.get(network), derived.get(network))
        for network in sorted(recorded.keys() | derived.keys())
        if recorded.get(network) != derived.get(network)
    ]


def mismatch_json(mismatch: Mismatch) -> dict[str, Any]:
    """Return the JSON object of one mismatch; docs/audit.md documents it."""
    return {
        "type": "mismatch",
        "seq": mismatch.seq,
        "app": mismatch.app,
        "event_id": mismatch.event_id,
        "problem": mismatch.problem,
        "partners": [
            {"partner": network, "recorded": decision_json(old), "derived": decision_json(new)}
            for network, old, new in _differing_partners(mismatch)
        ],
    }


def mismatch_text(mismatch: Mismatch) -> str:
    """Return the lines that report one mismatch: the event, then each partner whose decision differs."""
    lines = [f"mismatch at log position {mismatch.seq}: event {mismatch.event_id} (app {mismatch.app}) "
             f"{mismatch.problem}"]
    if mismatch.recorded is None or mismatch.derived is None:
        for decision in mismatch.recorded or ():
            lines.append(f"  {decision.network}: recorded {describe(decision)}")
        return "\n".join(lines)
    for network, old, new in _differing_partners(mismatch):
        if old is None or new is None:
            lines.append(f"  {network}: recorded {describe(old)}, derived {describe(new)}")
            continue
        old_fields, new_fields = decision_fields(old), decision_fields(new)
        changed = ", ".join(
            f"{name} {old_fields[name]!r} -> {new_fields[name]!r}"
            for name in old_fields if old_fields[name] != new_fields[name]
        )
        lines.append(f"  {network}: recorded {describe(old)}, derived {describe(new)} ({changed})")
    return "\n".join(lines)


def run_verify(conn: sqlite3.Connection, from_seq: int, as_json: bool = False) -> int:
    """Verify the log and print the mismatches and a summary; return the exit status.

    With ``as_json`` each mismatch and then the summary is one JSON object on a line of its own.
    """
    end = last_seq(conn)
    if from_seq > end:
        raise click.BadParameter(f"--from {from_seq} is past the end of the log ({end}). Use a position up to {end}.")

    def echo_mismatch(mismatch: Mismatch) -> None:
        click.echo(json.dumps(mismatch_json(mismatch)) if as_json else mismatch_text(mismatch))

    with progress_bar(end, "verifying") as advance:
        result = verify_log(conn, from_seq=from_seq, on_mismatch=echo_mismatch, progress=advance)
    if as_json:
        click.echo(json.dumps({
            "type": "summary",
            "checked": result.checked,
            "mismatches": result.mismatches,
            "from": from_seq,
            "to": result.end,
            "replayed_from": result.start,
            "undecided": result.undecided,
        }))
        return 1 if result.mismatches else 0
    start = f"from the snapshot at log position {result.start}" if result.start else "from the start of the log"
    click.echo(
        f"checked the decisions of {result.checked} events from log position {from_seq} to {result.end} "
        f"(replayed {start}): {result.mismatches} mismatches"
    )
    if result.undecided:
        click.echo(f"{result.undecided} events at the end have no recorded decisions yet; "
                   "the daemon decides them when it runs")
    return 1 if result.mismatches else 0


def load_what_if_config(conn: sqlite3.Connection, path: Path, data_dir: Path):
    """Read a `config export` file as the configuration it describes, checked as `config import` checks it.

    A masked secret field keeps the value at the end of the log; the values
    do not matter to decisions anyway.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise click.BadParameter(f"Cannot read {path}: {exc.strerror}.", param_hint="'--what-if'") from None
    except UnicodeDecodeError:
        raise click.BadParameter(f"{path} is not UTF-8 text.", param_hint="'--what-if'") from None
    try:
        catalog = load_catalog(data_dir)
    except IntegrationError as exc:
        raise click.ClickException(str(exc)) from None
    current = logged_config(conn)
    try:
        records, _ = plan_import(text, str(path), current, catalog, Origin(command="replay"))
    except CommandError as exc:
        raise click.ClickException(str(exc)) from None
    config = current.copy()
    for record in records:
        config.apply(config.seq, record)
    return config


def difference_json(difference: Difference) -> dict[str, Any]:
    def side(decision: Decision | None) -> dict[str, Any] | None:
        return None if decision is None else {"decision": decision.outcome, "reason": decision.reason}

    return {
        "seq": difference.seq,
        "app": difference.app,
        "event_id": difference.event_id,
        "partner": difference.partner,
        "recorded": side(difference.recorded),
        "what_if": side(difference.what_if),
    }


def what_if_json(report: WhatIfReport) -> dict[str, Any]:
    return {
        "events": report.events,
        "undecided": report.undecided,
        "differing_events": report.differing_events,
        "partners": [
            {"app": app, "partner": network, **counts.as_dict()}
            for (app, network), counts in sorted(report.partners.items())
        ],
        "differences": [difference_json(d) for d in report.differences],
    }


def print_what_if(report: WhatIfReport, source: Path, limit: int | None) -> None:
    click.echo(f"decided {report.events} events again under {source} (log positions up to {report.end})")
    if report.undecided:
        click.echo(f"{report.undecided} of them have no recorded decisions yet; they count as nothing scheduled")
    rows = [
        [app, network, c.scheduled, c.delivered, c.what_if_scheduled, c.gained, c.lost]
        for (app, network), c in sorted(report.partners.items())
    ]
    click.echo(format_table(["app", "partner", "scheduled", "delivered", "what-if scheduled", "gained", "lost"], rows))
    click.echo(f"\n{report.differing_events} events would be decided differently")
    for difference in report.differences:
        click.echo(
            f"  log position {difference.seq}  event {difference.event_id} (app {difference.app})  "
            f"{difference.partner}: {describe(difference.recorded)} -> {describe(difference.what_if)}"
        )
    shown = len(report.differences)
    if limit is not None and report.differing_events > shown:
        click.echo(f"  (first {shown} differing decisions shown; use --limit to see more, --limit 0 for all)")


def _check_positive(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    if value is not None and value < 0:
        raise click.BadParameter(f"{value} is negative. Give 0 or more.")
    return value


@click.command("replay")
@click.option("--verify", is_flag=True, help="Derive every recorded decision again and report each mismatch; "
                                            "exit status 1 when there is one.")
@click.option("--from", "from_seq", type=click.IntRange(min=1), default=None, metavar="SEQ",
              help="With --verify: check only events at log position SEQ and later. The state before SEQ is "
                   "rebuilt from the newest snapshot at or before it, or from the start.")
@click.option("--what-if", "what_if_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              metavar="CONFIG.toml",
              help="Decide every logged event again under this configuration (a `config export` file) and "
                   "compare with what was decided.")
@click.option("--limit", type=int, default=100, show_default=True, callback=_check_positive,
              help="With --what-if: differing decisions to list; 0 lists all.")
@json_option
@data_dir_option
def replay(verify: bool, from_seq: int | None, what_if_path: Path | None, limit: int, as_json: bool,
           data_dir: Path | None) -> None:
    """Replay the event log read-only: --verify the recorded decisions, or compare them --what-if."""
    if verify == (what_if_path is not None):
        raise click.UsageError("Give exactly one of --verify and --what-if CONFIG.toml.")
    if from_seq is not None and not verify:
        raise click.UsageError("--from works with --verify only.")
    data_dir = resolve_data_dir(data_dir)
    conn = open_log(data_dir)
    try:
        if verify:
            sys.exit(run_verify(conn, from_seq or 1, as_json))
        assert what_if_path is not None
        config = load_what_if_config(conn, what_if_path, data_dir)
        with progress_bar(last_seq(conn), "deciding") as advance:
            report = what_if(conn, config, limit=limit or None, progress=advance)
        if as_json:
            click.echo(json.dumps(what_if_json(report), indent=2))
        else:
            print_what_if(report, what_if_path, limit or None)
    except sqlite3.Error as exc:
        raise click.ClickException(f"Reading the event log failed: {exc}.") from None
    finally:
        conn.close()

