"""``config history``: every configuration change in the log, with when, who and what.

The history is read from the log itself, so it covers every change since the
log began. Each entry has the record's received time, the uid and pid of the
control socket peer that sent it, the command, and a description of the
change against the configuration just before it. Secret network-specific
field values are masked, by the secret flags of the catalog loaded now.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import trio

from postbackd.actors import ConfigState
from postbackd.daemon._commands import CommandContext, CommandError, command
from postbackd.daemon._config_checks import known_app, secret_names
from postbackd.daemon._config_describe import describe_change
from postbackd.daemon._config_views import mask_fields
from postbackd.daemon._timestamps import format_timestamp
from postbackd.eventlog import CONFIG_KIND_CONDITION, PartnerConfigured, Record, connect, decode_record
from postbackd.integrations import Catalog

def masked_record(record: Record, catalog: Catalog) -> dict[str, Any]:
    data = msgspec.to_builtins(record)
    data.pop("origin", None)
    if isinstance(record, PartnerConfigured):
        data["partner"]["fields"] = mask_fields(record.partner.fields, secret_names(catalog, record.partner))
    return data


def record_app(record: Record) -> str:
    for name in ("app", "partner", "postback"):
        nested = getattr(record, name, None)
        if nested is not None:
            return nested.app_id
    return getattr(record, "app_id", "")


def read_history(path: Path, catalog: Catalog, app_id: str | None = None, limit: int | None = None) -> list[dict]:
    """Read the configuration changes of the log at ``path``, oldest first.

    With ``app_id``, only changes of that app; with a ``limit`` other than
    None and 0, only the last ``limit`` of them.
    """
    conn = connect(path, readonly=True)
    try:
        rows = conn.execute(f"SELECT seq, received, body FROM log WHERE {CONFIG_KIND_CONDITION} ORDER BY seq")
        state = ConfigState()
        entries = []
        for seq, received, body in rows:
            record = decode_record(body)
            description = describe_change(state, record, lambda partner: secret_names(catalog, partner))
            state.apply(seq, record)
            if app_id is not None and record_app(record) != app_id:
                continue
            origin = record.origin
            entries.append({
                "seq": seq,
                "received": format_timestamp(received),
                "uid": origin.uid,
                "pid": origin.pid,
                "command": origin.command,
                "kind": record.__struct_config__.tag,
                "change": description,
                "record": masked_record(record, catalog),
            })
    finally:
        conn.close()
    if limit:
        entries = entries[-limit:]
    return entries


@command("config.history")
async def config_history(ctx: CommandContext, args: dict[str, Any]) -> tuple[list[Record], Any]:
    app_id = args.get("app_id")
    if app_id is not None:
        known_app(ctx.config, app_id)
    limit = args.get("limit")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise CommandError(f"Invalid limit {limit!r}: expected a whole number of changes, or 0 for all.")
    entries = await trio.to_thread.run_sync(read_history, ctx.core.log.path, ctx.core.catalog, app_id, limit)
    return [], entries
