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
