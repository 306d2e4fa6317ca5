"""``journey bench``: every path of the ledger next to the raw limit of the part underneath.

Each path and its limit run in the same run on the same payloads (the facts of
``demo_data.generate(customers=events // 12, seed=3)``, the same facts
:func:`benchmarks.pipeline.run_pipeline` sends through Kafka):

- append (JSON Lines -> SQLite store) vs raw sqlite3 inserts of the stored_events rows it
  wrote, into a fresh file with the same schema, journal mode and synchronous setting, one
  transaction per 2,000 rows; plus a baseline of one save per event (at most 5,000 facts);
- embedded projection (store -> DuckDB) and a rebuild into a fresh DuckDB vs Arrow inserts of
  the same ``events`` rows into a fresh DuckDB file, 20,000 rows per transaction;
- can-contact: ``decide()`` on the busiest customer's timeline (what the command does) vs on
  its history indexed once (the limit), median and p99;
- one analyst query over ``events``;
- the Kafka paths (relay, projection from Kafka, ingest, end to end) vs raw kafka-python
  produce and consume, when a broker is given or can be started;
- as-of views: not built yet.

``ratio`` is the path's rate over the limit's rate (1.0 = as fast as the raw part allows).
"""

from __future__ import annotations

import random
import sqlite3
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from consumers.jsonl_ingest import ingest
from consumers.log_follower import catch_up
from domain.contact_policy import CHANNELS, ContactHistory, decide
from journey import demo_data
from journey.bootstrap import Journey, bootstrap
from journey.config import Settings
from journey.policy import load_policy
from projections.duckdb_store import EVENT_COLUMNS, SCHEMA, ProjectionStore

SEED = 3
SQLITE_BATCH = 2000
ARROW_BATCH = 20_000
BASELINE_MAX = 5000
DECISIONS = 1000

KAFKA_PATHS = ("relay (store -> Kafka)", "ingest (Kafka -> store)", "projection from Kafka",
               "end to end via Kafka")
#: Every path row a run prints, in order (Kafka rows are "skipped" without a broker).
PATHS = ("append (JSONL -> SQLite)", "append, one save per event (baseline)",
         "projection (store -> DuckDB)", "rebuild from store", "can-contact", "analyst query",
         *KAFKA_PATHS, "as-of views")


@dataclass
class Row:
    path: str
    events: int = 0
    seconds: float | None = None
    limit_seconds: float | None = None
    #: How many items the limit moved (stored rows, events rows, records).
    limit_events: int = 0
    note: str = ""
    status: str = "ok"

    @property
    def rate(self) -> float | None:
        return self.events / self.seconds if self.seconds else None

    @property
    def limit_rate(self) -> float | None:
        return self.limit_events / self.limit_seconds if self.limit_seconds else None

    @property
    def ratio(self) -> float | None:
        rate, limit = self.rate, self.limit_rate
        return rate / limit if rate and limit else None

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc.update(events_per_second=_round(self.rate), limit_events_per_second=_round(self.limit_rate),
                   ratio=None if self.ratio is None else round(self.ratio, 3))
        for key in ("seconds", "limit_seconds"):
            if doc[key] is not None:
                doc[key] = round(doc[key], 4)
        return doc


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _say(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def workload(events: int, seed: int = SEED) -> list[dict[str, Any]]:
    """The same facts run_pipeline sends (same customers, seed and cut)."""
    return list(demo_data.generate(max(1, events // 12), seed=seed))[:events]


def _journey(directory: Path) -> Journey:
    return bootstrap(Settings(data_dir=directory))


# ------------------------------------------------------------------------- SQLite limit


def _sqlite_settings(journey: Journey) -> tuple[str, int, list[str], str]:
    """The live store's journal mode, synchronous level, schema and events table name."""
    recorder: Any = journey.app.recorder
    table = str(recorder.events_table_name)
    with recorder.datastore.transaction(commit=False) as c:
        c.execute("PRAGMA journal_mode")
        mode = str(c.fetchone()[0])
        c.execute("PRAGMA synchronous")
        sync = int(c.fetchone()[0])
        c.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY rowid")
        schema = [str(r[0]) for r in c.fetchall()]
    return mode, sync, schema, table


def _stored_rows(journey: Journey, table: str) -> list[tuple[Any, ...]]:
    recorder: Any = journey.app.recorder
    with recorder.datastore.transaction(commit=False) as c:
        c.execute(f"SELECT originator_id, originator_version, topic, state FROM {table} ORDER BY rowid")
        return [tuple(r) for r in c.fetchall()]


def sqlite_limit(journey: Journey, path: Path) -> tuple[int, float]:
    """Raw sqlite3 inserts of the store's rows into a fresh file like it: (rows, seconds)."""
    mode, sync, schema, table = _sqlite_settings(journey)
    rows = _stored_rows(journey, table)
    con = sqlite3.connect(path, isolation_level=None)
    try:
        con.execute(f"PRAGMA journal_mode={mode}")
        con.execute(f"PRAGMA synchronous={sync}")
        for statement in schema:
            con.execute(statement)
        insert = (f"INSERT INTO {table} (originator_id, originator_version, topic, state) "
                  "VALUES (?, ?, ?, ?)")

        def load() -> None:
            for start in range(0, len(rows), SQLITE_BATCH):
                con.execute("BEGIN")
                con.executemany(insert, rows[start:start + SQLITE_BATCH])
                con.execute("COMMIT")

        _, seconds = _timed(load)
    finally:
        con.close()
    return len(rows), seconds


# ------------------------------------------------------------------------- DuckDB limit

_CASTS = [f"{c}::TIMESTAMPTZ" if c in ("occurred_at", "recorded_at")
          else f"{c}::JSON" if c in ("ref", "data") else c for c in EVENT_COLUMNS]
_AS_TEXT = [f"{c}::VARCHAR AS {c}" if c in ("occurred_at", "recorded_at", "ref", "data") else c
            for c in EVENT_COLUMNS]


def arrow_limit(projections: ProjectionStore, path: Path) -> tuple[int, float]:
    """Arrow inserts of the projection's ``events`` rows (as the projection hands them over,
    text timestamps and JSON) into a fresh DuckDB file, 20,000 per transaction."""
    table = projections.con.sql(
        f"SELECT {', '.join(_AS_TEXT)} FROM events ORDER BY position").to_arrow_table()
    con = duckdb.connect(str(path))
    try:
        for statement in SCHEMA:
            con.execute(statement)
        insert = f"INSERT INTO events SELECT {', '.join(_CASTS)} FROM batch_rows"

        def load() -> None:
            for start in range(0, table.num_rows, ARROW_BATCH):
                con.begin()
                con.register("batch_rows", table.slice(start, ARROW_BATCH))
                con.execute(insert)
                con.unregister("batch_rows")
                con.commit()

        _, seconds = _timed(load)
    finally:
        con.close()
    return int(table.num_rows), seconds


# ------------------------------------------------------------------------- can-contact


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def contact_row(projections: ProjectionStore, calls: int = DECISIONS) -> Row:
    """decide() over the busiest customer's timeline, as ``journey can-contact`` calls it,
    next to decide() over the same history indexed once (the limit)."""
    found = projections.con.execute(
        "SELECT customer_id, count(*) AS n FROM events GROUP BY ALL ORDER BY n DESC, customer_id "
        "LIMIT 1").fetchall()
    if not found:
        return Row("can-contact", status="no events")
    customer_id, count = str(found[0][0]), int(found[0][1])
    history = projections.timeline(customer_id)
    policy = load_policy()
    index = ContactHistory(history)
    rng = random.Random(SEED)
    start = datetime(2026, 3, 1, tzinfo=UTC)
    asks = [(start + timedelta(seconds=rng.randrange(240 * 24 * 3600)), rng.choice(CHANNELS),
             rng.choice(("commercial", "service"))) for _ in range(calls)]

    def sample(source: Any) -> list[float]:
        times = []
        for at, channel, purpose in asks:
            t0 = time.perf_counter()
            decide(source, channel=channel, purpose=purpose, at=at, policy=policy)
            times.append(time.perf_counter() - t0)
        return times

    path, limit = sample(history), sample(index)
    return Row("can-contact", events=calls, seconds=sum(path), limit_seconds=sum(limit),
               limit_events=calls,
               note=(f"{count} events: median {statistics.median(path) * 1000:.3f} ms, "
                     f"p99 {_percentile(path, 0.99) * 1000:.3f} ms; indexed once: median "
                     f"{statistics.median(limit) * 1000:.3f} ms, "
                     f"p99 {_percentile(limit, 0.99) * 1000:.3f} ms"))


# ------------------------------------------------------------------------- Kafka


def _harness_importable() -> None:
    """pipeline.broker(None) starts its broker from tests/harness, which is not an installed
    package: the ``journey`` script cannot import it unless run from the checkout. When this
    is a checkout (an editable install), put its root on sys.path so the harness is found."""
    root = Path(__file__).resolve().parent.parent
    if (root / "tests" / "harness" / "kafka.py").is_file() and str(root) not in sys.path:
        sys.path.append(str(root))


def kafka_rows(events: int, workdir: Path, bootstrap_servers: str | None) -> list[Row]:
    from benchmarks.pipeline import broker, run_pipeline

    if bootstrap_servers is None:
        _harness_importable()
    with ExitStack() as stack:
        try:
            servers = stack.enter_context(broker(bootstrap_servers))
        except Exception as error:  # no java, no jars, a broker that would not start
            text = str(error).strip()
            reason = text.splitlines()[0] if text else type(error).__name__
            _say(f"kafka paths skipped: {reason}")
            return [Row(p, status="skipped: no broker", note=reason[:120]) for p in KAFKA_PATHS]
        _say(f"kafka paths through {servers}")
        # A failure from here on is the pipeline's, not a missing broker: it propagates.
        result = run_pipeline(events, servers, workdir / "kafka", seed=SEED)
    steps = {s["step"]: s for s in result["steps"]}

    def step(name: str) -> tuple[int, float]:
        return int(steps[name]["events"]), float(steps[name]["seconds"])

    produced, produce_s = step("raw produce (limit)")
    consumed, consume_s = step("raw consume (limit)")
    slower = (produced, produce_s) if produce_s >= consume_s else (consumed, consume_s)
    rows = []
    for path, name, (limit_n, limit_s), note in (
            ("relay (store -> Kafka)", "relay (store -> journey.events)", (produced, produce_s),
             "limit: raw kafka-python produce"),
            ("ingest (Kafka -> store)", "ingest (touchpoints -> store)", (consumed, consume_s),
             "limit: raw kafka-python consume"),
            ("projection from Kafka", "projection (journey.events -> DuckDB)",
             (consumed, consume_s), "limit: raw kafka-python consume"),
            ("end to end via Kafka", "end to end (produce..projection)", slower,
             "produce, ingest, relay, projection; limit: the slower of raw produce/consume")):
        n, seconds = step(name)
        rows.append(Row(path, events=n, seconds=seconds, limit_events=limit_n,
                        limit_seconds=limit_s, note=note))
    return rows


# ------------------------------------------------------------------------- the run


def run(events: int, *, kafka_bootstrap: str | None = None, with_kafka: bool = True,
        workdir: Path) -> list[Row]:
    workdir.mkdir(parents=True, exist_ok=True)
    facts = workload(events)
    source = workdir / "workload.jsonl"
    n = demo_data.write_jsonl(source, facts)
    _say(f"{n:,} facts of {max(1, events // 12):,} customers in {source}")
    rows: list[Row] = []

    journey = _journey(workdir / "ledger")
    try:
        with open(source, "rb") as lines:
            summary, seconds = _timed(lambda: ingest(journey.ledger, lines, batch_size=SQLITE_BATCH))
        stored, limit_s = sqlite_limit(journey, workdir / "raw.sqlite")
        append = Row("append (JSONL -> SQLite)", events=summary.lines, seconds=seconds,
                     limit_events=stored, limit_seconds=limit_s,
                     note=(f"{summary.recorded:,} recorded, {len(summary.rejected):,} rejected, "
                           f"{stored:,} stored events; limit: raw sqlite3, {SQLITE_BATCH}/txn"))
        rows.append(append)
        _say(f"append: {append.rate or 0:,.0f}/s (limit {append.limit_rate or 0:,.0f}/s)")

        rows.append(_baseline(workdir, source, facts, append))
        _say("baseline done")

        projected, seconds = _timed(journey.project)
        limit_n, limit_s = arrow_limit(journey.projections, workdir / "raw.duckdb")
        projection = Row("projection (store -> DuckDB)", events=projected, seconds=seconds,
                         limit_events=limit_n, limit_seconds=limit_s,
                         note=f"limit: Arrow inserts of the events rows, {ARROW_BATCH:,}/txn")
        rows.append(projection)
        _say(f"projection: {projection.rate or 0:,.0f}/s")

        fresh = ProjectionStore(workdir / "rebuild.duckdb")
        try:
            rebuilt, seconds = _timed(lambda: catch_up(journey.app, fresh))
        finally:
            fresh.close()
        rows.append(Row("rebuild from store", events=rebuilt, seconds=seconds, limit_events=limit_n,
                        limit_seconds=limit_s, note="every projection into a fresh DuckDB file"))
        _say("rebuild done")

        rows.append(contact_row(journey.projections))
        rows.append(_analyst_row(journey.projections))
    finally:
        journey.close()

    if with_kafka:
        rows.extend(kafka_rows(events, workdir, kafka_bootstrap))
    else:
        rows.extend(Row(p, status="skipped: --no-kafka") for p in KAFKA_PATHS)
    rows.append(Row("as-of views", status="not built yet (issue 6)"))
    return rows


def _baseline(workdir: Path, source: Path, facts: list[dict[str, Any]], append: Row) -> Row:
    count = min(BASELINE_MAX, len(facts))
    journey = _journey(workdir / "baseline")
    try:
        with open(source, "rb") as handle:
            head = [next(handle) for _ in range(count)]
        summary, seconds = _timed(lambda: ingest(journey.ledger, head, batch_size=1))
    finally:
        journey.close()
    row = Row("append, one save per event (baseline)", events=summary.lines, seconds=seconds,
              limit_events=append.limit_events, limit_seconds=append.limit_seconds)
    if row.rate and append.rate:
        row.note = f"append is {append.rate / row.rate:.1f}x faster than one save per event"
    return row


def _analyst_row(projections: ProjectionStore) -> Row:
    total = int(projections.con.execute("SELECT count(*) FROM events").fetchall()[0][0])
    groups, seconds = _timed(lambda: projections.con.execute(
        "SELECT department, channel, count(*) FROM events GROUP BY ALL").fetchall())
    return Row("analyst query", events=total, seconds=seconds,
               note=f"SELECT department, channel, count(*) ... GROUP BY ALL: {len(groups)} groups "
                    "(events = rows scanned)")


# ------------------------------------------------------------------------- output


def _num(value: float | None, fmt: str) -> str:
    width = int(fmt.split(",")[0].split(".")[0])
    return f"{'-':>{width}}" if value is None else format(value, fmt)


def table(rows: list[Row]) -> str:
    lines = [f"{'path':<40} {'events':>9} {'seconds':>9} {'events/s':>11} {'limit ev/s':>11} "
             f"{'ratio':>6}  note"]
    for r in rows:
        if r.status != "ok":
            lines.append(f"{r.path:<40} {r.status}" + (f" ({r.note})" if r.note else ""))
            continue
        lines.append(f"{r.path:<40} {r.events:>9,} {_num(r.seconds, '9.3f')} "
                     f"{_num(r.rate, '11,.0f')} {_num(r.limit_rate, '11,.0f')} "
                     f"{_num(r.ratio, '6.2f')}  {r.note}")
    return "\n".join(lines)
