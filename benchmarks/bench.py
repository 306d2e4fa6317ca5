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
- ``cases --overdue`` (the query ``journey cases --overdue`` runs) and a customer lookup
  (``Journey.customer(ref)`` for one ordinary customer, median of 20);
- ``journey verify`` (re-hash every stored event, ``chain.verify_store``) vs hashlib sha256 over
  the same stored bytes, already in memory;
- the Kafka paths (relay, projection from Kafka, ingest, end to end) vs raw kafka-python
  produce and consume, when a broker is given or can be started;
- the PostgreSQL paths (benchmarks/postgres_rows.py: append vs COPY of every row it wrote,
  relay vs raw produce of its messages, ingest with 1, 2 and 4 workers vs raw consume), each
  with exactly-once checked, over their own workload of ``pg_events`` facts (default
  min(events, 100,000)), when a server is given or can be started (and, past the append, a
  broker);
- as-of views: two synthetic customers with ~1k and ~10k facts (calls, e-mails, SMS over 2025)
  are recorded after the rows above; ``as_of(app, customer, T, "occurred")`` with T in the
  middle of their history, rendered as ``journey customer REF --occurred-by T --json`` does,
  vs reading that customer's facts alone (``history_of``, no fold), median of a few runs.

``ratio`` is the path's rate over the limit's rate (1.0 = as fast as the raw part allows).

The append, the projection, the rebuild and the Kafka workers each run in a spawned process
of their own (:mod:`benchmarks.workers`), which reports its own seconds and peak memory.
``journey bench --growth 10000,100000`` (:func:`growth`) runs ``python -m benchmarks.bench`` once
per size in a fresh process and a fresh directory.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from benchmarks import baseline, workers
from benchmarks.rows import (
    PG_PATHS,
    SEED,
    Row,
    _say,
    _timed,
    kafka_broker,
    table,
    workload,
)
from consumers.jsonl_ingest import DEFAULT_BATCH, ingest
from consumers.log_follower import READ_CHUNK
from domain import personal
from domain.contact_policy import CHANNELS, ContactHistory, decide
from journey import demo_data
from journey.bootstrap import Journey, bootstrap
from journey.config import Settings
from journey.policy import load_policy
from journey.runtime import tune_gc
from journey.usecases.customers import LATEST_EVENTS as CUSTOMER_TIMELINE
from ledger import chain
from ledger.application import decode_rows, history_of
from projections.duckdb_store import EVENT_COLUMNS, SCHEMA, ProjectionStore, connect
from replay import asof

SQLITE_BATCH = DEFAULT_BATCH  # journey append's transactions; the raw limits use the same size
ARROW_BATCH = 20_000
BASELINE_MAX = 5000
DECISIONS = 1000
LOOKUPS = 20
#: The synthetic customers whose as-of views are timed: facts each, and their customer number.
HEAVY = ((1000, "C-981000"), (10_000, "C-990000"))
ASOF_RUNS = 5

KAFKA_PATHS = ("relay (store -> Kafka)", "ingest (Kafka -> store)", "projection from Kafka",
               "end to end via Kafka")
#: The PostgreSQL rows' workload by default: the first min(events, PG_EVENTS) facts.
PG_EVENTS = 100_000
#: Every path row a run prints, in order (Kafka rows are "skipped" without a broker).
PATHS = ("append (JSONL -> SQLite)", "append, one save per event (baseline)",
         "projection (store -> DuckDB)", "rebuild from store", "decode (stored events)",
         "can-contact", "analyst query",
         "cases --overdue", "customer lookup", "journey verify", *KAFKA_PATHS, *PG_PATHS,
         *(f"as-of view, {n // 1000}k events" for n, _ in HEAVY))
#: Rows without a limit of their own (a query: events = rows scanned or calls made).
NO_LIMIT = ("analyst query", "cases --overdue", "customer lookup")


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


def _fresh_like(journey: Journey, path: Path) -> sqlite3.Connection:
    """A fresh SQLite file with the store's schema, journal mode and synchronous setting."""
    mode, sync, schema, _ = _sqlite_settings(journey)
    con = sqlite3.connect(path, isolation_level=None)
    con.execute(f"PRAGMA journal_mode={mode}")
    con.execute(f"PRAGMA synchronous={sync}")
    for statement in schema:
        con.execute(statement)
    return con


def sqlite_limit(journey: Journey, path: Path) -> tuple[int, float]:
    """Raw sqlite3 inserts of the store's rows into a fresh file like it: (rows, seconds)."""
    table = _sqlite_settings(journey)[3]
    rows = _stored_rows(journey, table)
    con = _fresh_like(journey, path)
    try:
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


def schema_limit(journey: Journey, path: Path, batch: int = SQLITE_BATCH,
                 cache_kib: int | None = None) -> tuple[int, float]:
    """Raw sqlite3 inserts of EVERY row an append writes (the events and the ledger's index,
    key and chain tables) into a fresh file like the store: (events, seconds).

    The issue's limit (:func:`sqlite_limit`) inserts the events alone; the ledger also keeps
    several B-trees on random keys (event ids, customer ids), and at 1M events those, not the
    Python, bound an append. Rows of tables with a rowid go in their stored order; the others
    (WITHOUT ROWID: stored in key order) are shuffled with a fixed seed and cut into as many
    chunks as there are event batches, each chunk sorted, as the writer inserts a batch's
    index rows; chunk i of every table goes into transaction i. ``batch`` events per
    transaction; ``cache_kib``: the connection's page cache (SQLite's default: 2 MiB)."""
    table = _sqlite_settings(journey)[3]
    recorder: Any = journey.app.recorder
    #: name -> (columns, rows, stored in key order)
    tables: dict[str, tuple[list[str], list[tuple[Any, ...]], bool]] = {}
    with recorder.datastore.transaction(commit=False) as c:
        c.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'")
        for name, sql in c.fetchall():
            c.execute(f"PRAGMA table_info({name})")
            columns = [str(r[1]) for r in c.fetchall()]
            keyed = "WITHOUT ROWID" in str(sql).upper()
            c.execute(f"SELECT {', '.join(columns)} FROM {name}{'' if keyed else ' ORDER BY rowid'}")
            rows = [tuple(r) for r in c.fetchall()]
            if keyed:
                random.Random(SEED).shuffle(rows)
            tables[str(name)] = (columns, rows, keyed)
    events = len(tables[table][1])
    batches = max(1, -(-events // batch))
    con = _fresh_like(journey, path)
    if cache_kib:
        con.execute(f"PRAGMA cache_size = -{cache_kib}")
    try:
        def load() -> None:
            for i in range(batches):
                con.execute("BEGIN")
                for name, (columns, rows, keyed) in tables.items():
                    size = -(-len(rows) // batches)
                    chunk = rows[i * size:(i + 1) * size]
                    if keyed:
                        chunk.sort(key=lambda row: row[0])
                    con.executemany(f"INSERT INTO {name} ({', '.join(columns)}) VALUES "
                                    f"({', '.join('?' * len(columns))})", chunk)
                con.execute("COMMIT")

        _, seconds = _timed(load)
    finally:
        con.close()
    return events, seconds


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
    con = connect(str(path))
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
               detail={"median_ms": statistics.median(path) * 1000,
                       "p99_ms": _percentile(path, 0.99) * 1000},
               note=(f"{count} events: median {statistics.median(path) * 1000:.3f} ms, "
                     f"p99 {_percentile(path, 0.99) * 1000:.3f} ms; indexed once: median "
                     f"{statistics.median(limit) * 1000:.3f} ms, "
                     f"p99 {_percentile(limit, 0.99) * 1000:.3f} ms"))


# ------------------------------------------------------------------------- queries, verify


def cases_row(journey: Journey) -> Row:
    """What ``journey cases --overdue`` runs (clocks judged now, the default complaint deadline)."""
    from journey.usecases.cases import answer_days, query_cases

    total = int(journey.projections.con.execute("SELECT count(*) FROM cases").fetchall()[0][0])
    days = answer_days(None, journey.settings.complaint_days)
    found, seconds = _timed(lambda: query_cases(journey, now=None, days=days, overdue_only=True))
    return Row("cases --overdue", events=total, seconds=seconds,
               note=f"{len(found):,} overdue of {total:,} cases (events = cases scanned)")


def lookup_row(journey: Journey, ref: str | None, calls: int = LOOKUPS) -> Row:
    """``Journey.customer(ref)`` for one ordinary customer: resolve, fold, timeline."""
    if ref is None:
        return Row("customer lookup", status="no customer to look up")
    times = []
    for _ in range(calls):
        found, seconds = _timed(lambda: journey.customer(ref))
        if found is None:
            return Row("customer lookup", status=f"nobody known as {ref}")
        times.append(seconds)
    median = statistics.median(times)
    return Row("customer lookup", events=calls, seconds=sum(times),
               detail={"median_ms": median * 1000, "p99_ms": max(times) * 1000},
               note=f"Journey.customer({ref!r}), {len(found['timeline'])} timeline rows: "
                    f"median {median * 1000:.2f} ms of {calls} (events = lookups)")


def _first_phone(facts: list[dict[str, Any]]) -> str | None:
    for fact in facts:
        if fact.get("type") == "customer.registered" and fact.get("data", {}).get("phone"):
            return str(fact["data"]["phone"])
    return None


def verify_row(journey: Journey) -> Row:
    """``journey verify`` (chain.verify_store) vs sha256 over the same stored bytes."""
    report, seconds = _timed(lambda: chain.verify_store(journey.app.recorder))
    states = [r.state for rows in chain.StoreReader(journey.app.recorder).scan() for r in rows]
    sha256 = hashlib.sha256

    def hash_all() -> None:
        for state in states:
            sha256(state).digest()

    _, limit_s = _timed(hash_all)
    size = sum(len(s) for s in states)
    return Row("journey verify", events=report.events, seconds=seconds, limit_events=len(states),
               limit_seconds=limit_s, status="ok" if report.intact else "BROKEN",
               note=(f"{report.chained:,} links checked, {'intact' if report.intact else 'BROKEN'}; "
                     f"limit: hashlib sha256 over the {size / 1e6:,.1f} MB of stored states"))


def _helpers_note(measured: workers.Measured) -> str:
    """What a catch-up's decode workers (projections/preparing.py) held at their peak."""
    if measured.helpers_peak_rss_mib is None:
        return "; decoded in the worker itself"
    return f"; decode workers' peak {measured.helpers_peak_rss_mib:,.0f} MiB each"


# ------------------------------------------------------------------------- decode

#: Each of the decode row's timings is the best of this many runs over the same rows in memory.
DECODE_RUNS = 3


def _best(fn: Callable[[], Any], runs: int = DECODE_RUNS) -> float:
    return min(_timed(fn)[1] for _ in range(runs))


def decode_row(journey: Journey) -> Row:
    """What every reader of the log does first (the projection, the rebuild, the Kafka
    projector): stored rows into facts (``decode_rows``), chunk by chunk as the projection
    reads them, with the key ring emptied first as in a fresh process. The rows are read into
    memory once before; the read is not timed. Limits, on the same bytes: ``orjson.loads`` of
    the stored states alone, and the AES-256-GCM decryption of the envelopes alone (nonce and
    ciphertext split, the key schedules made, beforehand)."""
    app = journey.app
    recorder: Any = app.recorder
    chunks: list[list[Any]] = []
    after = 0
    while batch := recorder.select_rows(after, READ_CHUNK):
        chunks.append(batch)
        after = batch[-1][0]
    events = sum(len(c) for c in chunks)

    def decode() -> None:
        app.keys.reset()
        for chunk in chunks:
            decode_rows(app, chunk)

    def parse() -> None:
        loads = orjson.loads
        for chunk in chunks:
            [loads(row[4]) for row in chunk]

    sealed = []
    for chunk in chunks:
        for row in chunk:
            fact = orjson.loads(row[4])["fact"]
            key = app.keys.key_of(UUID(fact["customer_uuid"])) if personal.ENVELOPE in fact else None
            if key is not None:
                raw = base64.b64decode(fact[personal.ENVELOPE])
                sealed.append((AESGCM(key), raw[:12], raw[12:], fact["event_id"].encode()))

    def decrypt() -> None:
        for cipher, nonce, data, event_id in sealed:
            cipher.decrypt(nonce, data, event_id)

    seconds, parse_s = _best(decode), _best(parse)
    decrypt_s = _best(decrypt) if sealed else None
    aes_rate = len(sealed) / decrypt_s if decrypt_s else None
    row = Row("decode (stored events)", events=events, seconds=seconds, limit_events=events,
              limit_seconds=parse_s,
              note=(f"decode_rows, {READ_CHUNK:,} rows per call, keys loaded as a fresh process "
                    f"does; limit: orjson.loads of the stored states; AES-GCM decrypt of the "
                    f"{len(sealed):,} envelopes alone: {aes_rate or 0:,.0f}/s; best of {DECODE_RUNS}"))
    if aes_rate is not None:
        row.detail["aes_gcm_events_per_second"] = round(aes_rate, 1)
    row.detail["microseconds_per_event"] = round(seconds / max(events, 1) * 1e6, 2)
    return row


# ------------------------------------------------------------------------- as-of views


def heavy_customer(n: int, number: str, seed: int = SEED) -> list[dict[str, Any]]:
    """A customer with ``n`` facts: a registration, then calls, e-mails and SMS over 2025
    (sorted by occurred_at, local Madrid times between 09:00 and 21:00)."""
    rng = random.Random(f"{seed}-{number}")
    digits = number.split("-")[1]
    start = datetime(2025, 1, 1, tzinfo=UTC)
    moments = sorted(start + timedelta(days=rng.randrange(365), seconds=rng.randrange(8 * 3600, 20 * 3600))
                     for _ in range(n))
    facts: list[dict[str, Any]] = [{
        "type": "customer.registered", "id": f"bench-{number}-0", "source": "bench",
        "customer": {"customer_id": number}, "occurred_at": moments[0].isoformat(),
        "data": {"name": f"Bench Heavy {number}", "phone": f"+3469{digits:0>7}",
                 "email": f"heavy{digits}@example.es", "timezone": "Europe/Madrid"}}]
    kinds = ("call.outbound", "call.outbound", "email.sent", "sms.sent")
    for i, when in enumerate(moments[1:], start=1):
        kind = rng.choice(kinds)
        purpose = rng.choice(("commercial", "commercial", "service"))
        data: dict[str, Any] = (
            {"purpose": purpose, "campaign": rng.choice(("fibra", "movil", "tv")),
             "outcome": rng.choice(("no_answer", "not_interested", "answered"))}
            if kind == "call.outbound" else {"purpose": purpose, "subject": f"message {i}"})
        facts.append({"type": kind, "id": f"bench-{number}-{i}", "source": "bench",
                      "customer": {"customer_id": number}, "occurred_at": when.isoformat(),
                      "department": rng.choice(("sales", "customer_care", "billing")),
                      "agent": f"B-{rng.randrange(40)}", "data": data})
    return facts


@dataclass
class AsOfTimes:
    #: the API's as-of document (latest CUSTOMER_TIMELINE timeline events), one per run
    paged: list[float]
    #: the first of them: it makes the record's fold checkpoint when it has enough facts
    first: float
    #: the whole document (every timeline row: ``journey customer REF --occurred-by T --json``)
    full: list[float]
    #: history_of alone: the limit column
    read: list[float]
    doc: dict[str, Any]
    stored: int


def _time_asof(journey: Journey, customer_id: str, at: datetime, runs: int) -> AsOfTimes:
    read = history_of(journey.app)
    t0 = time.perf_counter()
    doc = asof.document(journey.app, customer_id, at, "occurred", CUSTOMER_TIMELINE)
    first = time.perf_counter() - t0
    times = AsOfTimes([], first, [], [], doc or {}, 0)
    for _ in range(runs):
        t0 = time.perf_counter()
        times.doc = asof.document(journey.app, customer_id, at, "occurred", CUSTOMER_TIMELINE) or {}
        t1 = time.perf_counter()
        asof.as_of(journey.app, customer_id, at, "occurred").to_json()
        t2 = time.perf_counter()
        times.stored = len(read(customer_id))
        t3 = time.perf_counter()
        times.paged.append(t1 - t0)
        times.full.append(t2 - t1)
        times.read.append(t3 - t2)
    return times


def asof_rows(journey: Journey, runs: int = ASOF_RUNS) -> list[Row]:
    """Record the HEAVY customers, then time each one's as-of view at the middle of its history
    (the API's document: the view and the latest CUSTOMER_TIMELINE timeline events) vs reading its
    facts alone (history_of, no fold); medians of ``runs``, after a first view that makes the
    record's fold checkpoint (replay/asof_checkpoints.py) when it has enough facts."""
    from journey.references import reference_key

    rows = []
    for n, number in HEAVY:
        path = f"as-of view, {n // 1000}k events"
        facts = heavy_customer(n, number)
        summary = ingest(journey.ledger, (orjson.dumps(f) for f in facts), batch_size=SQLITE_BATCH)
        customer_id = asof.resolve(journey.app, reference_key(number))
        if customer_id is None or summary.rejected:
            reason = summary.rejected[0] if summary.rejected else "not resolved"
            rows.append(Row(path, status=f"setup failed: {reason}"))
            continue
        at = datetime.fromisoformat(facts[n // 2]["occurred_at"])
        t = _time_asof(journey, customer_id, at, runs)
        path_s, limit_s = statistics.median(t.paged), statistics.median(t.read)
        full_s = statistics.median(t.full)
        kept = int(t.doc["as_of"]["facts"]) if t.doc else 0
        rows.append(Row(path, events=t.stored, seconds=path_s, limit_events=t.stored, limit_seconds=limit_s,
                        detail={"median_ms": path_s * 1000, "limit_median_ms": limit_s * 1000,
                                "first_ms": t.first * 1000, "full_median_ms": full_s * 1000},
                        note=(f"{number}: {kept:,} of {t.stored:,} facts occurred by {at.date()}; "
                              f"latest {CUSTOMER_TIMELINE} events, median of {runs}: {path_s * 1000:.1f} ms "
                              f"(first view {t.first * 1000:.1f} ms; whole timeline "
                              f"{full_s * 1000:.1f} ms); limit: history_of alone {limit_s * 1000:.1f} ms")))
    return rows


# ------------------------------------------------------------------------- Kafka


def kafka_rows(events: int, workdir: Path, servers: str | None, skipped: str = "") -> list[Row]:
    """The Kafka rows through the broker ``servers``; without one, each says "skipped: no
    broker" (``skipped``: why)."""
    from benchmarks.pipeline import run_pipeline

    if servers is None:
        return [Row(p, status="skipped: no broker", note=skipped[:120]) for p in KAFKA_PATHS]
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
            ("relay (store -> Kafka)", "relay (store -> journey.events)",
             step("raw produce of the relay's messages (limit)"),
             "limit: raw kafka-python produce of the relay's own messages, same producer settings"),
            ("ingest (Kafka -> store)", "ingest (touchpoints -> store)", (consumed, consume_s),
             "limit: raw kafka-python consume"),
            ("projection from Kafka", "projection (journey.events -> DuckDB)",
             (consumed, consume_s), "limit: raw kafka-python consume"),
            ("end to end via Kafka", "end to end (produce..projection)", slower,
             "produce, ingest, relay, projection; limit: the slower of raw produce/consume")):
        n, seconds = step(name)
        rows.append(Row(path, events=n, seconds=seconds, limit_events=limit_n,
                        limit_seconds=limit_s, note=note, peak_rss_mib=steps[name].get("peak_rss_mib")))
    return rows


# ------------------------------------------------------------------------- the run


def run(events: int, *, kafka_bootstrap: str | None = None, with_kafka: bool = True,
        workdir: Path, postgres_url: str | None = None, with_postgres: bool = True,
        pg_events: int | None = None, pg_before: Callable[[Any], str] | None = None,
        pg_ingest_topic: str | None = None) -> list[Row]:
    """Every row of :data:`PATHS`, in order. The PostgreSQL rows run over the first
    ``pg_events`` facts' workload (default min(events, PG_EVENTS)) on ``postgres_url`` (a server
    the bench may create databases on) or a throwaway server; ``pg_before`` and
    ``pg_ingest_topic``: the ingest rows' step before the workers and the topic the touchpoints
    go to (benchmarks.postgres_rows.ingest_rows)."""
    workdir.mkdir(parents=True, exist_ok=True)
    facts = workload(events)
    source = workdir / "workload.jsonl"
    n = demo_data.write_jsonl(source, facts)
    _say(f"{n:,} facts of {max(1, events // 12):,} customers in {source}")
    rows: list[Row] = []

    # The append, the projection and the rebuild each run in a worker process of their own, as
    # their commands do, so that each one's peak memory is measured (benchmarks/workers.py).
    ledger_dir = workdir / "ledger"
    appended = workers.in_worker(workers.append, ledger_dir, source, SQLITE_BATCH)
    summary = appended.result
    journey = _journey(ledger_dir)
    try:
        stored, limit_s = sqlite_limit(journey, workdir / "raw.sqlite")
        every, every_s = schema_limit(journey, workdir / "raw-schema.sqlite")
        append = Row("append (JSONL -> SQLite)", events=summary["lines"], seconds=appended.seconds,
                     limit_events=stored, limit_seconds=limit_s, peak_rss_mib=appended.peak_rss_mib,
                     note=(f"{summary['recorded']:,} recorded, {summary['rejected']:,} rejected, "
                           f"{stored:,} stored events; limit: raw sqlite3 of the events, "
                           f"{SQLITE_BATCH}/txn; raw sqlite3 of every row an append writes "
                           f"(events and index tables): {every / every_s:,.0f} events/s"))
        append.detail["schema_limit_events_per_second"] = round(every / every_s, 1)
        rows.append(append)
        _say(f"append: {append.rate or 0:,.0f}/s (limit {append.limit_rate or 0:,.0f}/s), "
             f"worker peak {appended.peak_rss_mib:,.0f} MiB")

        rows.append(_baseline(workdir, source, facts, append))
        _say("baseline done")

        journey.close()  # the projection worker opens the store and the DuckDB file itself
        projected = workers.in_worker(workers.project, ledger_dir)
        journey = _journey(ledger_dir)
        limit_n, limit_s = arrow_limit(journey.projections, workdir / "raw.duckdb")
        projection = Row("projection (store -> DuckDB)", events=projected.result,
                         seconds=projected.seconds, limit_events=limit_n, limit_seconds=limit_s,
                         peak_rss_mib=projected.peak_rss_mib,
                         note=f"limit: Arrow inserts of the events rows, {ARROW_BATCH:,}/txn"
                              + _helpers_note(projected))
        if projected.helpers_peak_rss_mib is not None:
            projection.detail["decode_workers_peak_rss_mib"] = projected.helpers_peak_rss_mib
        rows.append(projection)
        _say(f"projection: {projection.rate or 0:,.0f}/s, worker peak {projected.peak_rss_mib:,.0f} MiB")

        rebuilt = workers.in_worker(workers.rebuild, ledger_dir, workdir / "rebuild")
        rows.append(Row("rebuild from store", events=rebuilt.result["events"],
                        seconds=rebuilt.result["seconds"], limit_events=limit_n,
                        limit_seconds=limit_s, peak_rss_mib=rebuilt.peak_rss_mib,
                        note="rebuild.from_store: every projection into a fresh DuckDB file"
                             + _helpers_note(rebuilt)))
        if rebuilt.helpers_peak_rss_mib is not None:
            rows[-1].detail["decode_workers_peak_rss_mib"] = rebuilt.helpers_peak_rss_mib
        _say(f"rebuild done, worker peak {rebuilt.peak_rss_mib:,.0f} MiB")
        decoded = decode_row(journey)
        rows.append(decoded)
        _say(f"decode: {decoded.rate or 0:,.0f}/s "
             f"(orjson.loads of the states {decoded.limit_rate or 0:,.0f}/s)")

        rows.append(contact_row(journey.projections))
        rows.append(_analyst_row(journey.projections, workdir))
        rows.append(cases_row(journey))
        rows.append(lookup_row(journey, _first_phone(facts)))
        _say("queries done")
        rows.append(verify_row(journey))
        _say("verify done")
        later = asof_rows(journey)
        _say("as-of views done")
    finally:
        journey.close()

    with ExitStack() as stack:
        servers, reason = kafka_broker(stack, kafka_bootstrap) if with_kafka else (None, "")
        if with_kafka:
            rows.extend(kafka_rows(events, workdir, servers, reason))
        else:
            rows.extend(Row(p, status="skipped: --no-kafka") for p in KAFKA_PATHS)
        if with_postgres:
            from benchmarks.postgres_rows import postgres_rows

            pg_n = min(events, PG_EVENTS) if pg_events is None else pg_events
            pg_facts, pg_source = facts, source
            if pg_n != events:
                pg_facts = workload(pg_n)
                pg_source = workdir / "pg-workload.jsonl"
                demo_data.write_jsonl(pg_source, pg_facts)
            rows.extend(postgres_rows(
                pg_facts, pg_source, workdir, postgres_url=postgres_url, kafka=servers,
                kafka_skipped="skipped: --no-kafka" if not with_kafka else "skipped: no broker",
                before=pg_before, ingest_topic=pg_ingest_topic))
        else:
            rows.extend(Row(p, status="skipped: --no-postgres") for p in PG_PATHS)
    rows.extend(later)
    return rows


def _baseline(workdir: Path, source: Path, facts: list[dict[str, Any]], append: Row) -> Row:
    """The first facts through a plain eventsourcing Application, one save per fact
    (benchmarks/baseline.py)."""
    count = min(BASELINE_MAX, len(facts))
    with open(source, "rb") as handle:
        head = [next(handle) for _ in range(count)]
    (recorded, rejected), seconds = _timed(lambda: baseline.run(workdir / "baseline.sqlite", head))
    row = Row("append, one save per event (baseline)", events=recorded + rejected, seconds=seconds,
              limit_events=append.limit_events, limit_seconds=append.limit_seconds)
    if row.rate and append.rate:
        row.note = (f"append is {append.rate / row.rate:.1f}x faster than a plain eventsourcing "
                    "Application saving one event per call")
    return row


#: The analyst row scans at least this many events: the projection's rows, repeated.
ANALYST_EVENTS = 5_000_000


def _analyst_row(projections: ProjectionStore, workdir: Path) -> Row:
    """The analyst query over >= 5M events, as the issue asks, at every workload size: the
    projection's typed event columns are repeated into a scratch DuckDB file until they reach
    ANALYST_EVENTS rows (the JSON columns are left out: analysts filter on the typed ones)."""
    total = int(projections.con.execute("SELECT count(*) FROM events").fetchall()[0][0])
    copies = max(1, -(-ANALYST_EVENTS // max(total, 1)))
    path = workdir / "analyst.duckdb"
    path.unlink(missing_ok=True)
    con = projections.con
    con.execute(f"ATTACH '{path}' AS analyst")
    try:
        con.execute(
            "CREATE TABLE analyst.events AS SELECT e.customer_id, e.type, e.occurred_at, "
            "e.department, e.agent, e.channel, e.purpose, e.campaign, e.case_id, e.lag_s "
            "FROM events e, range(?) copies", [copies])
        scanned = int(con.execute("SELECT count(*) FROM analyst.events").fetchall()[0][0])
        groups, seconds = _timed(lambda: con.execute(
            "SELECT department, channel, count(*) FROM analyst.events GROUP BY ALL").fetchall())
    finally:
        con.execute("DETACH analyst")
        path.unlink(missing_ok=True)
    return Row("analyst query", events=scanned, seconds=seconds,
               note=f"SELECT department, channel, count(*) ... GROUP BY ALL: {len(groups)} groups over "
                    f"{scanned:,} rows ({copies}x the {total:,} projected events)")


# ------------------------------------------------------------------------- output


# ------------------------------------------------------------------------- one size per process


def document(events: int, rows: list[Row]) -> dict[str, Any]:
    return {"events": events, "rows": [r.to_json() for r in rows],
            "peak_rss_mib": round(workers.peak_rss_mib(), 1)}


def _pg_events(text: str) -> int:
    try:
        n = int(text.replace("_", ""))
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"--pg-events takes a number of events, at least 1: {text!r}")
    return n


def postgres_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--postgres", metavar="URL",
                        help="an existing PostgreSQL server (postgresql://user@host:port/dbname) the "
                             "bench may create and drop databases on (default: start a throwaway one)")
    parser.add_argument("--no-postgres", action="store_true", help="skip the PostgreSQL paths")
    parser.add_argument("--pg-events", type=_pg_events, metavar="N",
                        help=f"facts in the PostgreSQL paths' workload (default: --events, at most "
                             f"{PG_EVENTS:,})")


def postgres_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """run()'s PostgreSQL keywords from the options :func:`postgres_options` adds."""
    return {"postgres_url": args.postgres, "with_postgres": not args.no_postgres,
            "pg_events": args.pg_events}


def _postgres_argv(postgres_url: str | None, with_postgres: bool, pg_events: int | None) -> list[str]:
    if not with_postgres:
        return ["--no-postgres"]
    return ([*(["--postgres", postgres_url] if postgres_url else []),
             *(["--pg-events", str(pg_events)] if pg_events else [])])


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.bench --events N --json [--workdir DIR]``: one run, one process
    (what ``journey bench --growth`` starts per size)."""
    import logging

    # The raw limits run in this process: with the same collector settings as the workers, or
    # a 1M-fact workload held here makes every young collection slow the limit down.
    tune_gc()
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench", description=main.__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--workdir", type=Path, help="scratch directory (default: a temporary one)")
    parser.add_argument("--bootstrap", help="an existing Kafka broker")
    parser.add_argument("--no-kafka", action="store_true")
    postgres_options(parser)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--out", type=Path,
                        help="with --json: write the document to this file (what --growth reads)")
    args = parser.parse_args(argv)
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    with ExitStack() as stack:
        workdir = args.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-")))
        rows = run(args.events, kafka_bootstrap=args.bootstrap, with_kafka=not args.no_kafka,
                   workdir=workdir, **postgres_arguments(args))
    if args.json:
        text = orjson.dumps(document(args.events, rows), option=orjson.OPT_INDENT_2).decode() + "\n"
        if args.out:
            args.out.write_text(text)
        else:
            sys.stdout.write(text)
    else:
        print(table(rows))
        print(f"peak RSS {workers.peak_rss_mib():,.0f} MiB")
    return 0


# ------------------------------------------------------------------------- growth


def growth(sizes: list[int], workdir: Path, *, kafka_bootstrap: str | None = None,
           with_kafka: bool = True, postgres_url: str | None = None, with_postgres: bool = True,
           pg_events: int | None = None) -> list[dict[str, Any]]:
    """One ``python -m benchmarks.bench`` process per size, each in a fresh directory: the
    documents they print (rows and that process's peak RSS)."""
    root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    docs = []
    for n in sizes:
        # The document comes back in a file: a run's standard output is not only ours (DuckDB
        # once printed a progress bar into it and a 1M run's result was lost).
        out = workdir / f"n{n}.json"
        argv = [sys.executable, "-m", "benchmarks.bench", "--events", str(n), "--json",
                "--workdir", str(workdir / f"n{n}"), "--out", str(out)]
        if not with_kafka:
            argv.append("--no-kafka")
        elif kafka_bootstrap:
            argv += ["--bootstrap", kafka_bootstrap]
        argv += _postgres_argv(postgres_url, with_postgres, pg_events)
        _say(f"growth: {n:,} events in a fresh process")
        done = subprocess.run(argv, stdout=subprocess.DEVNULL, env=env, cwd=root, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"python -m benchmarks.bench --events {n} exited {done.returncode}")
        docs.append(orjson.loads(out.read_bytes()))
    return docs


def _by_path(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["path"]: r for r in doc["rows"]}


def growth_table(docs: list[dict[str, Any]]) -> str:
    """events/s per path at each size, then the latencies and the peak RSS of each process."""
    sizes = [int(d["events"]) for d in docs]
    rows = [_by_path(d) for d in docs]
    head = f"{'events/s':<40}" + "".join(f"{n:>14,}" for n in sizes)
    lines = [head]

    def cell(row: dict[str, Any] | None, key: str, fmt: str) -> str:
        value = None if row is None or row.get("status") != "ok" else (
            row.get(key) if key in row else row.get("detail", {}).get(key))
        return f"{'-':>14}" if value is None else f"{format(value, fmt):>14}"

    for path in PATHS:
        if all(path not in r or r[path]["status"] != "ok" for r in rows):
            continue
        lines.append(f"{path:<40}" + "".join(cell(r.get(path), "events_per_second", ",.0f") for r in rows))
    lines.append("")
    lines.append(f"{'latency, ms (median)':<40}" + "".join(f"{n:>14,}" for n in sizes))
    for path in ("customer lookup", "can-contact", *(p for p in PATHS if p.startswith("as-of"))):
        lines.append(f"{path:<40}" + "".join(cell(r.get(path), "median_ms", ",.2f") for r in rows))
    for n, _ in HEAVY:
        path = f"as-of view, {n // 1000}k events"
        lines.append(f"{'  limit: history_of alone':<40}"
                     + "".join(cell(r.get(path), "limit_median_ms", ",.2f") for r in rows))
    lines.append("")
    lines.append(f"{'peak RSS of each worker, MiB':<40}" + "".join(f"{n:>14,}" for n in sizes))
    for path in PATHS:
        if any(r.get(path, {}).get("peak_rss_mib") for r in rows):
            lines.append(f"{path:<40}" + "".join(cell(r.get(path), "peak_rss_mib", ",.0f") for r in rows))
    lines.append(f"{'the bench process itself':<40}"
                 + "".join(f"{float(d['peak_rss_mib']):>14,.0f}" for d in docs))
    return "\n".join(lines)


_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
            "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39")


def svg_plot(docs: list[dict[str, Any]], width: int = 760, height: int = 420) -> str:
    """A log-log line plot of events/s per path against the workload size (hand-written SVG)."""
    import math
    from html import escape

    sizes = [int(d["events"]) for d in docs]
    series = []
    for path in PATHS:
        points = [(n, float(r[path]["events_per_second"]))
                  for n, r in zip(sizes, map(_by_path, docs), strict=True)
                  if path in r and r[path]["status"] == "ok" and r[path].get("events_per_second")]
        if points:
            series.append((path, points))
    rates = [v for _, pts in series for _, v in pts] or [1.0]
    left, right, top, bottom = 70, 250, 20, 50
    x0, x1 = math.log10(min(sizes)), math.log10(max(sizes))
    y0, y1 = math.floor(math.log10(min(rates))), math.ceil(math.log10(max(rates)))
    if x1 == x0:
        x0, x1 = x0 - 0.5, x1 + 0.5
    if y1 == y0:
        y1 += 1

    def x(n: float) -> float:
        return left + (math.log10(n) - x0) / (x1 - x0) * (width - left - right)

    def y(v: float) -> float:
        return height - bottom - (math.log10(v) - y0) / (y1 - y0) * (height - top - bottom)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="11">',
           f'<rect width="{width}" height="{height}" fill="white"/>']
    for e in range(y0, y1 + 1):
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{y(10 ** e):.1f}" y2="{y(10 ** e):.1f}" '
                   'stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{y(10 ** e) + 4:.1f}" text-anchor="end">1e{e}</text>')
    for n in sizes:
        out.append(f'<line x1="{x(n):.1f}" x2="{x(n):.1f}" y1="{top}" y2="{height - bottom}" stroke="#eee"/>')
        out.append(f'<text x="{x(n):.1f}" y="{height - bottom + 16}" text-anchor="middle">{n:,}</text>')
    out.append(f'<text x="{(left + width - right) / 2:.0f}" y="{height - 12}" text-anchor="middle">'
               'events in the workload (log)</text>')
    out.append(f'<text x="16" y="{(top + height - bottom) / 2:.0f}" text-anchor="middle" '
               f'transform="rotate(-90 16 {(top + height - bottom) / 2:.0f})">events/s (log)</text>')
    for i, (path, points) in enumerate(series):
        colour = _COLOURS[i % len(_COLOURS)]
        coords = " ".join(f"{x(n):.1f},{y(v):.1f}" for n, v in points)
        out.append(f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="2"/>')
        out.extend(f'<circle cx="{x(n):.1f}" cy="{y(v):.1f}" r="3" fill="{colour}"/>' for n, v in points)
        ly = top + 14 * i + 8
        out.append(f'<line x1="{width - right + 12}" x2="{width - right + 30}" y1="{ly}" y2="{ly}" '
                   f'stroke="{colour}" stroke-width="2"/>')
        out.append(f'<text x="{width - right + 34}" y="{ly + 4}">{escape(path)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
