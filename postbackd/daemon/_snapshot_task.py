"""The snapshot task: saves the actor state every N log records or M seconds.

The state is captured and encoded on the trio thread in one step, so it is
consistent. Compressing and writing it run in a worker thread, on a
connection of their own. Encoding a million device states takes about a
third of a second (msgspec 0.23, measured on the development machine), and
the decision loop waits that long.

Error handling: a failed write (``sqlite3.Error``) is logged with its
traceback and retried at the next due time, because snapshots only shorten
starts. Anything else propagates and stops the daemon.
"""

from __future__ import annotations

import logging
import sqlite3
import time

import trio

from postbackd.actors._snapshot import SNAPSHOT_VERSION, compress_state, encode_state
from postbackd.eventlog import connect
from postbackd.eventlog._snapshots import save_snapshot

logger = logging.getLogger("postbackd.snapshot")

# Seconds between checks whether a snapshot is due.
CHECK_INTERVAL = 1.0

# Seconds between tries to find the decision loop and the log writer settled.
SETTLE_POLL = 0.005

# Log records per object of actor state (device or pending postback) that
# must pass before a count-based snapshot. Encoding costs time in proportion
# to the state, so with a fixed record interval a growing state made
# snapshots the largest share of the ingest profile. Scaling the interval
# with the state keeps their cost per record bounded. At 2 records per
# object, snapshots still took 13 % of the ingest profile. At 4 they take
# half that, and a start after a crash replays at most 4 records per object.
RECORDS_PER_STATE_OBJECT = 4

# Maximum wait for the final snapshot at a graceful stop, in seconds.
FINAL_SNAPSHOT_TIMEOUT = 30.0


def snapshot_due(
    new_records: int, elapsed: float, every_records: int, every_seconds: float, state_size: int = 0
) -> bool:
    """Return whether a snapshot is due after ``new_records`` records and ``elapsed`` seconds.

    The record interval is ``every_records`` or ``RECORDS_PER_STATE_OBJECT``
    times ``state_size``, whichever is larger. A log without new records gets
    no new snapshot, however long ago the last one was.
    """
    if new_records <= 0:
        return False
    return new_records >= max(every_records, RECORDS_PER_STATE_OBJECT * state_size) or elapsed >= every_seconds


async def take_snapshot(core, conn: sqlite3.Connection) -> int:
    """Capture, encode and save one snapshot; return its log position."""
    while (state := core.snapshot_state()) is None:
        await trio.sleep(SETTLE_POLL)
    started = time.perf_counter()
    encoded = encode_state(state)
    encode_seconds = time.perf_counter() - started
    seq = state.seq
    del state

    def write() -> int:
        body = compress_state(encoded)
        save_snapshot(conn, seq, SNAPSHOT_VERSION, body)
        return len(body)

    size = await trio.to_thread.run_sync(write)
    core.snapshot_seq = seq
    logger.info(
        "saved a snapshot at log position %d: %d bytes, encoded in %.3f s on the event loop",
        seq, size, encode_seconds,
    )
    return seq


async def save_final_snapshot(core) -> None:
    """Save a snapshot at a graceful stop when records came after the last one.

    The next start then restores it instead of replaying the tail. Errors are
    logged and the stop goes on, because the log alone is enough to start.
    """
    if core.log.last_seq <= core.snapshot_seq:
        return
    conn = connect(core.log.path)
    try:
        with trio.move_on_after(FINAL_SNAPSHOT_TIMEOUT) as scope:
            await take_snapshot(core, conn)
        if scope.cancelled_caught:
            logger.warning("no final snapshot: the state did not settle within %.0f s", FINAL_SNAPSHOT_TIMEOUT)
    except sqlite3.Error:
        logger.exception("saving the final snapshot failed; the next start replays the log tail instead")
    finally:
        conn.close()


async def run_snapshots(core, every_records: int, every_seconds: float) -> None:
    """Save a snapshot whenever ``snapshot_due`` returns True, until cancelled."""
    conn = connect(core.log.path)
    last_time = trio.current_time()
    try:
        while True:
            await trio.sleep(min(CHECK_INTERVAL, every_seconds))
            new_records = core.log.last_seq - core.snapshot_seq
            state_size = len(core.engine.devices) + core.pending_count()
            elapsed = trio.current_time() - last_time
            if not snapshot_due(new_records, elapsed, every_records, every_seconds, state_size):
                continue
            try:
                await take_snapshot(core, conn)
            except sqlite3.Error:
                logger.exception("saving a snapshot failed; the next one is tried when due")
            last_time = trio.current_time()
    finally:
        conn.close()
