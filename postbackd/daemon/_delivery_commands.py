"""Delivery commands: list postbacks with their attempts, and resend postbacks.

Pending and failed postbacks come from memory (the delivery actors and the
failed index). Attempts come from the log, read by ``_delivery_log``. All log
reads run in a worker thread on a connection of their own, so the daemon's
trio thread never waits for them.
"""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path
from typing import Any

import trio

from postbackd.actors._replay import PendingPostback
from postbackd.daemon._commands import CommandContext, CommandError, command
from postbackd.daemon._config_checks import known_app, suggest
from postbackd.daemon._delivery_log import attempts_of, decision_of, event_at, partners_in_log, recent_postbacks
from postbackd.daemon._timestamps import format_timestamp
from postbackd.eventlog import Attempted, Decision, Record, ResendRequested, connect

# Postbacks listed by `deliveries` when no limit is given; a limit of 0 lists all.
DEFAULT_LIMIT = 20

STATUSES = ("pending", "failed", "delivered")


# ---------------------------------------------------------------- output


def attempt_view(record: Attempted) -> dict[str, Any]:
    """Return one attempt as a dict for output; ``url``, ``error`` and ``response_head`` were masked when recorded."""
    return {
        "attempt": record.attempt,
        "started": format_timestamp(record.started),
        "manual": record.manual,
        "outcome": record.outcome,
        "status_code": record.status_code,
        "duration": record.duration,
        "failure_class": record.failure_class,
        "error": record.error,
        "method": record.method,
        "url": record.url,
        "response_head": record.response_head,
        "next_due": format_timestamp(record.next_due),
    }


class _Listed:
    """The in-memory state of one listed postback, collected in the trio thread."""

    __slots__ = ("postback_id", "app", "network", "event_seq", "status", "due", "in_flight")

    def __init__(self, postback_id: str, app: str, network: str, event_seq: int, status: str,
                 due: float | None = None, in_flight: bool = False) -> None:
        self.postback_id = postback_id
        self.app = app
        self.network = network
        self.event_seq = event_seq
        self.status = status
        self.due = due
        self.in_flight = in_flight


def _describe_postbacks(conn: sqlite3.Connection, listed: list[_Listed]) -> list[dict[str, Any]]:
    views = []
    for item in listed:
        event = event_at(conn, item.event_seq)
        views.append({
            "postback_id": item.postback_id,
            "app": item.app,
            "network": item.network,
            "event_id": event.id if event is not None else None,
            "event": (event.name or event.type) if event is not None else None,
            "status": item.status,
            "due": format_timestamp(item.due),
            "in_flight": item.in_flight,
            "attempts": [attempt_view(record) for record in attempts_of(conn, item.postback_id)],
        })
    return views


def _open(path: Path) -> sqlite3.Connection:
    return connect(path, readonly=True)


# ---------------------------------------------------------------- argument checks


def _optional_text(args: dict[str, Any], name: str) -> str | None:
    value = args.get(name)
    if value is not None and not isinstance(value, str):
        raise CommandError(f"Invalid {name} {value!r}: expected text.")
    return value


def _limit(args: dict[str, Any]) -> int | None:
    """Return the ``limit`` argument, or None for 0, which means no limit."""
    value = args.get("limit", DEFAULT_LIMIT)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise CommandError(f"Invalid limit {value!r}: expected a whole number of postbacks, or 0 for all.")
    return value or None


def _since(args: dict[str, Any]) -> float | None:
    value = args.get("since")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise CommandError(f"Invalid since {value!r}: expected epoch seconds.")
    return float(value)


async def _check_filters(ctx: CommandContext, app: str | None, network: str | None) -> None:
    """Reject an app or partner filter that names no app, and no partner the daemon has or had.

    A removed partner is accepted: its failed and delivered postbacks stay in the log.
    """
    if app is not None:
        known_app(ctx.config, app)
    if network is None:
        return
    known = {key[1] for key in ctx.config.partners} | {key[1] for key in ctx.core.actors}
    known |= {failed.network for failed in ctx.core.failed.by_id.values()}
    if network in known:
        return

    def read() -> set[str]:
        conn = _open(ctx.core.log.path)
        try:
            return partners_in_log(conn)
        finally:
            conn.close()

    known |= await trio.to_thread.run_sync(read)
    if network in known:
        return
    hint = suggest(network, sorted(known)) or f" Partners: {', '.join(sorted(known)) or 'none yet'}."
    raise CommandError(f"Partner {network!r} does not exist and never did, so no postbacks match.{hint}")


def _pending_by_id(ctx: CommandContext) -> dict[str, tuple[PendingPostback, bool]]:
    """Return every pending postback with whether an attempt of it is in flight."""
    found = {}
    for actor in ctx.core.actors.values():
        for postback_id, pending in actor.pending.items():
            found[postback_id] = (pending, postback_id in actor.in_flight_ids)
    return found


# ---------------------------------------------------------------- deliveries


@command("deliveries")
async def deliveries(ctx: CommandContext, args: dict[str, Any]) -> tuple[list[Record], Any]:
    """List recent postbacks with their attempts, optionally only pending, failed or delivered ones."""
    status = _optional_text(args, "status")
    if status is not None and status not in STATUSES:
        raise CommandError(f"Invalid status {status!r}: use pending, failed or delivered.")
    app = _optional_text(args, "app")
    network = _optional_text(args, "network")
    limit = _limit(args)
    await _check_filters(ctx, app, network)
    core = ctx.core
    pending = _pending_by_id(ctx)

    def matches(item_app: str, item_network: str) -> bool:
        return (app is None or item_app == app) and (network is None or item_network == network)

    listed: list[_Listed] = []
    scan_truncated = False
    if status == "pending":
        waiting = sorted(
            (entry for entry in pending.values() if matches(entry[0].event.app, entry[0].network)),
            key=lambda entry: entry[0].due,
        )
        listed = [
            _Listed(p.postback_id, p.event.app, p.network, p.event_seq, "pending", p.due, in_flight)
            for p, in_flight in waiting[:limit]
        ]
    elif status == "failed":
        listed = [
            _Listed(f.postback_id, f.app, f.network, f.event_seq, "failed")
            for f in core.failed.select(app=app, network=network)
            if f.postback_id not in pending
        ][:limit]

    def read() -> tuple[list[dict[str, Any]], bool]:
        conn = _open(core.log.path)
        try:
            if status in ("pending", "failed"):
                return _describe_postbacks(conn, listed), False
            ids, truncated = recent_postbacks(
                conn, status=status, app=app, network=network, pending_ids=frozenset(pending), limit=limit
            )
            items = []
            for postback_id in ids:
                entry = pending.get(postback_id)
                attempts = attempts_of(conn, postback_id)
                latest = attempts[-1]
                if entry is not None:
                    p, in_flight = entry
                    items.append(_Listed(postback_id, latest.app, latest.network, latest.event_seq, "pending",
                                         p.due, in_flight))
                else:
                    outcome = "pending" if latest.outcome == "retry" else latest.outcome
                    items.append(_Listed(postback_id, latest.app, latest.network, latest.event_seq, outcome))
            return _describe_postbacks(conn, items), truncated
        finally:
            conn.close()

    postbacks, scan_truncated = await trio.to_thread.run_sync(read)
    return [], {
        "postbacks": postbacks,
        "pending_total": len(pending),
        "failed_total": len(core.failed),
        "scan_truncated": scan_truncated,
    }


# ---------------------------------------------------------------- resend


@command("resend")
async def resend(ctx: CommandContext, args: dict[str, Any]) -> tuple[list[Record], Any]:
    """Start a new, manual round of attempts for one postback, or for every failed postback that matches."""
    postback_id = _optional_text(args, "postback_id")
    failed = args.get("failed", False)
    if not isinstance(failed, bool):
        raise CommandError(f"Invalid failed {failed!r}: expected true or false.")
    if postback_id is not None and failed:
        raise CommandError("Give either a postback id or failed=true, not both.")
    filters = [name for name in ("app", "network", "since") if args.get(name) is not None]
    if postback_id is None and not failed:
        if filters:
            named = f"filters {' and '.join(filters)} work" if len(filters) > 1 else f"filter {filters[0]} works"
            raise CommandError(
                f"The {named} only with failed=true. Add failed=true to resend every failed postback that "
                "matches, or give a postback id."
            )
        raise CommandError("Missing argument 'postback_id': give a postback id, or failed=true for every failed one.")
    if postback_id is not None:
        if filters:
            raise CommandError("The filters app, network and since apply only with failed=true.")
        record = await _resend_one(ctx, postback_id)
        return [record], {"resent": [postback_id], "skipped": []}
    app = _optional_text(args, "app")
    network = _optional_text(args, "network")
    since = _since(args)
    await _check_filters(ctx, app, network)
    return await _resend_failed(ctx, app, network, since)


async def _resend_one(ctx: CommandContext, postback_id: str) -> ResendRequested:
    entry = _pending_by_id(ctx).get(postback_id)
    if entry is not None:
        pending, in_flight = entry
        if in_flight:
            raise CommandError(
                f"Postback {postback_id} has an attempt in flight. Run the resend again when it has finished."
            )
        return ResendRequested(
            postback_id=postback_id,
            app=pending.event.app,
            event_seq=pending.event_seq,
            decision=pending.decision,
            after_attempt=pending.attempt,
            origin=ctx.origin,
        )

    def read() -> tuple[list[Attempted], Decision | None]:
        conn = _open(ctx.core.log.path)
        try:
            attempts = attempts_of(conn, postback_id)
            if not attempts:
                return attempts, None
            return attempts, decision_of(conn, attempts[-1].event_seq, postback_id)
        finally:
            conn.close()

    attempts, decision = await trio.to_thread.run_sync(read)
    if not attempts:
        raise CommandError(
            f"Unknown postback id {postback_id!r}: no postback with this id was attempted or is pending. "
            "`postbackd deliveries` lists postback ids."
        )
    latest = attempts[-1]
    if decision is None:
        raise CommandError(f"The decision of postback {postback_id} is missing from the log, so it cannot be resent.")
    if (latest.app, latest.network) not in ctx.config.partners:
        raise CommandError(
            f"Partner {latest.network!r} of app {latest.app!r} was removed, so postback {postback_id} cannot be "
            "sent. Add the partner again first."
        )
    return ResendRequested(
        postback_id=postback_id,
        app=latest.app,
        event_seq=latest.event_seq,
        decision=decision,
        after_attempt=latest.attempt,
        origin=ctx.origin,
    )


async def _resend_failed(
    ctx: CommandContext, app: str | None, network: str | None, since: float | None
) -> tuple[list[Record], Any]:
    selected = ctx.core.failed.select(app=app, network=network, since=since)
    partners = ctx.config.partners
    skipped = [
        {"postback_id": f.postback_id, "reason": f"partner {f.network} of app {f.app} was removed"}
        for f in selected
        if (f.app, f.network) not in partners
    ]
    chosen = [f for f in selected if (f.app, f.network) in partners]

    def read() -> list[Decision | None]:
        conn = _open(ctx.core.log.path)
        try:
            return [decision_of(conn, f.event_seq, f.postback_id) for f in chosen]
        finally:
            conn.close()

    decisions = await trio.to_thread.run_sync(read)
    records: list[Record] = []
    for failed, decision in zip(chosen, decisions):
        if decision is None:
            skipped.append({"postback_id": failed.postback_id, "reason": "its decision is missing from the log"})
            continue
        records.append(ResendRequested(
            postback_id=failed.postback_id,
            app=failed.app,
            event_seq=failed.event_seq,
            decision=decision,
            after_attempt=failed.attempt,
            origin=ctx.origin,
        ))
    return records, {"resent": [r.postback_id for r in records], "skipped": skipped}
