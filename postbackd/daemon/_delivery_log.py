"""Log reads of the delivery commands: attempts, decisions and events of postbacks.

Every attempt record has the unique key ``attempt:<postback id>:<n>``, so the
attempts of one postback are one range read on that key's index. Listing
recently attempted postbacks reads attempt records backwards from the end of
the log. These functions block, so the commands call them in a worker thread
on a connection of their own.
"""

from __future__ import annotations

import math
import sqlite3

from postbackd.daemon._core import attempt_dedup_key, decided_dedup_key
from postbackd.eventlog import Attempted, Decided, Decision, Event, PartnerConfigured, decode_record

# Attempt records read per query while scanning the log backwards.
SCAN_BATCH = 500
# Attempt records a backward scan reads at most before it returns what it found.
MAX_SCANNED_ATTEMPTS = 200_000


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


def partners_in_log(conn: sqlite3.Connection) -> set[str]:
    """Return the network of every partner ever configured, removed ones included."""
    rows = conn.execute("SELECT body FROM log WHERE kind = 'partner'").fetchall()
    records = [decode_record(body) for (body,) in rows]
    return {record.partner.network for record in records if isinstance(record, PartnerConfigured)}


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
    limit: int | None,
) -> tuple[list[str], bool]:
    """Return the ids of the postbacks attempted most recently, latest first, and whether the scan stopped early.

    A postback's status is ``pending`` when it is in ``pending_ids``, else
    the outcome of its latest attempt. A ``limit`` of None returns all.
    """
    found: list[str] = []
    seen: set[str] = set()
    before = math.inf
    scanned = 0
    while limit is None or len(found) < limit:
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
