"""Delivery commands: list postbacks with their attempts, and resend postbacks.

Pending and failed postbacks come from memory (the delivery actors and the
failed index). Attempts come from the log: every attempt record has the
unique key ``attempt:<postback id>:<n>``, so the attempts of one postback are
one range read on that key's index. Listing recently delivered postbacks
reads attempt records backwards from the end of the log. All log reads run
in a worker thread on a connection of their own, so the daemon's trio
thread never waits for them.
"""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path
from typing import Any

import trio

from postbackd.actors._replay import PendingPostback
from postbackd.daemon._commands import CommandContext, CommandError, command
from postbackd.daemon._core import attempt_dedup_key, decided_dedup_key
from postbackd.eventlog import Attempted, Decided, Decision, Event, Record, ResendRequested, connect, decode_record

# Postbacks listed by `deliveries` when no limit is given, and the highest limit accepted.
DEFAULT_LIMIT = 20
MAX_LIMIT = 1000

# Attempt records read per query while scanning the log backwards.
SCAN_BATCH = 500
# Attempt records a backward scan reads at most before it returns what it found.
MAX_SCANNED_ATTEMPTS = 200_000

STATUSES = ("pending", "failed", "delivered")


# ---------------------------------------------------------------- log reads (worker thread)


def attempts_of(conn: sqlite3.Connection, postback_id: str) -> list[Attempted]:
    """Return the recorded attempts of a postback, in attempt order."""
    # The key without its attempt number; ';' is the character after ':', so
    # the range contains exactly the keys of this postback's attempts.
    prefix = attempt_dedup_key(postback_id, 0).removesuffix("0")
    rows = conn.execute(
        "SELECT body FROM log WHERE dedup_key >= ? AND dedup_key < ?", (prefix, prefix[:-1] + ";")
    ).fetchall()
    records = [decode_record(body) for (body,) in rows]
    attempts = [record for record in records if isinstance(record, Attempted)]
    attempts.sort(key=lambda record: record.attempt)
    return attempts


def decision_of(conn: sqlite3.Connection, event_seq: int, postback_id: str) -> Decision | None:
    """Return the scheduled decision with ``postback_id`` among the decisions of the event at ``event_seq``."""
    row = conn.execute("SELECT body FROM log WHERE dedup_key = ?", (decided_dedup_key(event_seq),)).fetchone()
    if row is None:
        return None
    record = decode_record(row[0])
    if not isinstance(record, Decided):
        return None
    for decision in record.decisions:
        if decision.postback_id == postback_id:
            return decision
    return None


def event_at(conn: sqlite3.Connection, seq: int) -> Event | None:
    row = conn.execute("SELECT body FROM log WHERE seq = ?", (seq,)).fetchone()
    record = decode_record(row[0]) if row is not None else None
    return record if isinstance(record, Event) else None


def recent_postbacks(
    conn: sqlite3.Connection,
    *,
    status: str | None,
    app: str | None,
    network: str | None,
    pending_ids: frozenset[str],
    limit: int,
) -> tuple[list[str], bool]:
    """Return the ids of the postbacks attempted most recently, latest first, and whether the scan stopped early.

    A postback's status is ``pending`` when it is in ``pending_ids``, else
    the outcome of its latest attempt.
    """
    found: list[str] = []
    seen: set[str] = set()
    before = math.inf
    scanned = 0
    while len(found) < limit:
        if scanned >= MAX_SCANNED_ATTEMPTS:
            return found, True
        rows = conn.execute(
            "SELECT seq, body FROM log WHERE kind = 'attempt' AND seq < ? ORDER BY seq DESC LIMIT ?",
            (before, SCAN_BATCH),
        ).fetchall()
        if not rows:
            break
        scanned += len(rows)
        before = rows[-1][0]
        for _seq, body in rows:
            record = decode_record(body)
            if not isinstance(record, Attempted) or record.postback_id in seen:
                continue
            seen.add(record.postback_id)
            if (app is not None and record.app != app) or (network is not None and record.network != network):
                continue
            # A retry outcome means pending: its commit can reach the list before the actor's state does.
            waiting = record.postback_id in pending_ids or record.outcome == "retry"
            current = "pending" if waiting else record.outcome
            if status is None or current == status:
                found.append(record.postback_id)
                if len(found) == limit:
                    break
    return found, False


# ---------------------------------------------------------------- output


def attempt_view(record: Attempted) -> dict[str, Any]:
    """Return one attempt as a dict for output; ``url``, ``error`` and ``response_head`` were masked when recorded."""
    return {
        "attempt": record.attempt,
        "time": record.started,
        "manual": record.manual,
        "outcome": record.outcome,
        "status_code": record.status_code,
        "duration": record.duration,
        "failure_class": record.failure_class,
        "error": record.error,
        "method": record.method,
        "url": record.url,
        "response_head": record.response_head,
        "next_due": record.next_due,
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
            "due": item.due,
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


def _limit(args: dict[str, Any]) -> int:
    value = args.get("limit", DEFAULT_LIMIT)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LIMIT:
        raise CommandError(f"Invalid limit {value!r}: expected a whole number from 1 to {MAX_LIMIT}.")
    return value


def _since(args: dict[str, Any]) -> float | None:
    value = args.get("since")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise CommandError(f"Invalid since {value!r}: expected epoch seconds.")
    return float(value)


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
    if postback_id is None and not failed:
        raise CommandError("Missing argument 'postback_id': give a postback id, or failed=true for every failed one.")
    if postback_id is not None:
        if any(args.get(name) is not None for name in ("app", "network", "since")):
            raise CommandError("The filters app, network and since apply only with failed=true.")
        record = await _resend_one(ctx, postback_id)
        return [record], {"resent": [postback_id], "skipped": []}
    return await _resend_failed(ctx, _optional_text(args, "app"), _optional_text(args, "network"), _since(args))


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
