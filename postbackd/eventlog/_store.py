"""The append-only SQLite event log.

One dedicated thread owns the writing connection. Appends from trio go into a
queue. The thread takes everything queued, writes it in one transaction (group
commit) and reports each batch's sequence numbers back to trio through the
trio token. Because only that thread inserts, sequence numbers follow commit
order, and a reader that has seen sequence number N has seen everything below.

Readers open their own connections (WAL mode lets them read while the writer
writes), so ``read_from`` works in any process, the daemon's or an auditor's.
"""

from __future__ import annotations

import fcntl
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import trio

from postbackd.eventlog._records import Record, decode_record, encode_record

logger = logging.getLogger("postbackd.eventlog")

SCHEMA_VERSION = 1

# Maximum records written in one transaction; bounds commit latency under load.
MAX_BATCH_RECORDS = 20_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS log (
    seq INTEGER PRIMARY KEY,
    received REAL NOT NULL,
    kind TEXT NOT NULL,
    dedup_key TEXT UNIQUE,
    body BLOB NOT NULL
);
CREATE TRIGGER IF NOT EXISTS log_no_update BEFORE UPDATE ON log
BEGIN SELECT RAISE(ABORT, 'the event log is append-only: UPDATE is not allowed'); END;
CREATE TRIGGER IF NOT EXISTS log_no_delete BEFORE DELETE ON log
BEGIN SELECT RAISE(ABORT, 'the event log is append-only: DELETE is not allowed'); END;
CREATE INDEX IF NOT EXISTS log_config ON log (seq)
WHERE kind IN ('app', 'partner', 'partner_removed', 'postback', 'postback_removed');
CREATE TABLE IF NOT EXISTS snapshots (
    id INTEGER PRIMARY KEY,
    seq INTEGER NOT NULL,
    created REAL NOT NULL,
    version INTEGER NOT NULL,
    checksum TEXT NOT NULL,
    body BLOB NOT NULL
);
"""


# Queries for configuration records use this exact condition, so that SQLite
# can use the partial index log_config instead of scanning every record.
CONFIG_KIND_CONDITION = "kind IN ('app', 'partner', 'partner_removed', 'postback', 'postback_removed')"

# Maximum rows per INSERT statement. The sqlite3 module releases the GIL for
# each statement step and takes it back after it. While the trio thread is
# busy, taking it back waits up to the interpreter's switch interval, and
# executemany steps once per row. So a batch of up to MAX_STATEMENT_ROWS rows
# is one multi-row statement, which SQLite runs as its own transaction, with
# one wait per commit. Statements exist for powers of two only, so that few
# are prepared, and a batch is padded with NULL rows that the WHERE clause
# leaves out. 4 * 4096 parameters stay below SQLite's limit of 32,766.
MAX_STATEMENT_ROWS = 4096
_STATEMENTS = {
    1 << bits: (
        "INSERT OR IGNORE INTO log (received, kind, dedup_key, body) "
        "SELECT column1, column2, column3, column4 FROM (VALUES "
        + ", ".join(["(?, ?, ?, ?)"] * (1 << bits))
        + ") WHERE column2 IS NOT NULL"
    )
    for bits in range(MAX_STATEMENT_ROWS.bit_length())
}


class LogError(Exception):
    """The event log cannot be opened or written."""


class Append(msgspec.Struct, gc=False):
    """One record to append.

    ``dedup_key``, when given, is unique across the log: a second append with
    the same key is not written, and its sequence number comes back as None.
    ``received`` defaults to now, and ``body`` to the encoded record; a
    given ``body`` must be ``encode_record(record)``.
    Appends wait in queues by the hundred thousand under load, so they stay
    outside the cyclic garbage collector (``gc=False``); they refer only to
    records and values.
    """

    record: Record
    received: float | None = None
    dedup_key: str | None = None
    body: bytes = b""

    def __post_init__(self) -> None:
        if self.received is None:
            self.received = time.time()
        if not self.body:
            self.body = encode_record(self.record)


BatchCallback = Callable[[list[int | None]], None]


def lock_for_writing(path: Path) -> int:
    """Take the exclusive writer lock of the log at ``path`` and return its file descriptor.

    Two daemons writing one log would each deliver every postback, so the
    second one is refused. The lock is an flock on ``<log>.lock``, released
    when the descriptor closes, also when the process dies.
    """
    lock_path = path.with_name(path.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise LogError(
            f"The event log {path} is already open for writing by another process (pid {holder}). "
            f"Stop that postbackd first: two daemons on one log would send every postback twice."
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def log_path(data_dir: Path) -> Path:
    return data_dir / "events.sqlite3"


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """Open a connection to the log at ``path`` and check its schema version.

    A read-only connection never creates the file and never writes.
    """
    if readonly:
        if not path.exists():
            raise LogError(f"No event log at {path}. Check --data-dir, or start `postbackd run` once to create it.")
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 5000")
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        conn.close()
        raise LogError(
            f"The event log {path} has schema version {version}, but this postbackd reads "
            f"versions up to {SCHEMA_VERSION}. Upgrade postbackd to open it."
        )
    if not readonly:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        if version < SCHEMA_VERSION:
            conn.executescript(_SCHEMA)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    return conn


def read_from(conn: sqlite3.Connection, after: int = 0, batch: int = 10_000) -> Iterator[tuple[int, float, Record]]:
    """Yield ``(seq, received, record)`` for every record with seq > ``after``, in order."""
    last = after
    while True:
        rows = conn.execute(
            "SELECT seq, received, body FROM log WHERE seq > ? ORDER BY seq LIMIT ?", (last, batch)
        ).fetchall()
        if not rows:
            return
        for seq, received, body in rows:
            yield seq, received, decode_record(body)
        last = rows[-1][0]


def last_seq(conn: sqlite3.Connection) -> int:
    return conn.execute("SELECT COALESCE(MAX(seq), 0) FROM log").fetchone()[0]


class EventLog:
    """The daemon's writer for the log at ``path``.

    Use ``async with EventLog(path) as log`` inside trio: it starts the writer
    thread, and on exit commits everything already queued before closing.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._queue: queue.SimpleQueue[tuple[list[Append], BatchCallback] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._failure: BaseException | None = None
        self._closed = trio.Event()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_fd = lock_for_writing(path)
        try:
            self.conn = connect(path)
        except BaseException:
            os.close(self._lock_fd)
            raise
        self.last_seq = last_seq(self.conn)
        # Appended records whose commit has been reported; for status output.
        self.committed_records = 0
        self.committed_batches = 0

    async def __aenter__(self) -> EventLog:
        self._token = trio.lowlevel.current_trio_token()
        self._thread = threading.Thread(target=self._run, name="postbackd-eventlog", daemon=True)
        self._thread.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._queue.put(None)
        with trio.CancelScope(shield=True):
            await self._closed.wait()
        os.close(self._lock_fd)

    def submit(self, appends: list[Append], callback: BatchCallback) -> None:
        """Queue ``appends`` for one transaction; ``callback`` runs in trio after the commit.

        The records of one call are committed together or not at all. The
        callback gets one sequence number per append, or None for a duplicate
        ``dedup_key``.
        """
        if self._failure is not None:
            raise LogError(f"The event log {self.path} failed earlier: {self._failure}") from self._failure
        self._queue.put((appends, callback))

    async def append(self, appends: list[Append]) -> list[int | None]:
        """Append records in one transaction and wait for the commit."""
        done = trio.Event()
        result: list[int | None] = []

        def finished(seqs: list[int | None]) -> None:
            result.extend(seqs)
            done.set()

        self.submit(appends, finished)
        await done.wait()
        if self._failure is not None and not result:
            raise LogError(f"Appending to the event log {self.path} failed: {self._failure}") from self._failure
        return result

    def _run(self) -> None:
        conn = self.conn
        stop = False
        while not stop:
            item = self._queue.get()
            batch: list[tuple[list[Append], BatchCallback]] = []
            if item is None:
                stop = True
            else:
                batch.append(item)
            count = sum(len(a) for a, _ in batch)
            while count < MAX_BATCH_RECORDS:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    continue
                batch.append(item)
                count += len(item[0])
            if batch:
                self._commit(conn, batch)
        conn.close()
        assert self._token is not None
        try:
            self._token.run_sync_soon(self._closed.set)
        except trio.RunFinishedError:
            pass

    def _commit(self, conn: sqlite3.Connection, batch: list[tuple[list[Append], BatchCallback]]) -> None:
        results: list[list[int | None]] = []
        try:
            results = self._insert_all(conn, batch)
        except sqlite3.Error as exc:
            # NOTE: a failed commit stops the daemon: the callers get empty
            # results and the next submit raises LogError.
            logger.error("commit to %s failed: %s", self.path, exc)
            self._failure = exc
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            results = [[] for _ in batch]
        last = max((s for seqs in results for s in seqs if s is not None), default=None)
        if last is not None:
            self.last_seq = last
        self.committed_records += sum(len(s) for s in results)
        self.committed_batches += 1
        callbacks = [(cb, seqs) for (_, cb), seqs in zip(batch, results)]
        assert self._token is not None

        def report() -> None:
            for cb, seqs in callbacks:
                cb(seqs)

        try:
            self._token.run_sync_soon(report)
        except trio.RunFinishedError:
            pass


    def _insert_all(
        self, conn: sqlite3.Connection, batch: list[tuple[list[Append], BatchCallback]]
    ) -> list[list[int | None]]:
        """Insert and commit a batch in one transaction and return its sequence numbers.

        This thread is the only writer, and each new row gets the largest
        rowid plus one, so the inserted rows are numbered consecutively after
        ``last_seq``, in batch order. When a dedup key was already taken, some
        rows were skipped, and the new rows are read back to tell which.
        """
        values: list[object] = []
        keys: list[str | None] = []
        for appends, _ in batch:
            for a in appends:
                values += (a.received, a.record.__struct_config__.tag, a.dedup_key, a.body)
                keys.append(a.dedup_key)
        count = len(keys)
        before = conn.total_changes
        if count <= MAX_STATEMENT_ROWS:
            _insert_rows(conn, values)
        else:
            conn.execute("BEGIN IMMEDIATE")
            _insert_rows(conn, values)
            conn.execute("COMMIT")
        first = self.last_seq + 1
        if conn.total_changes - before == count:
            seqs: list[int | None] = list(range(first, first + count))
        else:
            seqs = _match_inserted(conn, first, keys)
        results = []
        start = 0
        for appends, _ in batch:
            results.append(seqs[start:start + len(appends)])
            start += len(appends)
        return results


def _insert_rows(conn: sqlite3.Connection, values: list[object]) -> None:
    """Insert rows given as one flat list of 4 values per row, in statements of at most MAX_STATEMENT_ROWS."""
    width = 4 * MAX_STATEMENT_ROWS
    for start in range(0, len(values), width):
        chunk = values[start:start + width]
        rows = len(chunk) // 4
        size = 1 << (rows - 1).bit_length()
        if size > rows:
            chunk += (None,) * (4 * (size - rows))
        conn.execute(_STATEMENTS[size], chunk)


def _match_inserted(conn: sqlite3.Connection, first: int, keys: list[str | None]) -> list[int | None]:
    """Return the sequence number of each row of a batch, None for a row skipped as a duplicate.

    The inserted rows kept the batch's order, so walking the batch and the
    rows from ``first`` on side by side pairs them up: a row whose dedup key
    differs from the next inserted row's was skipped. A row without a key is
    never skipped.
    """
    inserted = conn.execute("SELECT seq, dedup_key FROM log WHERE seq >= ? ORDER BY seq", (first,)).fetchall()
    seqs: list[int | None] = []
    position = 0
    for key in keys:
        if position < len(inserted) and inserted[position][1] == key:
            seqs.append(inserted[position][0])
            position += 1
        else:
            seqs.append(None)
    return seqs


def log_size(path: Path) -> int:
    """Size in bytes of the log file and its WAL."""
    total = 0
    for suffix in ("", "-wal"):
        try:
            total += os.path.getsize(str(path) + suffix)
        except OSError:
            pass
    return total

