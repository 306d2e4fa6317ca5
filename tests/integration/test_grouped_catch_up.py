"""A catch-up that reads the log record group by record group gives the same projections as
one that reads it in log order, on real SQLite and DuckDB files.

Users rely on a rebuild (or a long catch-up) being the same ledger whatever order it was
folded in. Merges, unmerges (whose records the store no longer groups together), prospects
merged into customers and forgotten customers are where the order could show.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import hypothesis.strategies as st
import orjson
import pytest
from hypothesis import HealthCheck, given, settings

from consumers.log_follower import catch_up
from journey.bootstrap import Journey
from journey.cli import main
from journey.references import reference_key
from ledger import record_groups
from ledger.application import history_of
from ledger.sqlite_recorder import JourneySQLiteRecorder
from projections.duckdb_store import ProjectionStore
from tests.ledgers import open_journey, record, tables

PHONES = ["+34600000001", "+34600000002", "+34600000003", "+34600000004"]
HANDLES = ["@ana", "@bea", "@cai", "@dan"]


def reg(i: int) -> dict[str, Any]:
    return {"type": "customer.registered", "id": f"reg-{i}", "source": "crm",
            "customer": {"customer_id": f"C-{i}"}, "occurred_at": f"2026-01-0{i + 1}T10:00:00+01:00",
            "data": {"name": f"N{i}", "phone": PHONES[i], "twitter": HANDLES[i]}}


def touch(n: int, who: int, day: int) -> dict[str, Any]:
    if n % 3 == 0:  # a tweet before (or after) the handle's customer registers: a prospect
        return {"type": "social.mention", "id": f"tw-{n}", "source": "tw",
                "customer": {"twitter": HANDLES[who]}, "occurred_at": f"2025-12-{day:02d}T10:00:00+01:00",
                "data": {"network": "twitter", "text": f"hola {n}"}}
    return {"type": "call.inbound", "id": f"call-{n}", "source": "cc", "customer": {"phone": PHONES[who]},
            "occurred_at": f"2026-02-{day:02d}T10:00:00+01:00", "department": "sales",
            "data": {"reason": f"call {n}"}}


def marker(n: int, kind: str, survivor: int, other: int) -> dict[str, Any]:
    return {"type": kind, "id": f"m-{n}", "source": "crm", "customer": {"customer_id": f"C-{survivor}"},
            "occurred_at": f"2026-03-{n % 28 + 1:02d}T10:00:00+01:00", "department": "crm",
            "data": {"from": {"customer_id": f"C-{other}"}, "reason": "test"}}


@st.composite
def stories(draw: st.DrawFn, unmerges: bool = True) -> list[dict[str, Any]]:
    """Registrations, calls and tweets of four people, with merges (and unmerges) between them
    anywhere; a marker the ledger refuses (a merge of merged records, say) is just rejected."""
    kinds = ["touch", "touch", "merge", *(["unmerge"] if unmerges else [])]
    steps = draw(st.lists(st.tuples(st.sampled_from(kinds), st.integers(0, 3), st.integers(0, 3),
                                    st.integers(1, 28)), min_size=1, max_size=25))
    facts: list[dict[str, Any]] = []
    registered = draw(st.lists(st.integers(0, len(steps)), min_size=4, max_size=4))
    for n, (kind, a, b, day) in enumerate(steps):
        facts.extend(reg(i) for i, at in enumerate(registered) if at == n)
        if kind == "touch":
            facts.append(touch(n, a, day))
        elif a != b:
            facts.append(marker(n, "customer.merged" if kind == "merge" else "customer.unmerged", a, b))
    facts.extend(reg(i) for i, at in enumerate(registered) if at == len(steps))
    return facts


def _ledger(path: Path, facts: list[dict[str, Any]]) -> Journey:
    journey = open_journey(path)
    for fact in facts:  # one at a time: a refused marker takes nothing else with it
        record(journey, fact)
    return journey


def _projected(journey: Journey, path: Path, grouped: bool, batch: int = 1_000_000,
               read_chunk: int = 20_000) -> dict[str, list[tuple[Any, ...]]]:
    store = ProjectionStore(path)
    store.history = history_of(journey.app)
    try:
        catch_up(journey.app, store, batch_size=batch, grouped=grouped, read_chunk=read_chunk)
        assert store.position() == journey.app.recorder.max_notification_id()
        return tables(SimpleNamespace(projections=store))  # type: ignore[arg-type]
    finally:
        store.close()


SETTINGS = settings(max_examples=30, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(facts=stories(), batch=st.integers(1, 40), read_chunk=st.integers(1, 12))
def test_grouped_catch_up_equals_the_log_order_one(tmp_path_factory: Any, facts: list[dict[str, Any]],
                                                    batch: int, read_chunk: int) -> None:
    """Also when a transaction spans several chunks, so that groups completed in one chunk are
    written before the transaction ends (and one group may run on into the next chunk)."""
    root = tmp_path_factory.mktemp("grouped")
    journey = _ledger(root / "ledger", facts)
    try:
        in_log_order = _projected(journey, root / "log.duckdb", grouped=False, batch=batch)
        assert _projected(journey, root / "grouped.duckdb", grouped=True, batch=batch,
                          read_chunk=read_chunk) == in_log_order
    finally:
        journey.close()


@SETTINGS
@given(facts=stories(unmerges=False))
def test_merges_alone_are_folded_group_by_group_without_falling_back(
        tmp_path_factory: Any, caplog: pytest.LogCaptureFixture, facts: list[dict[str, Any]]) -> None:
    root = tmp_path_factory.mktemp("merges")
    journey = _ledger(root / "ledger", facts)
    try:
        in_log_order = _projected(journey, root / "log.duckdb", grouped=False)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="consumers.log_follower"):
            assert _projected(journey, root / "grouped.duckdb", grouped=True) == in_log_order
        assert "need log order" not in caplog.text
    finally:
        journey.close()


def test_an_undone_merge_falls_back_to_log_order_and_changes_nothing(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """C-1 absorbs C-2, C-2's phone calls land on C-1, then the merge is undone: the store no
    longer groups the two records, so the grouped read must notice and start again."""
    facts = [reg(0), reg(1), touch(1, 1, 3), marker(2, "customer.merged", 0, 1), touch(4, 1, 5),
             touch(5, 0, 6), marker(6, "customer.unmerged", 0, 1), touch(7, 1, 8), reg(2), touch(8, 2, 9)]
    journey = _ledger(tmp_path / "ledger", facts)
    try:
        in_log_order = _projected(journey, tmp_path / "log.duckdb", grouped=False)
        with caplog.at_level(logging.INFO, logger="consumers.log_follower"):
            assert _projected(journey, tmp_path / "grouped.duckdb", grouped=True) == in_log_order
        assert "need log order" in caplog.text
        assert len(in_log_order["customers"]) == 3
    finally:
        journey.close()


def test_a_forgotten_customer_is_forgotten_in_a_grouped_catch_up_too(tmp_path: Path) -> None:
    facts = [reg(0), touch(1, 0, 2), reg(1), touch(2, 1, 3), touch(3, 0, 4),
             marker(4, "customer.merged", 1, 0), touch(5, 1, 6)]
    journey = _ledger(tmp_path / "ledger", facts)
    try:
        assert journey.ledger.forget(reference_key(PHONES[1]), "art. 17") is not None
        record(journey, touch(7, 2, 8), reg(2))
        in_log_order = _projected(journey, tmp_path / "log.duckdb", grouped=False)
        assert _projected(journey, tmp_path / "grouped.duckdb", grouped=True) == in_log_order
        names = [row[3] for row in in_log_order["customers"]]
        assert "N1" not in names and "N0" not in names and "N2" in names
    finally:
        journey.close()


def test_a_range_the_chain_does_not_cover_is_read_in_log_order(tmp_path: Path) -> None:
    """A store written before the hash chain existed has events without a chain link: their
    records are unknown, so that stretch cannot be grouped."""
    journey = _ledger(tmp_path / "ledger", [reg(0), reg(1), touch(1, 0, 2), touch(2, 1, 3)])
    try:
        recorder = journey.app.recorder
        assert isinstance(recorder, JourneySQLiteRecorder)
        grouped = recorder.grouped_positions(0, 4)
        assert grouped is not None and sorted(grouped[0]) == [1, 2, 3, 4]
        with sqlite3.connect(tmp_path / "ledger" / "ledger.sqlite") as con:
            con.execute("DELETE FROM journey_chain WHERE position = 1")
        assert recorder.grouped_positions(0, 4) is None
        assert recorder.grouped_positions(1, 4) is not None
    finally:
        journey.close()


def test_groups_join_every_record_merged_into_another_and_keep_each_groups_log_order() -> None:
    roots = record_groups.components([("b", "a"), ("c", "b"), ("e", "d"), ("d", "a")])
    assert {roots[r] for r in "bcde"} == {roots.get("a", "a")} and "x" not in roots
    rows = [(1, "x"), (2, "c"), (3, "y"), (4, "a"), (5, "x"), (6, "e"), (7, "y")]
    assert list(record_groups.grouped(rows, roots)) == [1, 5, 2, 4, 6, 3, 7]


def test_a_batch_below_one_is_refused_clearly_and_projects_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``journey project --batch -5`` used to loop forever without reaching the head, and
    ``--batch 0`` silently meant the default."""
    journey = _ledger(tmp_path / "ledger", [reg(0), touch(1, 0, 2)])
    try:
        store = ProjectionStore(tmp_path / "p.duckdb")
        try:
            for bad in ({"batch_size": 0}, {"batch_size": -5}, {"read_chunk": 0}):
                with pytest.raises(ValueError, match="at least 1"):
                    catch_up(journey.app, store, **bad)  # type: ignore[arg-type]
            assert store.position() == 0
        finally:
            store.close()
    finally:
        journey.close()
    for bad in ("0", "-5"):
        assert main(["--data-dir", str(tmp_path / "ledger"), "project", "--batch", bad]) == 2
        assert "journey project: --batch must be at least 1" in capsys.readouterr().err
    assert main(["--data-dir", str(tmp_path / "ledger"), "project", "--json"]) == 0
    assert orjson.loads(capsys.readouterr().out)["position"] == 2
