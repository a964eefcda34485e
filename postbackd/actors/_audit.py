"""Queries of the event log for ``postbackd audit``: events with their decisions and attempts.

The queries take a read-only connection and work whether or not the daemon
runs. They avoid reading the whole log where an index helps:

- An event id is found through the unique ``dedup_key`` index, whose keys
  are ``event:{app}:{id}``. Without an app, the apps are enumerated by
  skipping through the same index, one lookup per app.
- A time range is turned into a range of log positions by binary search on
  ``received``, which grows with the sequence number (see ``TIME_SLACK``).
- The decisions of an event are found by the key ``decided:{seq}`` and the
  attempts of a postback by the key range ``attempt:{postback_id}:``.

Everything else (device, partner, reason, status) is checked on each event
of the range. A device filter is first checked on the raw record bytes, so
most events are never decoded.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import msgspec

from postbackd.eventlog import Attempted, Attribution, Decided, Decision, Event, decode_record

# Seconds by which ``received`` may run backwards between neighbouring log
# positions. Ingest takes the received time when it reads a line and may
# wait for the decision loop before appending, so a later position can carry
# an earlier time. Time filters widen their position range by this much and
# then check each event's own received time.
# NOTE: an ingest wait or a clock step longer than this can hide events at
# the edges of a --since/--until range.
TIME_SLACK = 600.0

# Records read per query while scanning a range of the log.
SCAN_BATCH = 5000

class AuditQuery(msgspec.Struct, kw_only=True):
    """Filters of an audit; None means no filter. Times are epoch seconds of receipt."""

    device: str | None = None
    partner: str | None = None
    event_id: str | None = None
    app: str | None = None
    since: float | None = None
    until: float | None = None
    decision: str | None = None
    reason: str | None = None
    status: str | None = None

    def filters_decisions(self) -> bool:
        return any(v is not None for v in (self.partner, self.decision, self.reason, self.status))


class AttemptView(msgspec.Struct):
    attempt: int
    started: float
    duration: float
    outcome: str
    status_code: int | None
    failure_class: str | None
    error: str | None
    method: str
    # The request URL as recorded: secret network-specific fields are masked.
    url: str
    manual: bool
    next_due: float | None


class DecisionView(msgspec.Struct):
    partner: str
    postback: str
    decision: str
    reason: str
    postback_id: str | None
    attribution_type: str
    attribution_network: str | None
    attribution_agency: str | None
    due: float | None
    session_window: int | None
    # "delivered", "failed" or "pending"; None for a suppressed postback.
    status: str | None
    attempts: list[AttemptView]
    # The country the decision used, None when unknown.
    country: str | None = None
    # Where ``country`` came from: "event", "install", or None when unknown.
    country_source: str | None = None


class EventView(msgspec.Struct):
    seq: int
    received: float
    app: str
    id: str
    type: str
    name: str | None
    time: float
    device: str
    country: str | None
    data_controlled: bool
    attribution: Attribution | None
    # False while the event waits for its decisions (the daemon stopped first).
    decided: bool
    decisions: list[DecisionView]


def apps_in_log(conn: sqlite3.Connection) -> list[str]:
    """Return the apps that have events in the log, by skipping through the dedup index.

    App ids contain no ':', so all keys of one app lie between
    ``event:{app}:`` and ``event:{app};`` and no other app's key does.
    """
    apps = []
    low = "event:"
    while True:
        row = conn.execute(
            "SELECT dedup_key FROM log WHERE dedup_key > ? AND dedup_key < 'event;' ORDER BY dedup_key LIMIT 1",
            (low,),
        ).fetchone()
        if row is None:
            return apps
        app = row[0][len("event:"):].split(":", 1)[0]
        apps.append(app)
        low = f"event:{app};"


def first_position_received(conn: sqlite3.Connection, since: float) -> int:
    """Return the first log position whose received time is ``since`` or later, by binary search.

    The result may be past the end of the log.
    """
    low = 1
    high = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM log").fetchone()[0] + 1
    while low < high:
        middle = (low + high) // 2
        row = conn.execute(
            "SELECT seq, received FROM log WHERE seq >= ? AND seq < ? ORDER BY seq LIMIT 1", (middle, high)
        ).fetchone()
        if row is None or row[1] >= since:
            high = middle
        else:
            low = row[0] + 1
    return low


def _event_positions(conn: sqlite3.Connection, query: AuditQuery) -> Iterator[tuple[int, float, bytes]]:
    """Yield ``(seq, received, body)`` of the candidate events of ``query``, in log order."""
    if query.event_id is not None:
        apps = [query.app] if query.app is not None else apps_in_log(conn)
        rows = []
        for app in apps:
            row = conn.execute(
                "SELECT seq, received, body FROM log WHERE dedup_key = ?", (f"event:{app}:{query.event_id}",)
            ).fetchone()
            if row is not None:
                rows.append(row)
        yield from sorted(rows)
        return

    first = 1
    if query.since is not None:
        first = first_position_received(conn, query.since - TIME_SLACK)
    last = None
    if query.until is not None:
        last = first_position_received(conn, query.until + TIME_SLACK)

    conditions = ["seq >= ?", "kind = 'event'"]
    parameters: list[object] = [first]
    if last is not None:
        conditions.append("seq < ?")
        parameters.append(last)
    for text in (query.device, query.app):
        if text is not None:
            # MessagePack stores a string as its UTF-8 bytes, so an event of
            # this device or app contains them; the decoded event is checked
            # exactly afterwards.
            conditions.append("instr(body, ?) > 0")
            parameters.append(text.encode())
    sql = f"SELECT seq, received, body FROM log WHERE {' AND '.join(conditions)} ORDER BY seq LIMIT {SCAN_BATCH}"
    while True:
        rows = conn.execute(sql, parameters).fetchall()
        yield from rows
        if len(rows) < SCAN_BATCH:
            return
        parameters[0] = rows[-1][0] + 1


def _decided(conn: sqlite3.Connection, seq: int) -> Decided | None:
    row = conn.execute("SELECT body FROM log WHERE dedup_key = ?", (f"decided:{seq}",)).fetchone()
    if row is None:
        return None
    record = decode_record(row[0])
    return record if isinstance(record, Decided) else None


def attempts_of(conn: sqlite3.Connection, postback_id: str) -> list[Attempted]:
    """Return the attempts of one postback, in attempt order."""
    rows = conn.execute(
        "SELECT body FROM log WHERE dedup_key >= ? AND dedup_key < ?",
        (f"attempt:{postback_id}:", f"attempt:{postback_id};"),
    ).fetchall()
    attempts = [record for (body,) in rows if isinstance(record := decode_record(body), Attempted)]
    attempts.sort(key=lambda a: a.attempt)
    return attempts


def delivery_status(attempts: list[Attempted]) -> str:
    """Return the status of a scheduled postback from its attempts.

    NOTE: a manual resend that has no attempt yet is not seen, because
    resend records have no index. Such a postback shows the status of its
    last attempt until the daemon tries it again.
    """
    if not attempts:
        return "pending"
    outcome = attempts[-1].outcome
    return outcome if outcome in ("delivered", "failed") else "pending"


def _attempt_view(record: Attempted) -> AttemptView:
    return AttemptView(
        attempt=record.attempt,
        started=record.started,
        duration=record.duration,
        outcome=record.outcome,
        status_code=record.status_code,
        failure_class=record.failure_class,
        error=record.error,
        method=record.method,
        url=record.url,
        manual=record.manual,
        next_due=record.next_due,
    )


def country_used(event: Event, decision: Decision) -> tuple[str | None, str | None]:
    """Return the country a decision used and its source: "event", "install", or None when unknown.

    The rules take the event's own country first, so a recorded decision
    needs to be read only when the event has none.
    """
    if event.country is not None:
        return event.country, "event"
    if decision.country is not None:
        return decision.country, "install"
    # NOTE: decisions recorded before Decision.country existed land here even
    # when they used the install's country, so audit reports it as unknown.
    return None, None


def _decision_matches(query: AuditQuery, view: DecisionView) -> bool:
    return (
        (query.partner is None or view.partner == query.partner)
        and (query.decision is None or view.decision == query.decision)
        and (query.reason is None or view.reason == query.reason)
        and (query.status is None or view.status == query.status)
    )


def _event_matches(query: AuditQuery, event: Event, received: float) -> bool:
    return (
        (query.app is None or event.app == query.app)
        and (query.device is None or event.device == query.device)
        and (query.event_id is None or event.id == query.event_id)
        and (query.since is None or received >= query.since)
        and (query.until is None or received <= query.until)
    )


def audit(conn: sqlite3.Connection, query: AuditQuery) -> Iterator[EventView]:
    """Yield the events that match ``query``, in log order, with their decisions and attempts.

    With a partner, decision, reason or status filter, an event shows only
    the decisions that match, and an event with none is left out.
    """
    for seq, received, body in _event_positions(conn, query):
        event = decode_record(body)
        if not isinstance(event, Event) or not _event_matches(query, event, received):
            continue
        decided = _decided(conn, seq)
        views = []
        for decision in decided.decisions if decided is not None else ():
            attempts = attempts_of(conn, decision.postback_id) if decision.postback_id else []
            country, country_source = country_used(event, decision)
            view = DecisionView(
                partner=decision.network,
                postback=decision.postback,
                decision=decision.outcome,
                reason=decision.reason,
                postback_id=decision.postback_id,
                attribution_type=decision.attribution_type,
                attribution_network=decision.attribution_network,
                attribution_agency=decision.attribution_agency,
                due=decision.due,
                session_window=decision.session_window,
                status=delivery_status(attempts) if decision.outcome == "scheduled" else None,
                attempts=[_attempt_view(a) for a in attempts],
                country=country,
                country_source=country_source,
            )
            if _decision_matches(query, view):
                views.append(view)
        if query.filters_decisions() and not views:
            continue
        yield EventView(
            seq=seq,
            received=received,
            app=event.app,
            id=event.id,
            type=event.type,
            name=event.name,
            time=event.time,
            device=event.device,
            country=event.country,
            data_controlled=event.data_controlled,
            attribution=event.attribution,
            decided=decided is not None,
            decisions=views,
        )
