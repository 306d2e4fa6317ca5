"""The store contract's exact re-ingest property, on a real PostgreSQL server.

tests/integration/test_projection_properties.py proves it on SQLite. Here every Hypothesis
example gets its own freshly created database (function-scoped fixtures are not reset between
examples), dropped when the example ends; the projections are DuckDB files as in production.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from journey.bootstrap import Journey, bootstrap
from journey.config import Settings
from tests.harness.conftest_postgres import PostgresTarget
from tests.ledgers import append, tables
from tests.strategies import fact_lists

FAST_DIR = "/dev/shm" if Path("/dev/shm").is_dir() else None

PROPERTY = settings(max_examples=10, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@contextmanager
def postgres_journey(server: PostgresTarget) -> Iterator[Journey]:
    """A ledger on a brand-new database (and projections in a new directory), both removed after."""
    name = f"prop_{uuid.uuid4().hex[:16]}"
    params = server.create_database(name)
    try:
        with tempfile.TemporaryDirectory(dir=FAST_DIR) as tmp:
            journey = bootstrap(Settings(data_dir=Path(tmp), store="postgres", postgres_url=params.url))
            try:
                yield journey
            finally:
                journey.close()
    finally:
        server.drop_database(name)


@pytest.mark.postgres
@PROPERTY
@given(facts=fact_lists(), data=st.data())
def test_reingesting_with_duplicates_interleaved_changes_nothing_on_postgres(
        postgres_server: PostgresTarget, facts: list[dict[str, Any]], data: st.DataObject) -> None:
    with postgres_journey(postgres_server) as journey:
        for start in range(0, len(facts), 5):
            append(journey, facts[start:start + 5], batch_size=5)
            journey.project()
        journey.project()
        before = tables(journey)
        recorder = journey.app.recorder
        head = recorder.max_notification_id()
        count = recorder.fact_count()  # type: ignore[attr-defined]

        replay = list(facts)
        for fact in data.draw(st.lists(st.sampled_from(facts), max_size=10)):
            replay.insert(data.draw(st.integers(0, len(replay))), fact)
        summary = append(journey, replay, batch_size=data.draw(st.integers(1, 9)))
        journey.project()

        assert summary.recorded == 0 and not summary.rejected
        assert summary.duplicates == len(replay)
        assert recorder.max_notification_id() == head
        assert recorder.fact_count() == count  # type: ignore[attr-defined]
        assert tables(journey) == before
