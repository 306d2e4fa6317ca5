"""A long catch-up decodes and checks its facts in worker processes: the projection is the one
the main process alone gives, on real SQLite and DuckDB files.

Users rely on a rebuild being the same ledger however it was computed: the workers decode
with the keys the main process sends, set aside what the readers cannot handle, and leave the
owners (merges, unmerges, forgets) to the main process, in log order. The workers run here
from the first fact and with small chunks, so that every
chunk boundary and every fault crosses a process boundary.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given

from consumers import log_follower
from consumers.log_follower import catch_up
from journey import demo_data
from journey.bootstrap import Journey
from journey.references import reference_key
from ledger.application import history_of
from projections.duckdb_store import ProjectionStore
from projections.preparing import Parallel
from tests import planted
from tests.integration.test_batch_splits import PHONES, SETTINGS, _ledger, marker, reg, stories, touch
from tests.ledgers import append, open_journey, record, tables


def _projected(journey: Journey, path: Path, workers: int, read_chunk: int = 20_000
               ) -> tuple[dict[str, list[tuple[Any, ...]]], list[tuple[Any, ...]]]:
    """Projected with ``workers`` worker processes from the first fact (0: none)."""
    store = ProjectionStore(path)
    store.history = history_of(journey.app)
    try:
        catch_up(journey.app, store, read_chunk=read_chunk,
                 parallel=Parallel(workers=workers, from_facts=0))
        assert store.position() == journey.app.recorder.max_notification_id()
        quarantined = sorted((e.position, e.customer_id, e.type, e.reason) for e in store.quarantined())
        return tables(SimpleNamespace(projections=store)), quarantined  # type: ignore[arg-type]
    finally:
        store.close()


@SETTINGS
@given(facts=stories())
def test_workers_give_the_projection_of_the_main_process_alone(
        tmp_path_factory: Any, monkeypatch: pytest.MonkeyPatch, facts: list[dict[str, Any]]) -> None:
    root = tmp_path_factory.mktemp("workers")
    journey = _ledger(root / "ledger", facts)
    try:
        alone = _projected(journey, root / "alone.duckdb", workers=0)
        decoded_here = []
        decode = log_follower._decode
        monkeypatch.setattr(log_follower, "_decode",
                            lambda app, rows: decoded_here.append(len(rows)) or decode(app, rows))
        assert _projected(journey, root / "workers.duckdb", workers=1, read_chunk=3) == alone
        assert decoded_here == []  # every chunk was the workers' (none came back undecoded)
    finally:
        journey.close()


def test_a_forgotten_customer_stays_forgotten_with_workers(tmp_path: Path) -> None:
    facts = [reg(0), touch(1, 0, 2), reg(1), touch(2, 1, 3), touch(3, 0, 4),
             marker(4, "customer.merged", 1, 0), touch(5, 1, 6)]
    journey = _ledger(tmp_path / "ledger", facts)
    try:
        assert journey.ledger.forget(reference_key(PHONES[1]), "art. 17") is not None
        record(journey, touch(7, 2, 8), reg(2))
        alone = _projected(journey, tmp_path / "alone.duckdb", workers=0)
        tables_, _ = _projected(journey, tmp_path / "workers.duckdb", workers=2, read_chunk=2)
        assert (tables_, _) == alone
        names = [row[3] for row in tables_["customers"]]
        assert "N1" not in names and "N0" not in names and "N2" in names
        assert not any("N0" in repr(row) or "N1" in repr(row) for row in tables_["events"])
    finally:
        journey.close()


def test_facts_no_reader_can_handle_are_set_aside_by_the_workers_as_by_the_main_process(
        tmp_path: Path) -> None:
    """Every planted fault (not JSON, years at the calendar's edges, nesting, sizes, missing
    fields...) among demo facts: the same quarantine entries, and everything else projected."""
    home = tmp_path / "ledger"
    j = open_journey(home)
    try:
        append(j, list(demo_data.generate(25, seed=3)))
        customers = sorted({str(UUID(str(row[1]))) for row in j.app.recorder.select_rows(0, 1_000_000, None)
                            if row[3].startswith("domain.customer")})[:3]
    finally:
        j.close()
    planted_at = [planted.plant(home / "ledger.sqlite", customers[i % 3], make(customers[i % 3]))
                  for i, make in enumerate(planted.FAULTS.values())]
    j = open_journey(home)
    try:
        alone = _projected(j, tmp_path / "alone.duckdb", workers=0)
        assert [entry[0] for entry in alone[1]] == sorted(planted_at)
        assert _projected(j, tmp_path / "workers.duckdb", workers=1, read_chunk=50) == alone
    finally:
        j.close()
