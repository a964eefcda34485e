"""Helpers shared by the audit, replay, snapshot and status tests."""

from __future__ import annotations

import time

import msgspec

from postbackd.actors import ConfigState
from postbackd.actors._replay import Replayer
from postbackd.eventlog import connect, log_path, read_from
from tests.conftest import WAIT_SECONDS, Daemon


def write_settings(daemon: Daemon, **values: object) -> None:
    """Write the settings file the ``daemon`` fixture passes to ``postbackd run``."""
    path = daemon.data_dir.parent / "postbackd.toml"
    lines = [f"{key} = {value!r}" if isinstance(value, str) else f"{key} = {value}" for key, value in values.items()]
    path.write_text("\n".join(lines).replace("'", '"') + "\n")


def wait_for_snapshot(daemon: Daemon, at_least_seq: int = 1) -> int:
    """Wait until the daemon has saved a snapshot at ``at_least_seq`` or later; return its position."""
    deadline = time.monotonic() + WAIT_SECONDS
    path = log_path(daemon.data_dir)
    while time.monotonic() < deadline:
        conn = connect(path, readonly=True)
        try:
            row = conn.execute("SELECT MAX(seq) FROM snapshots").fetchone()
        finally:
            conn.close()
        if row[0] is not None and row[0] >= at_least_seq:
            return row[0]
        time.sleep(0.05)
    raise AssertionError(f"no snapshot at log position {at_least_seq} or later:\n{daemon.log()}")


def config_view(config: ConfigState) -> tuple:
    return config.seq, dict(config.apps), dict(config.partners), dict(config.postbacks)


def replay_view(replayer: Replayer) -> dict:
    """Everything a replay rebuilds, in comparable form."""
    return {
        "seq": replayer.last_seq,
        "config": config_view(replayer.config),
        "device_count": len(replayer.engine.devices),
        "devices": {key: msgspec.to_builtins(state) for key, state in replayer.engine.devices.items()},
        "pending": {
            pid: (p.event_seq, p.event, p.decision, p.due, p.attempt, p.round_start, p.manual)
            for pid, p in replayer.pending.items()
        },
        "undecided": [(u.seq, u.received, u.event, config_view(u.config)) for u in replayer.undecided],
        "failed": {pid: tuple(getattr(f, name) for name in f.__slots__) for pid, f in replayer.failed.by_id.items()},
    }


def replay_log(daemon: Daemon, upto: int | None = None) -> Replayer:
    """Replay the daemon's log from the start, up to log position ``upto``."""
    conn = connect(log_path(daemon.data_dir), readonly=True)
    records = {seq: record for seq, _, record in read_from(conn)}
    replayer = Replayer(fetch_event=records.__getitem__)
    for seq, received, record in read_from(conn):
        if upto is not None and seq > upto:
            break
        replayer.feed(seq, received, record)
    conn.close()
    return replayer
