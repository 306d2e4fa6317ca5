"""``journey bench``: every path row is there with work done and a rate (no timing claims)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks.bench import KAFKA_PATHS, PATHS, Row, run, table
from journey.cli import main

BUILT = [p for p in PATHS if p not in KAFKA_PATHS and p != "as-of views"]
WITH_LIMIT = [p for p in BUILT if p != "analyst query"]


def _rows(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict[str, dict[str, Any]]:
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    return {r["path"]: r for r in doc["rows"]}


def test_small_run_without_kafka(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = _rows(capsys, ["--data-dir", str(tmp_path), "bench", "--events", "2000", "--no-kafka",
                          "--json"])
    assert list(rows) == list(PATHS)
    for path in BUILT:
        row = rows[path]
        assert row["status"] == "ok", row
        assert row["events"] > 0, row
        assert row["events_per_second"] > 0, row
    for path in WITH_LIMIT:
        assert rows[path]["limit_events_per_second"] > 0, rows[path]
        assert rows[path]["ratio"] > 0, rows[path]
    assert rows["append (JSONL -> SQLite)"]["events"] == 2000
    assert "faster than one save per event" in rows["append, one save per event (baseline)"]["note"]
    assert "median" in rows["can-contact"]["note"] and "p99" in rows["can-contact"]["note"]
    for path in KAFKA_PATHS:
        assert rows[path]["status"].startswith("skipped"), rows[path]
    assert rows["as-of views"]["status"] == "not built yet (issue 6)"
    # The scratch work is gone; only the (empty) ledger of the data dir itself is left.
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("bench-")]


def test_table_prints_every_row() -> None:
    rows = [Row("append (JSONL -> SQLite)", events=10, seconds=0.5, limit_events=10, limit_seconds=0.1),
            Row("analyst query", events=10, seconds=0.01), Row("as-of views", status="not built yet")]
    text = table(rows)
    assert "0.20" in text and "not built yet" in text and len(text.splitlines()) == 4


@pytest.mark.kafka
def test_small_run_with_kafka(kafka_broker: Any, tmp_path: Path) -> None:
    rows = {r.path: r for r in run(2000, kafka_bootstrap=kafka_broker.bootstrap, with_kafka=True,
                                   workdir=tmp_path)}
    for path in KAFKA_PATHS:
        row = rows[path]
        assert row.status == "ok", row
        assert row.events > 0 and (row.rate or 0) > 0, row
        assert (row.limit_rate or 0) > 0 and (row.ratio or 0) > 0, row
