"""Rebuild, diff and both as-of axes on each real event store (SQLite and PostgreSQL)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from journey import demo_data
from journey.bootstrap import bootstrap
from journey.config import Settings
from projections.preparing import Parallel
from replay import asof, diff, rebuild
from tests.ledgers import append, record


@pytest.mark.parametrize("store", [pytest.param("sqlite"), pytest.param("postgres", marks=pytest.mark.postgres)])
def test_rebuild_equals_live_and_a_late_upload_separates_the_two_time_axes(
        store: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("postgres_db").url if store == "postgres" else None
    journey = bootstrap(Settings(data_dir=tmp_path / "ledger", store=store, postgres_url=url))
    try:
        assert not append(journey, list(demo_data.generate(60, seed=4))).rejected
        call: dict[str, Any] = {"type": "call.inbound", "source": "cc", "customer": {"customer_id": "C-900001"},
                                "department": "care", "data": {"reason": "x"}}
        record(journey, {**call, "id": "on-time", "occurred_at": "2026-09-01T10:00:00+02:00"})
        time.sleep(1.1)
        at = datetime.now(UTC)
        time.sleep(1.1)
        record(journey, {**call, "id": "late", "occurred_at": "2026-09-02T10:00:00+02:00"})
        journey.project()
        rebuilt = rebuild.from_store(journey.app, tmp_path / "rebuilt")
        # The same rebuild with the facts decoded in a worker process, from the first fact.
        by_workers = rebuild.from_store(journey.app, tmp_path / "by-workers",
                                        parallel=Parallel(workers=1, from_facts=0))
        customer = asof.resolve(journey.app, "customer_id:C-900001")
        assert customer is not None
        known = asof.as_of(journey.app, customer, at, "recorded")
        happened = asof.as_of(journey.app, customer, datetime(2026, 9, 3, tzinfo=UTC), "occurred")
    finally:
        journey.close()
    result = diff.diff(tmp_path / "ledger" / "projections.duckdb", rebuilt.path)
    assert result.same, [t.to_json() for t in result.tables if not t.same]
    result = diff.diff(tmp_path / "ledger" / "projections.duckdb", by_workers.path)
    assert result.same, [t.to_json() for t in result.tables if not t.same]
    ids = {sf.fact["id"] for sf in known.facts}
    assert "on-time" in ids and "late" not in ids
    assert {"on-time", "late"} <= {sf.fact["id"] for sf in happened.facts}
    assert "late" in {sf.fact["id"] for sf in happened.late}
