"""A projection transaction must not keep the Arrow tables it has already written: at 1M
events a 200k-event transaction kept 95-310 MiB of them alive until its commit (DuckDB holds
every object passed to ``con.register`` until the transaction ends), a fifth of the worker's
peak."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from journey import demo_data
from tests.ledgers import append, open_journey


def test_arrow_tables_are_freed_before_the_transaction_commits(tmp_path: Path) -> None:
    journey = open_journey(tmp_path)
    try:
        facts = list(demo_data.generate(120, seed=3))[:3000]
        assert append(journey, facts).recorded == len(facts)
        before = pa.total_allocated_bytes()
        held: list[int] = []
        projected = journey.project(before_commit=lambda: held.append(pa.total_allocated_bytes()))
        assert projected >= len(facts)
        assert held, "the projection committed no transaction"
        # The events rows alone of 3,000 facts are over 1 MiB as Arrow; nothing may be left.
        assert max(held) - before < 64 * 1024, held
    finally:
        journey.close()
