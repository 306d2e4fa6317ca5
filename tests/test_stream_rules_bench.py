"""``python -m benchmarks.stream_rules``: its aggregate-backed writer does the same work as the
ledger's writer (the same rows, the same rejections), so the comparison it prints is fair."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from benchmarks import stream_rules
from benchmarks.rows import workload
from journey.bootstrap import Journey
from ledger import writer as ledger_writer
from tests.ledgers import append, open_journey


@pytest.fixture
def facts() -> list[dict[str, Any]]:
    facts = workload(1500)
    registration = next(f for f in facts if f["type"] == "customer.registered")
    opening = next(f for f in facts if f["type"] == "case.opened")
    note = next(f for f in facts if f["type"].startswith("case.") and f["type"] != "case.opened")
    other = next(f["customer"] for f in facts if f["customer"] != note["customer"])
    # One fact each rule refuses, after the facts they clash with.
    return [*facts, {**registration, "id": "again-1"}, {**opening, "id": "again-2"},
            {**note, "id": "again-3", "customer": other}]


def _rows(journey: Journey) -> list[tuple[Any, ...]]:
    with journey.app.recorder.datastore.transaction(commit=False) as c:  # type: ignore[attr-defined]
        c.execute("SELECT originator_id, originator_version, topic, state FROM stored_events ORDER BY rowid")
        rows = []
        for stream, version, topic, state in c.fetchall():
            decoded = orjson.loads(state)
            del decoded["timestamp"]
            decoded["fact"].pop("$personal", None)  # sealed with a random nonce
            rows.append((stream, version, topic, orjson.dumps(decoded)))
    return rows


@pytest.fixture
def journeys(tmp_path: Path) -> Iterator[list[Journey]]:
    opened = [open_journey(tmp_path / "functions"), open_journey(tmp_path / "aggregates")]
    yield opened
    for j in opened:
        j.close()


def test_the_aggregate_writer_writes_what_the_ledger_writes(
        facts: list[dict[str, Any]], journeys: list[Journey], monkeypatch: pytest.MonkeyPatch) -> None:
    ours = append(journeys[0], [dict(f) for f in facts], batch_size=400)
    stream_rules.forget_aggregates()
    monkeypatch.setattr(ledger_writer, "_BatchWriter", stream_rules.AggregateWriter)
    theirs = append(journeys[1], [dict(f) for f in facts], batch_size=400)
    assert [r.reason for r in ours.rejected] == [r.reason for r in theirs.rejected]
    assert len(ours.rejected) == 3
    assert (ours.recorded, ours.derived) == (theirs.recorded, theirs.derived)
    assert _rows(journeys[0]) == _rows(journeys[1])


def test_the_micro_benchmark_runs_both_ways_on_the_same_facts(facts: list[dict[str, Any]]) -> None:
    per_fact = stream_rules.micro(facts, rounds=1)
    assert set(per_fact) == {"functions", "aggregates"}
    assert all(us > 0 for us in per_fact.values())
