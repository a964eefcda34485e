"""The ``snapshots`` table: saved actor state, so that a start replays only the log's tail.

A row contains the state as of log position ``seq``: ``body`` is opaque bytes,
``version`` names their format and ``checksum`` is a BLAKE2b digest of
``body``. Rows are written and deleted here only; the ``log`` table is never
touched. Only the newest few rows are kept, because each is a full copy of
the state.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Iterator
from typing import NamedTuple

# Snapshots kept after each save; older ones are deleted. More than one, so a
# damaged newest snapshot still leaves an older one to start from.
SNAPSHOTS_KEPT = 3


class SnapshotRow(NamedTuple):
    id: int
    seq: int
    created: float
    version: int
    checksum: str
    body: bytes


def snapshot_checksum(body: bytes) -> str:
    """Return the hex BLAKE2b-128 digest stored beside a snapshot body."""
    return hashlib.blake2b(body, digest_size=16).hexdigest()


def save_snapshot(
    conn: sqlite3.Connection,
    seq: int,
    version: int,
    body: bytes,
    *,
    created: float | None = None,
    keep: int = SNAPSHOTS_KEPT,
) -> int:
    """Insert a snapshot taken at log position ``seq``, delete all but the newest ``keep``; return its id.

    ``conn`` must be a writable connection in autocommit mode, as ``connect``
    returns. The insert and the deletion commit together.
    """
    if keep < 1:
        raise ValueError(f"keep must be 1 or more, got {keep!r}")
    conn.execute("BEGIN IMMEDIATE")
    try:
        cursor = conn.execute(
            "INSERT INTO snapshots (seq, created, version, checksum, body) VALUES (?, ?, ?, ?, ?)",
            (seq, time.time() if created is None else created, version, snapshot_checksum(body), body),
        )
        snapshot_id = cursor.lastrowid
        conn.execute(
            "DELETE FROM snapshots WHERE id NOT IN (SELECT id FROM snapshots ORDER BY seq DESC, id DESC LIMIT ?)",
            (keep,),
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    assert snapshot_id is not None
    return snapshot_id


def iter_snapshots(conn: sqlite3.Connection, at_or_before: int | None = None) -> Iterator[SnapshotRow]:
    """Yield the stored snapshots, newest log position first.

    With ``at_or_before``, only snapshots taken at that log position or
    earlier. Bodies are read one at a time, because each can be large.
    """
    limit = at_or_before if at_or_before is not None else -1
    ids = conn.execute(
        "SELECT id FROM snapshots WHERE ? < 0 OR seq <= ? ORDER BY seq DESC, id DESC", (limit, limit)
    ).fetchall()
    for (snapshot_id,) in ids:
        row = conn.execute(
            "SELECT id, seq, created, version, checksum, CAST(body AS BLOB) FROM snapshots WHERE id = ?",
            (snapshot_id,),
        ).fetchone()
        if row is not None:
            yield SnapshotRow(*row)


def snapshot_positions(conn: sqlite3.Connection) -> list[tuple[int, int, float]]:
    """Return ``(id, seq, created)`` of each stored snapshot, newest log position first."""
    return conn.execute("SELECT id, seq, created FROM snapshots ORDER BY seq DESC, id DESC").fetchall()
