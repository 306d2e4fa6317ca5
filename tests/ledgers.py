"""Helpers that open real embedded ledgers (SQLite + DuckDB files) for tests."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from consumers.jsonl_ingest import IngestSummary, ingest
from domain import catalogue
from journey.bootstrap import Journey, bootstrap
from journey.config import Settings
from ledger.writer import BatchResult
from projections import derived
from projections.customer_view import render


def open_journey(path: Path) -> Journey:
    return bootstrap(Settings(data_dir=path))


def append(journey: Journey, facts: Sequence[dict[str, Any]], batch_size: int = 1000) -> IngestSummary:
    lines = [orjson.dumps(f) for f in facts]
    return ingest(journey.ledger, lines, batch_size=batch_size)


def record(journey: Journey, *facts: dict[str, Any]) -> BatchResult:
    return journey.ledger.append([(i, catalogue.validate(f)) for i, f in enumerate(facts, 1)])


def strip(obj: Any) -> Any:
    """A view without what depends on when and in which order the ledger recorded things."""
    if isinstance(obj, dict):
        return {k: strip(v) for k, v in obj.items() if k not in ("pos", "recorded_at", "position")}
    if isinstance(obj, list):
        return [strip(v) for v in obj]
    return obj


def views(journey: Journey) -> dict[str, dict[str, Any]]:
    """Every customer's rendered view, keyed by customer id."""
    store = journey.projections
    ids = [r[0] for r in store.con.execute("SELECT customer_id FROM customer_views").fetchall()]
    return {cid: render(v) for cid, v in store.load_views(ids).items()}


def tables(journey: Journey) -> dict[str, list[tuple[Any, ...]]]:
    """Every projection table's rows, sorted, for exact comparisons."""
    con = journey.projections.con
    out = {}
    names = ("events", "customers", "customer_views", "identities", "customer_aliases",
             *(t.name for t in derived.tables()))
    for table in names:
        rows = con.execute(f"SELECT * FROM {table}").fetchall()
        out[table] = sorted(rows, key=repr)
    return out
