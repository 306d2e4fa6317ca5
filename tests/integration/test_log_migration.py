"""A SQLite store written by the older schema (the fact index ``journey_facts`` and the links
``journey_chain``: two rows per event) opens with the current code, which moves its rows into
``journey_log`` once; everything the old rows answered is answered the same afterwards."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.persistence import StoredEvent

from journey import demo_data
from journey.bootstrap import Journey
from ledger import chain
from replay import fact_reader
from tests.ledgers import append, open_journey
from tests.legacy_store import legacy_journey

FACTS = list(demo_data.generate(12, seed=5))
KEPT = FACTS[:-25]  # recorded by the older schema; the rest after the move


def tables(home: Path) -> set[str]:
    with closing(sqlite3.connect(home / "ledger.sqlite")) as con:
        return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def customers(home: Path) -> list[UUID]:
    with closing(sqlite3.connect(home / "ledger.sqlite")) as con:
        return [UUID(r[0]) for r in con.execute("SELECT customer_id FROM journey_customers ORDER BY 1")]


def facts_of_all(journey: Journey, ids: list[UUID]) -> dict[UUID, list[tuple[int, UUID, int, bytes]]]:
    return {c: [(n.id, n.originator_id, n.originator_version, n.state) for n in journey.app.index.facts_of(c)]
            for c in ids}


def test_a_store_of_the_older_schema_is_moved_into_journey_log_and_keeps_working(tmp_path: Path) -> None:
    with legacy_journey(tmp_path) as old:
        first = append(old, KEPT, batch_size=40)
        assert first.recorded > 100 and first.derived > 0 and not first.rejected
        ids = customers(tmp_path)
        before = facts_of_all(old, ids)
        count = old.app.index.fact_count()  # type: ignore[attr-defined]
        head = old.app.recorder.max_notification_id()
    assert {"journey_facts", "journey_chain"} <= tables(tmp_path) and "journey_log" not in tables(tmp_path)
    assert any(before.values())

    journey = open_journey(tmp_path)
    try:
        names = tables(tmp_path)
        assert "journey_log" in names and not {"journey_facts", "journey_chain"} & names
        # every link moved: the chain verifies from the first event, every event chained
        report = chain.verify_store(journey.app.recorder)
        assert report.intact, report.as_dict()
        assert (report.covered_from, report.events, report.chained) == (1, head, head)
        # each customer's facts, and the as-of views' reader, read what the old index gave
        assert facts_of_all(journey, ids) == before
        for customer, rows in before.items():
            assert [(p, s, v, st) for p, s, v, st in fact_reader._rows(journey.app.recorder, customer)] == \
                [(p, s, v, st) for p, s, v, st in rows]  # type: ignore[arg-type]
        assert journey.app.index.fact_count() == count  # type: ignore[attr-defined]
        # the old facts are still known: sent again they are duplicates, changed a conflict
        again = append(journey, KEPT, batch_size=40)
        assert (again.recorded, again.derived, again.rejected) == (0, 0, [])
        assert again.duplicates == len(KEPT)
        sent = next(f for f in KEPT if f["source"] != "ledger")
        changed: dict[str, Any] = {**sent, "occurred_at": datetime(2020, 1, 1, tzinfo=UTC).isoformat()}
        conflict = append(journey, [changed])
        assert conflict.recorded == 0 and len(conflict.rejected) == 1
        assert conflict.rejected[0].reason.startswith("conflict: ")
        # new facts go on the same chains
        rest = append(journey, FACTS[-25:], batch_size=10)
        assert rest.recorded > 0 and not rest.rejected
        report = chain.verify_store(journey.app.recorder)
        assert report.intact and report.chained == report.events == journey.app.recorder.max_notification_id()
    finally:
        journey.close()


def test_a_store_moved_into_journey_log_still_shows_what_was_tampered_with_before(tmp_path: Path) -> None:
    """An event edited in the older store: the move carries the links as they were, so the
    edit is found after it, at the same position."""
    with legacy_journey(tmp_path) as old:
        append(old, KEPT, batch_size=40)
    with closing(sqlite3.connect(tmp_path / "ledger.sqlite")) as con, con:
        [(position,)] = con.execute("SELECT position FROM journey_chain ORDER BY position DESC LIMIT 1 "
                                    "OFFSET 10").fetchall()
        [(state,)] = con.execute("SELECT state FROM stored_events WHERE rowid = ?", (position,)).fetchall()
        con.execute("UPDATE stored_events SET state = ? WHERE rowid = ?", (bytes(state) + b" ", position))
    journey = open_journey(tmp_path)
    try:
        report = chain.verify_store(journey.app.recorder)
        assert not report.intact
        assert report.first is not None and report.first.position == position
        assert "stored bytes" in report.first.what
    finally:
        journey.close()


def test_events_without_an_index_entry_stay_chained_under_their_stream_after_the_move(tmp_path: Path) -> None:
    stream = uuid4()
    with legacy_journey(tmp_path) as old:
        append(old, FACTS[:30], batch_size=10)
        recorder: Any = old.app.recorder
        recorder.insert_events([StoredEvent(stream, v, "tests:Nothing", b'{"v":%d}' % v) for v in (1, 2)])
        append(old, FACTS[30:60], batch_size=10)
        count = old.app.index.fact_count()  # type: ignore[attr-defined]
    journey = open_journey(tmp_path)
    try:
        report = chain.verify_store(journey.app.recorder)
        assert report.intact and report.chained == report.events
        assert journey.app.index.fact_count() == count  # type: ignore[attr-defined]
        assert journey.app.index.facts_of(stream) == []
        with closing(sqlite3.connect(tmp_path / "ledger.sqlite")) as con:
            rows = con.execute("SELECT event_id, customer_id, stream_id FROM journey_log WHERE stream_id = ?",
                               (stream.bytes,)).fetchall()
        assert rows == [(None, None, stream.bytes)] * 2
    finally:
        journey.close()
