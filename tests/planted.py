"""Facts written straight into a SQLite event store, past the door's validation: what an older
ledger, another writer or a store edited by hand may hold, and what every reader must survive."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

State = bytes


def fact(customer_uuid: str, kind: str, data: dict[str, Any], occurred_at: str = "2026-03-01T10:00:00+01:00",
         **envelope: Any) -> dict[str, Any]:
    """A stored fact as the write path leaves it, without the encrypted personal part."""
    key = uuid.uuid4().hex[:12]
    return {"type": kind, "v": 1, "id": f"planted-{key}", "source": "legacy",
            "customer": {"phone": None}, "occurred_at": occurred_at, "data": data,
            "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, key)), "customer_uuid": customer_uuid,
            **envelope}


def state_of(stored: dict[str, Any] | None, raw: bytes | None = None) -> State:
    if raw is not None:
        return raw
    # json, not orjson: orjson refuses to write the deeper nestings a store may hold.
    return json.dumps({"timestamp": datetime.now(UTC).isoformat(), "fact": stored}).encode()


def deep(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(levels):
        value = {"x": value}
    return value


#: The faults a stored fact may carry: name -> the stored state for a customer's stream.
FAULTS: dict[str, Callable[[str], State]] = {
    "year-one": lambda c: state_of(fact(c, "call.inbound", {"outcome": "answered"},
                                        occurred_at="0001-01-01T00:00:00+01:00", department="care")),
    "year-9999": lambda c: state_of(fact(c, "call.inbound", {"outcome": "answered"},
                                         occurred_at="9999-12-31T23:00:00-05:00", department="care")),
    "warranty-overflow": lambda c: state_of(fact(c, "purchase.recorded", {
        "product": "TV", "serial": "SN-OVERFLOW", "warranty_months": 10_000_000})),
    "not-json": lambda c: state_of(None, raw=b"\x00\x01 not json {"),
    "no-fact": lambda c: state_of(None, raw=b'{"timestamp": "2026-03-01T10:00:00+00:00"}'),
    "five-megabytes": lambda c: state_of(fact(c, "social.mention", {
        "network": "twitter", "text": "x" * 5_000_000})),
    "deep-nesting": lambda c: state_of(fact(c, "case.note", {"case_id": "K-DEEP", **deep(400)})),
    "missing-field": lambda c: state_of(fact(c, "consent.given", {"purpose": "commercial", "text": "ok"})),
    "unknown-type": lambda c: state_of(fact(c, "loyalty.points_earned", {"points": 10})),
}


def plant(ledger: Path, customer_uuid: str, state: State) -> int:
    """Append ``state`` to the customer's stream as its next event; returns its store position
    (the notification id)."""
    stream = uuid.UUID(customer_uuid).hex
    with closing(sqlite3.connect(ledger)) as con, con:
        [(version,)] = con.execute("SELECT coalesce(max(originator_version), 0) FROM stored_events "
                                   "WHERE originator_id = ?", (stream,)).fetchall()
        cursor = con.execute("INSERT INTO stored_events (originator_id, originator_version, topic, state) "
                             "VALUES (?, ?, ?, ?)",
                             (stream, version + 1, "domain.customer:Customer.Recorded", state))
        position = cursor.lastrowid
        assert position is not None
        # Its fact index entry, without a hash link (the writer was not the ledger's).
        con.execute("INSERT INTO journey_log (position, event_id, customer_id, stream_id, stream_version) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (position, uuid.uuid4().bytes, bytes.fromhex(stream), bytes.fromhex(stream), version + 1))
    return position


def replace_state(ledger: Path, position: int, state: State) -> None:
    """Correct a stored event in place (what fixing a store by hand does)."""
    with closing(sqlite3.connect(ledger)) as con, con:
        con.execute("UPDATE stored_events SET state = ? WHERE rowid = ?", (state, position))


def remove(ledger: Path, position: int) -> None:
    """Delete a stored event (what cleaning a store by hand does)."""
    with closing(sqlite3.connect(ledger)) as con, con:
        # The event and its row of journey_log (its fact index entry and its hash link, if any:
        # ``journey verify`` then names the break in its customer's chain).
        con.execute("DELETE FROM journey_log WHERE position = ?", (position,))
        con.execute("DELETE FROM stored_events WHERE rowid = ?", (position,))
