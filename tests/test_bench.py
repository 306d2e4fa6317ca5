"""``journey bench``: every path row is there with work done and a rate (no timing claims)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks import workers
from benchmarks.bench import KAFKA_PATHS, NO_LIMIT, PATHS, growth_table, run, svg_plot
from benchmarks.rows import PG_APPEND, PG_PATHS, Row, table
from journey.cli import main

BUILT = [p for p in PATHS if p not in KAFKA_PATHS and p not in PG_PATHS]
WITH_LIMIT = [p for p in BUILT if p not in NO_LIMIT]
ASOF = [p for p in PATHS if p.startswith("as-of view")]
#: Nothing listens on port 1.
NO_SERVER = "postgresql://nobody@127.0.0.1:1/journey"


def _rows(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict[str, dict[str, Any]]:
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["peak_rss_mib"] > 0
    return {r["path"]: r for r in doc["rows"]}


def test_small_run_without_kafka(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A server that cannot be reached: the PostgreSQL rows say so, the others run.
    rows = _rows(capsys, ["--data-dir", str(tmp_path), "bench", "--events", "2000", "--no-kafka",
                          "--postgres", NO_SERVER, "--json"])
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
    # Each worker ran in a process of its own: its peak memory is reported, and it is not the
    # bench's (which holds the workload and the limit runs' rows as well).
    for path in ("append (JSONL -> SQLite)", "projection (store -> DuckDB)", "rebuild from store"):
        assert rows[path]["peak_rss_mib"] > 0, rows[path]
    assert "saving one event per call" in rows["append, one save per event (baseline)"]["note"]
    assert "median" in rows["can-contact"]["note"] and "p99" in rows["can-contact"]["note"]
    for path in KAFKA_PATHS:
        assert rows[path]["status"].startswith("skipped"), rows[path]
    for path in PG_PATHS:
        assert rows[path]["status"] == "skipped: no PostgreSQL" and rows[path]["note"], rows[path]
    assert ASOF == ["as-of view, 1k events", "as-of view, 10k events"]
    assert [rows[p]["events"] for p in ASOF] == [1000, 10_000]
    for path in ASOF:
        assert rows[path]["detail"]["median_ms"] > 0 and rows[path]["detail"]["limit_median_ms"] > 0
        assert "history_of" in rows[path]["note"], rows[path]
    assert "intact" in rows["journey verify"]["note"] and "sha256" in rows["journey verify"]["note"]
    assert rows["journey verify"]["events"] >= 2000
    assert "overdue of" in rows["cases --overdue"]["note"]
    assert rows["customer lookup"]["events"] == 20 and rows["customer lookup"]["detail"]["median_ms"] > 0
    # The scratch work is gone; only the (empty) ledger of the data dir itself is left.
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("bench-")]


def test_tiny_growth_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plot = tmp_path / "growth.svg"
    assert main(["--data-dir", str(tmp_path), "bench", "--growth", "2000,4000", "--no-kafka", "--no-postgres",
                 "--json", "--plot", str(plot)]) == 0
    docs = json.loads(capsys.readouterr().out)["growth"]
    assert [d["events"] for d in docs] == [2000, 4000]
    for doc in docs:
        assert doc["peak_rss_mib"] > 0
        rows = {r["path"]: r for r in doc["rows"]}
        for path in BUILT:
            assert rows[path]["status"] == "ok" and rows[path]["events_per_second"] > 0, rows[path]
        assert rows["customer lookup"]["detail"]["median_ms"] > 0
    text = growth_table(docs)
    for path in [*BUILT, "latency, ms (median)", "peak RSS of each worker"]:
        assert path in text, path
    svg = plot.read_text()
    assert svg.startswith("<svg") and svg.count("<polyline") == len(BUILT)
    assert svg == svg_plot(docs)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("bench-")]


def test_growth_rejects_bad_sizes(tmp_path: Path) -> None:
    assert main(["--data-dir", str(tmp_path), "bench", "--growth", "10k"]) == 2
    assert main(["--data-dir", str(tmp_path), "bench", "--plot", str(tmp_path / "x.svg")]) == 2
    assert main(["--data-dir", str(tmp_path), "bench", "--pg-events", "0"]) == 2


def test_table_prints_every_row() -> None:
    rows = [Row("append (JSONL -> SQLite)", events=10, seconds=0.5, limit_events=10, limit_seconds=0.1),
            Row("analyst query", events=10, seconds=0.01), Row("as-of views", status="not built yet")]
    text = table(rows)
    assert "0.20" in text and "not built yet" in text and len(text.splitlines()) == 5


@pytest.mark.kafka
def test_small_run_with_kafka(kafka_broker: Any, tmp_path: Path) -> None:
    rows = {r.path: r for r in run(2000, kafka_bootstrap=kafka_broker.bootstrap, with_kafka=True,
                                   workdir=tmp_path, with_postgres=False)}
    for path in KAFKA_PATHS:
        row = rows[path]
        assert row.status == "ok", row
        assert row.events > 0 and (row.rate or 0) > 0, row
        assert (row.limit_rate or 0) > 0 and (row.ratio or 0) > 0, row
        if path != "end to end via Kafka":  # one worker per step; end to end is their sum
            assert (row.peak_rss_mib or 0) > 0, row


@pytest.mark.kafka
@pytest.mark.postgres
def test_postgres_rows_record_every_fact_exactly_once(kafka_broker: Any, postgres_server: Any,
                                                      tmp_path: Path) -> None:
    """The PostgreSQL rows (what ``run`` adds when a server and a broker are there) on a small
    workload: each ran next to its limit, and its result holds every input fact exactly once
    (and a second append records nothing)."""
    from benchmarks.postgres_rows import postgres_rows
    from benchmarks.rows import workload
    from journey import demo_data

    facts = workload(240)
    source = tmp_path / "workload.jsonl"
    demo_data.write_jsonl(source, facts)
    rows = {r.path: r for r in postgres_rows(facts, source, tmp_path, postgres_url=postgres_server.url,
                                             kafka=kafka_broker.bootstrap, kafka_skipped="")}
    assert list(rows) == list(PG_PATHS)
    for path in PG_PATHS:
        row = rows[path]
        assert row.status == "ok", row
        assert row.events > 0 and (row.rate or 0) > 0, row
        assert (row.limit_rate or 0) > 0 and (row.ratio or 0) > 0, row
        assert row.exactly_once is True, row
        assert (row.peak_rss_mib or 0) > 0, row
    append = rows[PG_APPEND]
    assert append.events == len(facts)
    assert append.detail["second_append_recorded"] == 0
    assert append.detail["second_append_duplicates"] == len(facts)
    assert append.detail["executemany_events_per_second"] > 0
    assert append.detail["rows_written"] > append.limit_events  # the index and chain rows too
    assert rows[PG_PATHS[1]].detail["messages_on_topic"] == rows[PG_PATHS[1]].detail["stored_events"]
    for path in PG_PATHS[2:]:
        assert rows[path].detail["workers_lost"] == 0, rows[path]
        assert rows[path].detail["recorded"] == len(facts), rows[path]
    assert [rows[p].detail["workers"] for p in PG_PATHS[2:]] == [1, 2, 4]


def _touch(mib: int) -> int:
    """Runs in a spawned worker: make ``mib`` MiB resident."""
    block = bytearray(mib * 1024 * 1024)
    for i in range(0, len(block), 4096):
        block[i] = 1
    return len(block)


def test_a_workers_peak_memory_is_its_own_not_the_bench_process() -> None:
    """exec() folds the forking parent's ru_maxrss into the child's: the bench once reported
    its own size for every Kafka worker. A worker's peak must not include the parent's."""
    ballast = bytearray(300 * 1024 * 1024)
    for i in range(0, len(ballast), 4096):
        ballast[i] = 1
    measured = workers.in_worker(_touch, 20)
    assert measured.result == 20 * 1024 * 1024
    assert 20 < measured.peak_rss_mib < workers.peak_rss_mib() - 250, (measured, workers.peak_rss_mib())


def test_schema_floor_inserts_every_stored_event_of_a_ledger(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks import schema_floor
    from journey import demo_data
    from tests.ledgers import open_journey

    journey = open_journey(tmp_path)
    try:
        journey.record(list(demo_data.generate(30, seed=3)))
        stored = journey.app.recorder.max_notification_id()
    finally:
        journey.close()
    assert schema_floor.main([str(tmp_path), "--batch", "50", "--cache-mib", "8"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{stored:,} events, 50 per transaction, cache 8 MiB:"), out
    with pytest.raises(SystemExit):
        schema_floor.main([str(tmp_path / "nowhere")])
