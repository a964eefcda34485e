"""The event log on real SQLite files: append-only schema, versions, group commit, readers."""

from __future__ import annotations

import sqlite3

import pytest
import trio

from postbackd.eventlog import (
    CONFIG_KIND_CONDITION,
    CONFIG_RECORDS,
    SCHEMA_VERSION,
    AppConfig,
    AppConfigured,
    Append,
    Event,
    EventLog,
    LogError,
    connect,
    last_seq,
    log_path,
    read_from,
)


def event(event_id: str, app: str = "demo-app") -> Event:
    return Event(app=app, id=event_id, type="install", device="d1", time=1_764_590_400.0)


def appends(*ids: str) -> list[Append]:
    return [Append(event(i), received=1_764_590_401.0, dedup_key=f"event:demo-app:{i}") for i in ids]


async def test_append_returns_consecutive_seqs(tmp_path):
    async with EventLog(log_path(tmp_path)) as log:
        first = await log.append(appends("a", "b", "c"))
        second = await log.append(appends("d"))

    assert first == [1, 2, 3]
    assert second == [4]


async def test_duplicate_dedup_key_is_not_written(tmp_path):
    async with EventLog(log_path(tmp_path)) as log:
        await log.append(appends("a", "b"))
        seqs = await log.append(appends("c", "a", "d", "d"))

    assert seqs == [3, None, 4, None]
    conn = connect(log_path(tmp_path), readonly=True)
    assert [record.id for _, _, record in read_from(conn)] == ["a", "b", "c", "d"]


@pytest.mark.parametrize("size", [1, 3, 4096, 4097, 9000])
async def test_large_batch_order_and_numbers(tmp_path, size):
    """Batches go in as one or more padded multi-row statements; order and numbering must survive."""
    ids = [f"n{number:05d}" for number in range(size)]
    async with EventLog(log_path(tmp_path)) as log:
        await log.append(appends("first"))
        seqs = await log.append(appends(*ids))
        after = await log.append(appends("last"))

    assert seqs == list(range(2, size + 2))
    assert after == [size + 2]
    conn = connect(log_path(tmp_path), readonly=True)
    assert [(seq, record.id) for seq, _, record in read_from(conn)] == [
        (1, "first"), *zip(range(2, size + 2), ids), (size + 2, "last")
    ]


async def test_large_batch_duplicates_found(tmp_path):
    async with EventLog(log_path(tmp_path)) as log:
        await log.append(appends("a", "b"))
        batch = [f"x{number}" for number in range(5000)]
        batch[10] = "a"
        batch[4999] = "x0"
        batch.insert(3000, "b")
        keyless = Append(event("no-key"), received=1_764_590_401.0)
        seqs = await log.append([*appends(*batch), keyless])

    expected: list[int | None] = []
    seen = {"a", "b"}
    seq = 3
    for event_id in batch:
        if event_id in seen:
            expected.append(None)
        else:
            seen.add(event_id)
            expected.append(seq)
            seq += 1
    expected.append(seq)
    assert expected.count(None) == 3
    assert seqs == expected
    conn = connect(log_path(tmp_path), readonly=True)
    stored = [(seq, record.id) for seq, _, record in read_from(conn, after=2)]
    assert stored == [(s, i) for s, i in zip(expected, [*batch, "no-key"]) if s is not None]


async def test_concurrent_submissions_share_commits(tmp_path):
    results: dict[int, list[int | None]] = {}

    async with EventLog(log_path(tmp_path)) as log:
        async def one(n: int) -> None:
            results[n] = await log.append(appends(f"e{n}-1", f"e{n}-2"))

        async with trio.open_nursery() as nursery:
            for n in range(200):
                nursery.start_soon(one, n)
        batches = log.committed_batches

    seqs = sorted(s for pair in results.values() for s in pair)
    assert seqs == list(range(1, 401))
    for first, second in results.values():
        assert second == first + 1
    assert batches < 200


async def test_records_round_trip_with_received_time(tmp_path):
    app = AppConfigured(app=AppConfig(app_id="demo-app", platform="ios", bundle_id="com.example.App", name="Demo"))
    async with EventLog(log_path(tmp_path)) as log:
        await log.append([Append(app, received=100.5), Append(event("x"), received=101.25)])

    conn = connect(log_path(tmp_path), readonly=True)
    rows = list(read_from(conn))
    assert rows == [(1, 100.5, app), (2, 101.25, event("x"))]
    assert list(read_from(conn, after=1)) == [(2, 101.25, event("x"))]
    assert last_seq(conn) == 2


async def test_reader_sees_commits_while_writer_runs(tmp_path):
    async with EventLog(log_path(tmp_path)) as log:
        await log.append(appends("a"))
        reader = connect(log_path(tmp_path), readonly=True)
        assert [seq for seq, _, _ in read_from(reader)] == [1]
        await log.append(appends("b", "c"))
        assert [seq for seq, _, _ in read_from(reader, after=1)] == [2, 3]


@pytest.mark.parametrize("statement", ["UPDATE log SET kind = 'x'", "DELETE FROM log"])
async def test_schema_rejects_update_and_delete(tmp_path, statement):
    async with EventLog(log_path(tmp_path)) as log:
        await log.append(appends("a"))

    conn = sqlite3.connect(log_path(tmp_path))
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute(statement)
    assert conn.execute("SELECT COUNT(*) FROM log").fetchone()[0] == 1


def test_newer_schema_version_is_refused(tmp_path):
    connect(log_path(tmp_path)).close()
    raw = sqlite3.connect(log_path(tmp_path))
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()

    for readonly in (False, True):
        with pytest.raises(LogError, match=f"schema version {SCHEMA_VERSION + 1}.*Upgrade postbackd"):
            connect(log_path(tmp_path), readonly=readonly)


def test_readonly_connect_needs_an_existing_log(tmp_path):
    with pytest.raises(LogError, match="No event log at .*--data-dir"):
        connect(log_path(tmp_path / "missing"), readonly=True)
    assert not (tmp_path / "missing").exists()


def test_config_kind_condition_names_every_config_record():
    tags = {record_type.__struct_config__.tag for record_type in CONFIG_RECORDS}

    for tag in tags:
        assert f"'{tag}'" in CONFIG_KIND_CONDITION
    assert CONFIG_KIND_CONDITION.count("'") == 2 * len(tags)


def test_config_queries_use_the_partial_index(tmp_path):
    conn = connect(log_path(tmp_path))

    plan = conn.execute(f"EXPLAIN QUERY PLAN SELECT seq FROM log WHERE {CONFIG_KIND_CONDITION} ORDER BY seq").fetchall()

    assert "log_config" in str(plan)


async def test_second_writer_is_refused(tmp_path):
    async with EventLog(log_path(tmp_path)):
        with pytest.raises(LogError, match=r"already open for writing by another process \(pid \d+\)"):
            EventLog(log_path(tmp_path))

    async with EventLog(log_path(tmp_path)) as again:
        assert await again.append(appends("a")) == [1]
