"""Any split of the log into transactions and read chunks gives the same projections as one
transaction, on real SQLite and DuckDB files.

Users rely on a rebuild (or a live follower's many small batches) being the same ledger
whatever batches it was applied in. Merges, unmerges, prospects merged into customers and
forgotten customers are where the batches could show: their rows move between owners, and
what is derived from the rows is recomputed per transaction.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import hypothesis.strategies as st
import orjson
import pytest
from hypothesis import HealthCheck, given, settings

from consumers.log_follower import catch_up
from journey import demo_data
from journey.bootstrap import Journey
from journey.cli import main
from journey.references import reference_key
from ledger.application import history_of
from projections import derive
from projections.duckdb_store import ProjectionStore
from tests.ledgers import append, open_journey, record, tables

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


def _projected(journey: Journey, path: Path, batch: int = 1_000_000,
               read_chunk: int = 20_000) -> dict[str, list[tuple[Any, ...]]]:
    store = ProjectionStore(path)
    store.history = history_of(journey.app)
    try:
        catch_up(journey.app, store, batch_size=batch, read_chunk=read_chunk)
        assert store.position() == journey.app.recorder.max_notification_id()
        return tables(SimpleNamespace(projections=store))  # type: ignore[arg-type]
    finally:
        store.close()


SETTINGS = settings(max_examples=30, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(facts=stories(), batch=st.integers(1, 40), read_chunk=st.integers(1, 12))
def test_any_batch_split_equals_one_transaction(tmp_path_factory: Any, facts: list[dict[str, Any]],
                                                batch: int, read_chunk: int) -> None:
    """Also when a transaction spans several chunks (rows written chunk by chunk, what is
    derived from them once at its end)."""
    root = tmp_path_factory.mktemp("splits")
    journey = _ledger(root / "ledger", facts)
    try:
        whole = _projected(journey, root / "whole.duckdb")
        assert _projected(journey, root / "split.duckdb", batch=batch, read_chunk=read_chunk) == whole
    finally:
        journey.close()


def test_an_undone_merge_gives_each_record_its_own_rows_back(tmp_path: Path) -> None:
    """C-0 absorbs C-1, then the merge is undone: the call recorded on C-1's own record before
    the merge is C-1's again; the one recorded while merged stayed on C-0's record (the ledger
    wrote it there) and stays C-0's; in one transaction or many."""
    facts = [reg(0), reg(1), touch(1, 1, 3), marker(2, "customer.merged", 0, 1), touch(4, 1, 5),
             touch(5, 0, 6), marker(6, "customer.unmerged", 0, 1), touch(7, 1, 8), reg(2), touch(8, 2, 9)]
    journey = _ledger(tmp_path / "ledger", facts)
    try:
        whole = _projected(journey, tmp_path / "whole.duckdb")
        assert _projected(journey, tmp_path / "one-by-one.duckdb", batch=1) == whole
        assert len(whole["customers"]) == 3
        names = {row[0]: row[3] for row in whole["customers"]}
        calls = {}
        for row in whole["events"]:
            if row[5] == "call.inbound":
                calls[row[11]] = names[row[2]]
        assert calls == {"call-1": "N1", "call-4": "N0", "call-5": "N0", "call-7": "N1",
                         "call-8": "N2"}
    finally:
        journey.close()


def test_a_forgotten_customer_is_forgotten_whatever_the_batches(tmp_path: Path) -> None:
    facts = [reg(0), touch(1, 0, 2), reg(1), touch(2, 1, 3), touch(3, 0, 4),
             marker(4, "customer.merged", 1, 0), touch(5, 1, 6)]
    journey = _ledger(tmp_path / "ledger", facts)
    try:
        assert journey.ledger.forget(reference_key(PHONES[1]), "art. 17") is not None
        record(journey, touch(7, 2, 8), reg(2))
        whole = _projected(journey, tmp_path / "whole.duckdb")
        assert _projected(journey, tmp_path / "one-by-one.duckdb", batch=1) == whole
        names = [row[3] for row in whole["customers"]]
        assert "N1" not in names and "N0" not in names and "N2" in names
    finally:
        journey.close()


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


def test_derived_rows_recomputed_in_many_rounds_equal_one_round(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A catch-up recomputes the derived rows of the customers it touched in rounds sized by
    their rows (projections/derive.py): several rounds of the SQL give the rows one round
    gives, merges and stories included."""
    journey = open_journey(tmp_path / "ledger")
    try:
        append(journey, list(demo_data.generate(700, seed=8)), batch_size=1000)
        whole = _projected(journey, tmp_path / "one-round.duckdb")
        rounds: list[int] = []
        one_round = derive._round
        monkeypatch.setattr(derive, "_round", lambda con, rules, some: (
            rounds.append(len(some)), one_round(con, rules, some))[1])
        monkeypatch.setattr(derive, "ROUND_ROWS", len(whole["events"]) // 3)
        assert _projected(journey, tmp_path / "rounds.duckdb") == whole
        assert sum(size > derive.IN_PYTHON for size in rounds) >= 2  # the SQL, round after round
    finally:
        journey.close()
