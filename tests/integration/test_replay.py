"""Rebuild and diff (replay/): a rebuild from position zero equals the live projections."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import duckdb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from replay import diff, rebuild
from tests.ledgers import append, open_journey
from tests.strategies import fact_lists

FAST_DIR = "/dev/shm" if Path("/dev/shm").is_dir() else None
PROPERTY = settings(max_examples=20, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _live(home: Path, facts: list[dict[str, Any]], batch: int) -> Path:
    """A ledger whose live projections were built batch by batch, then closed."""
    journey = open_journey(home)
    try:
        for start in range(0, len(facts), batch):
            append(journey, facts[start:start + batch], batch_size=batch)
            journey.project()
        rebuilt = rebuild.from_store(journey.app, home / "rebuild")
        head = journey.app.recorder.max_notification_id() or 0
        stored = len(journey.app.recorder.select_notifications(1, head + 1)) if head else 0
    finally:
        journey.close()
    # Positions may have gaps (a retried batch), so compare with the log itself.
    assert (rebuilt.position, rebuilt.events) == (head, stored)
    return rebuilt.path


@PROPERTY
@given(facts=fact_lists(), batch=st.integers(1, 7))
def test_a_rebuild_from_the_store_equals_the_live_projections(facts: list[dict[str, Any]], batch: int) -> None:
    with tempfile.TemporaryDirectory(dir=FAST_DIR) as tmp:
        home = Path(tmp)
        other = _live(home, facts, batch)
        result = diff.diff(home / "projections.duckdb", other)
        assert result.same, [t.to_json() for t in result.tables if not t.same]
        assert result.live_position == result.other_position
        assert {t.table for t in result.tables} >= {"events", "customers", "customer_views",
                                                    "identities", "cases", "promises"}
        assert "projection_position" not in {t.table for t in result.tables}


@PROPERTY
@given(facts=fact_lists(), data=st.data())
def test_a_changed_live_row_is_reported_in_its_table(facts: list[dict[str, Any]], data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory(dir=FAST_DIR) as tmp:
        home = Path(tmp)
        other = _live(home, facts, 5)
        con = duckdb.connect(str(home / "projections.duckdb"))
        try:
            event_ids = sorted(r[0] for r in con.execute("SELECT event_id FROM events").fetchall())
            victim = data.draw(st.sampled_from(event_ids))
            con.execute("UPDATE events SET agent = 'someone-else' WHERE event_id = ?", [victim])
        finally:
            con.close()
        result = diff.diff(home / "projections.duckdb", other)
        assert not result.same
        changed = {t.table: t for t in result.tables if not t.same}
        assert set(changed) == {"events"}
        events = changed["events"]
        assert (events.live_rows, events.only_live, events.only_other) == (events.other_rows, 1, 1)
        assert any(e["row"]["event_id"] == victim for e in events.examples)


def test_a_missing_customer_view_is_reported(tmp_path: Path) -> None:
    from journey import demo_data

    other = _live(tmp_path, list(demo_data.generate(30, seed=5)), 400)
    con = duckdb.connect(str(tmp_path / "projections.duckdb"))
    try:
        con.execute("DELETE FROM customer_views WHERE customer_id = "
                    "(SELECT min(customer_id) FROM customer_views)")
    finally:
        con.close()
    result = diff.diff(tmp_path / "projections.duckdb", other)
    changed = {t.table: t for t in result.tables if not t.same}
    assert set(changed) == {"customer_views"}
    assert (changed["customer_views"].only_live, changed["customer_views"].only_other) == (0, 1)


def test_a_rebuild_refuses_a_directory_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "target").mkdir()
    (tmp_path / "target" / "keep.txt").write_text("mine")
    journey = open_journey(tmp_path / "ledger")
    try:
        try:
            rebuild.from_store(journey.app, tmp_path / "target")
        except rebuild.RebuildError as error:
            assert "not empty" in str(error)
        else:
            raise AssertionError("a non-empty target was accepted")
    finally:
        journey.close()
    assert (tmp_path / "target" / "keep.txt").read_text() == "mine"
