"""A data subject's access request (GDPR art. 15): everything the ledger holds about one person.

The export has four parts: a short readable ``summary`` (who, how many events by channel and
department, which departments hold what, first and last contact), the rendered ``customer_view``
every department reads, every ``raw_events`` entry of theirs from the event store (including the
records merged into them, with position, stream, version and recorded_at), and their rows of
every DuckDB table that has a ``customer_id`` column (found from the catalogue, so tables added
later are included without touching this module), keyed by table name.

A forgotten person's export is a tombstone (:func:`tombstone`): who, when, and that nothing
personal is held.

A stored fact the readers cannot handle is data held about the person all the same: it is in
``raw_events`` as stored (or, when it cannot even be decoded, by its position and stream) with
the reason under ``quarantined``, and left out of the counts.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import orjson

from domain.catalogue import channel_of
from ledger.application import JourneyApplication, StoredFact
from projections import quarantine, readable
from projections.duckdb_store import ProjectionStore


def customer_tables(store: ProjectionStore) -> list[str]:
    con = store.con
    rows = con.execute("SELECT DISTINCT table_name FROM information_schema.columns "
                       "WHERE column_name = 'customer_id' ORDER BY table_name").fetchall()
    return [str(r[0]) for r in rows]


def subject_access(app: JourneyApplication, store: ProjectionStore, view: dict[str, Any],
                   now: datetime) -> dict[str, Any]:
    """The export for the person whose customer document (``Journey.customer``, found and
    rendered at ``now`` from projections brought up to the store's head) is ``view``.

    The caller finds the person (and says when nobody is known by the reference); this module
    only reads what is held: the event store ``app`` and the projections ``store``."""
    customer_id = view["customer_id"]
    if view.get("forgotten"):
        return tombstone(view, now)
    con = store.con
    merged = sorted({str(r[0]) for r in con.execute(
        "SELECT alias FROM customer_aliases WHERE customer_id = ?", [customer_id]).fetchall()}
        | set(view.get("merged_from") or []))
    ids = [customer_id, *[m for m in merged if m != customer_id]]

    seen: set[int] = set()
    raw = []
    for cid in ids:
        for sf in _held(app, cid):
            if sf.position in seen:
                continue
            seen.add(sf.position)
            reason = readable.problem(sf)
            entry = {"position": sf.position, "stream_id": str(sf.stream_id),
                     "stream_version": sf.stream_version, "recorded_at": _stamp(sf),
                     "recorded_for": cid, "fact": sf.fact}
            if reason is not None:
                entry["quarantined"] = reason
                if readable.UNDECODABLE in sf.fact or not _writable(sf.fact):
                    entry["fact"] = None  # the reason says why it cannot be shown
            raw.append(entry)
    raw.sort(key=lambda e: e["position"])

    tables: dict[str, list[dict[str, Any]]] = {}
    marks = ",".join("?" * len(ids))
    for table in customer_tables(store):
        cursor = con.execute(f'SELECT * FROM "{table}" WHERE customer_id IN ({marks})', ids)
        columns = [d[0] for d in cursor.description]
        tables[table] = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]

    by_channel: Counter[str] = Counter()
    by_department: Counter[str] = Counter()
    holds: dict[str, Counter[str]] = {}
    occurred = []
    readable_raw = [e for e in raw if "quarantined" not in e]
    for e in readable_raw:
        fact = e["fact"]
        by_channel[channel_of(fact) or "none"] += 1
        department = fact.get("department")
        if department:
            by_department[department] += 1
            holds.setdefault(department, Counter())[fact.get("type", "?")] += 1
        if fact.get("occurred_at"):
            occurred.append(fact["occurred_at"])
    name = view.get("name")
    number = view.get("customer_number")
    who = " ".join(str(x) for x in (name, f"({number})" if number else None, customer_id) if x)
    summary = {
        "who": who,
        "customer_id": customer_id,
        "customer_number": number,
        "name": name,
        "kind": view.get("kind"),
        "merged_records": [m for m in ids if m != customer_id],
        "events": len(readable_raw),
        "quarantined_events": len(raw) - len(readable_raw),
        "by_channel": dict(by_channel.most_common()),
        "by_department": dict(by_department.most_common()),
        "departments_hold": {d: dict(c.most_common()) for d, c in sorted(holds.items())},
        "first_contact": min(occurred, key=_instant) if occurred else None,
        "last_contact": max(occurred, key=_instant) if occurred else None,
        "rows_by_table": {t: len(rows) for t, rows in tables.items()},
        "exported_at": now.isoformat(timespec="seconds"),
        "store_position": view.get("as_of_position"),
    }
    return {"summary": summary, "customer_view": view, "raw_events": raw, "tables": tables}


def tombstone(view: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The export for a forgotten person: who the record was, when it was forgotten, and
    that nothing personal is held. Their erased events and the counts kept for the analysts
    are not theirs to be given (nothing in them can be tied to a person any more), and the
    export must not carry them: it is itself a copy that leaves the ledger."""
    customer_id = view["customer_id"]
    summary = {
        "who": f"customer {customer_id} (forgotten {view.get('forgotten_at')})",
        "customer_id": customer_id,
        "customer_number": None,
        "name": None,
        "kind": view.get("kind"),
        "forgotten": True,
        "forgotten_at": view.get("forgotten_at"),
        "held": "nothing personal: the keys of this record were destroyed, so no personal field "
                "of its events can be read by anyone; no identity names it any more",
        "merged_records": [],
        "events": 0,
        "by_channel": {},
        "by_department": {},
        "departments_hold": {},
        "first_contact": None,
        "last_contact": None,
        "rows_by_table": {},
        "exported_at": now.isoformat(timespec="seconds"),
        "store_position": view.get("as_of_position"),
    }
    return {"summary": summary, "customer_view": None, "raw_events": [], "tables": {}}


def _held(app: JourneyApplication, customer_id: str) -> list[StoredFact]:
    """Every stored entry of the record, with a stand-in for each that cannot be decoded."""
    from uuid import UUID

    return quarantine.decode(app, app.index.facts_of(UUID(customer_id)))


def _writable(fact: Any) -> bool:
    """Whether the export (JSON, a few levels around each fact) can hold the fact."""
    try:
        orjson.dumps([[[[[[[[fact]]]]]]]])
    except orjson.JSONEncodeError:
        return False
    return True


def _stamp(sf: StoredFact) -> str | None:
    if readable.UNDECODABLE in sf.fact:
        return None
    stamp: Any = sf.recorded_at
    return stamp.isoformat() if isinstance(stamp, datetime) else str(stamp)


def _instant(stamp: str) -> datetime:
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
