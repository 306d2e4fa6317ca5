"""The PostgreSQL rows of ``journey bench``: append, relay and ingest with 1, 2 and 4 workers
into a PostgreSQL event store, each next to the raw limit of the part beneath it, measured in
the same run on the same rows, with exactly-once checked on the result.

- **append (JSONL -> PostgreSQL)**: the workload file appended (``journey append``, in a
  worker process of its own, benchmarks/workers.py) into a fresh database. The limit is
  PostgreSQL taking EVERY row that append wrote (events, fact index, identities, customers,
  keys, hash chain, tracking), read back after it, with psycopg's ``COPY ... FROM STDIN`` into
  the same tables, empty, of a fresh database made by the ledger itself, cut into as many
  transactions as the append made (chunk i of every table in transaction i). The same rows
  through ``executemany`` are in the detail. Then the same file is appended a second time:
  it must record nothing and report every fact a duplicate.
- **relay (PostgreSQL -> Kafka)**: the relay from that store onto a fresh events topic, next
  to kafka-python producing the relay's own messages (the same bytes, headers and producer
  settings, :func:`benchmarks.workers.raw_produce_relay_messages`). Exactly once: as many
  messages on the topic as events in the store, no (stream, version) twice.
- **ingest (Kafka -> PostgreSQL), N workers**: the touchpoints produced once to a topic of
  :data:`benchmarks.pipeline.PARTITIONS` partitions (keyed as channels key them), then for
  each N a fresh database and N ``journey ingest --once`` processes of one consumer group; the
  seconds from their common start until the store tracks every partition at its end offset.
  Reported with the writer's conflicts (batches redone because another writer changed what
  they read), the workers lost (a process that exited non-zero or had to be killed) and
  exactly-once. The limit: kafka-python consuming the same topic.

Exactly once, for the append and the ingest: every valid input fact's event id is stored
once (input facts stored = input facts - refused), nothing else from the input is stored, and
no event id is stored twice (the events the ledger derives itself, source ``ledger``, count in
the last check only).

The ingest rows take the topic the workers consume from a step before the workers
(:data:`Before`): by default the routing step (``journey route``: one writer per customer),
timed on its own; ``--unrouted`` measures workers on the channels' own topic.
"""

from __future__ import annotations

import multiprocessing
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
import psycopg
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Composed, Identifier

from benchmarks import workers
from benchmarks.pipeline import PARTITIONS, consume_all, create_topics, produce, touchpoint_key
from benchmarks.rows import (
    INGEST_WORKERS,
    PG_APPEND,
    PG_PATHS,
    PG_RELAY,
    Row,
    _harness_importable,
    _say,
    _timed,
    ingest_path,
)
from consumers.jsonl_ingest import DEFAULT_BATCH
from consumers.kafka_ingest import tracking_name
from domain import identity
from journey.bootstrap import bootstrap
from journey.config import Settings

#: Facts per append transaction: ``journey append``'s default (consumers/jsonl_ingest.py).
APPEND_BATCH = DEFAULT_BATCH  # journey append's transactions
#: The bench's own throwaway server: PostgreSQL's default shared buffers rather than the test
#: harness's 16 MB (a 100k store's tables and indexes are ~150 MB); durability stays on.
SERVER_SETTINGS = {"shared_buffers": "128MB"}
#: Seconds the N ingest workers may take, at least, before they are counted lost.
INGEST_TIMEOUT = 300.0


# ------------------------------------------------------------------------- the server


@contextmanager
def server(url: str | None) -> Iterator[str]:
    """``url`` (an existing server: its database is only used to create and drop the bench's
    own databases) or a throwaway server from the test harness (Debian's binaries, never
    installed from here). Raises when neither can be had."""
    if url:
        with psycopg.connect(url, connect_timeout=10) as con:
            con.execute("SELECT 1")
        yield url
        return
    _harness_importable()
    from tests.harness.postgres import PostgresServer  # the test harness: Debian's binaries

    with PostgresServer(install=False, settings=SERVER_SETTINGS) as owned:
        yield owned.url


def url_of(url: str, dbname: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{dbname}"))


class Databases:
    """Fresh databases on one server, each made for one row and dropped at the end."""

    def __init__(self, url: str, prefix: str) -> None:
        self.url = url
        self.prefix = prefix
        self.made: list[str] = []

    def _admin(self, statement: str) -> None:
        with psycopg.connect(self.url, autocommit=True) as con:
            con.execute(statement.encode())

    def fresh(self, what: str) -> str:
        name = f"{self.prefix}_{what}"
        self._admin(f'CREATE DATABASE "{name}"')
        self.made.append(name)
        return url_of(self.url, name)

    def drop_all(self) -> None:
        for name in reversed(self.made):
            try:
                self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except psycopg.Error as error:  # a scratch database left behind is not a failure
                _say(f"could not drop database {name}: {error}")
        self.made.clear()


def store_settings(url: str, directory: Path, **kafka: Any) -> Settings:
    """The Settings a command has with JOURNEY_STORE=postgres and JOURNEY_POSTGRES_URL=url."""
    return Settings(data_dir=directory, store="postgres", postgres_url=url, **kafka)


# ------------------------------------------------------------------------- exactly once


def expected_ids(facts: list[dict[str, Any]]) -> set[str]:
    """The event id of each input fact (its idempotency key, domain/identity.py)."""
    return {str(identity.event_uuid(f["source"], f["id"])) for f in facts}


@dataclass(frozen=True)
class Stored:
    """What a store holds, against the input it was given."""

    events: int
    #: Stored events from the input (not derived by the ledger: source "ledger").
    from_input: int
    #: Distinct event ids in the store's fact index (journey_facts, the dedupe index).
    indexed: int
    #: Event ids stored more than once.
    duplicates: int
    #: Valid input facts not stored; stored input facts that were not in the input.
    missing: int
    unexpected: int

    @property
    def exactly_once(self) -> bool:
        return self.duplicates == 0 and self.missing == 0 and self.unexpected == 0

    def words(self) -> str:
        verdict = "exactly once" if self.exactly_once else "NOT exactly once"
        return (f"{verdict}: {self.from_input:,} input facts stored ({self.events:,} events, "
                f"{self.indexed:,} distinct ids indexed), {self.duplicates} twice, "
                f"{self.missing} missing, {self.unexpected} unexpected")


def stored_once(url: str, expected: set[str], refused: int) -> Stored:
    """Read every stored event's id and source (plain in the stored state; only the personal
    part is sealed) and count against the input: ``refused`` facts (rejected or dead-lettered)
    are the only ones allowed missing."""
    with psycopg.connect(url) as con:
        rows = con.execute(
            "SELECT f ->> 'event_id', f ->> 'source' FROM "
            "(SELECT convert_from(state, 'UTF8')::jsonb -> 'fact' AS f FROM journey_events) s"
        ).fetchall()
        [(indexed,)] = con.execute("SELECT count(DISTINCT event_id) FROM journey_facts").fetchall()
    ids = [str(r[0]) for r in rows]
    duplicates = len(ids) - len(set(ids))
    from_input = {str(r[0]) for r in rows if r[1] != "ledger"}
    unexpected = len(from_input - expected)
    missing = max(0, len(expected) - refused - len(from_input & expected))
    return Stored(events=len(rows), from_input=len(from_input), indexed=int(indexed),
                  duplicates=duplicates, missing=missing, unexpected=unexpected)


def _checked(row: Row, stored: Stored) -> None:
    row.exactly_once = stored.exactly_once
    row.detail.update(stored_events=stored.events, duplicate_event_ids=stored.duplicates,
                      missing_facts=stored.missing)


# ------------------------------------------------------------------------- append and its limit


@dataclass
class Table:
    name: str
    columns: list[str]
    rows: list[tuple[Any, ...]]


#: Tables read in log order; the others in the order they are stored in (no ORDER BY).
_ORDER = {"journey_events": "notification_id", "journey_chain": "position"}


def read_tables(url: str) -> list[Table]:
    """Every row of every table of the store's schema, as the driver returns them."""
    tables = []
    with psycopg.connect(url) as con, con.cursor(row_factory=tuple_row) as cur:
        names = [str(r[0]) for r in cur.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename").fetchall()]
        for name in names:
            columns = [str(r[0]) for r in cur.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' "
                "AND table_name = %s ORDER BY ordinal_position", (name,)).fetchall()]
            order = SQL(" ORDER BY {}").format(Identifier(_ORDER[name])) if name in _ORDER else SQL("")
            query = SQL("SELECT {} FROM {}{}").format(
                SQL(", ").join(map(Identifier, columns)), Identifier(name), order)
            tables.append(Table(name, columns, [tuple(r) for r in cur.execute(query).fetchall()]))
    return tables


def empty_like(url: str, directory: Path) -> None:
    """The store's tables, empty, in the fresh database at ``url``: made by the ledger itself
    (bootstrap creates the schema, with its indexes), then emptied of the rows it starts with."""
    journey = bootstrap(store_settings(url, directory))
    journey.close()
    with psycopg.connect(url) as con:
        names = [r[0] for r in con.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()]
        con.execute(SQL("TRUNCATE {}").format(SQL(", ").join(map(Identifier, names))))


def _chunk(table: Table, i: int, batches: int) -> list[tuple[Any, ...]]:
    size = -(-len(table.rows) // batches)
    return table.rows[i * size:(i + 1) * size]


def _load(url: str, tables: list[Table], batches: int,
          write: Callable[[Any, Table, list[tuple[Any, ...]]], None]) -> float:
    """Chunk i of every table in transaction i, each chunk written by ``write``: seconds."""
    with psycopg.connect(url) as con:
        def load() -> None:
            with con.cursor() as cur:
                for i in range(batches):
                    with con.transaction():
                        for table in tables:
                            chunk = _chunk(table, i, batches)
                            if chunk:
                                write(cur, table, chunk)

        return _timed(load)[1]


def _columns(table: Table) -> Composed:
    return SQL(", ").join(map(Identifier, table.columns))


def copy_load(url: str, tables: list[Table], batches: int) -> float:
    """COPY ... FROM STDIN of the chunks: seconds."""
    def write(cur: Any, table: Table, chunk: list[tuple[Any, ...]]) -> None:
        with cur.copy(SQL("COPY {} ({}) FROM STDIN").format(Identifier(table.name), _columns(table))) as copy:
            for row in chunk:
                copy.write_row(row)

    return _load(url, tables, batches, write)


def executemany_load(url: str, tables: list[Table], batches: int) -> float:
    """The same chunks through INSERT ... VALUES executemany (psycopg pipelines it): seconds."""
    def write(cur: Any, table: Table, chunk: list[tuple[Any, ...]]) -> None:
        cur.executemany(SQL("INSERT INTO {} ({}) VALUES ({})").format(
            Identifier(table.name), _columns(table), SQL(", ").join(SQL("%s") for _ in table.columns)), chunk)

    return _load(url, tables, batches, write)


def append_row(db: Databases, workdir: Path, source: Path, facts: list[dict[str, Any]],
               batch: int = APPEND_BATCH) -> tuple[Row, Settings]:
    """The append into a fresh database, its COPY limit, exactly-once and the second append;
    also the store's settings, for the relay row."""
    url = db.fresh("append")
    settings = store_settings(url, workdir / "pg-append")
    appended = workers.in_worker(workers.append, settings.data_dir, source, batch, settings)
    summary = appended.result
    _say(f"postgres append: {summary['lines'] / appended.seconds:,.0f}/s")
    tables = read_tables(url)
    rows_written = sum(len(t.rows) for t in tables)
    events = next(len(t.rows) for t in tables if t.name == "journey_events")
    batches = max(1, -(-int(summary["lines"]) // batch))
    copy_url = db.fresh("copy")
    empty_like(copy_url, workdir / "pg-copy")
    copy_s = copy_load(copy_url, tables, batches)
    many_url = db.fresh("executemany")
    empty_like(many_url, workdir / "pg-executemany")
    many_s = executemany_load(many_url, tables, batches)
    stored = stored_once(url, expected_ids(facts), refused=int(summary["rejected"]))
    again = workers.in_worker(workers.append, settings.data_dir, source, batch, settings)
    second = again.result
    second_ok = second["recorded"] == 0 and second["duplicates"] == second["lines"] - second["rejected"]
    row = Row(PG_APPEND, events=int(summary["lines"]), seconds=appended.seconds, limit_events=events,
              limit_seconds=copy_s, peak_rss_mib=appended.peak_rss_mib,
              note=(f"{summary['recorded']:,} recorded, {summary['rejected']:,} rejected; limit: COPY of "
                    f"every row the append wrote ({rows_written:,} rows in {len(tables)} tables, "
                    f"{batches} transactions like the append's); executemany of them: "
                    f"{events / many_s:,.0f} events/s; {stored.words()}; second append: "
                    f"{second['recorded']:,} recorded, {second['duplicates']:,} duplicates "
                    f"in {again.seconds:.2f} s"))
    _checked(row, stored)
    row.exactly_once = stored.exactly_once and second_ok
    row.detail.update(executemany_events_per_second=round(events / many_s, 1), rows_written=rows_written,
                      transactions=batches, second_append_recorded=second["recorded"],
                      second_append_duplicates=second["duplicates"],
                      second_append_seconds=round(again.seconds, 3))
    _say(f"postgres append: {row.rate or 0:,.0f}/s (COPY {row.limit_rate or 0:,.0f}/s, "
         f"executemany {events / many_s:,.0f}/s), {stored.words()}")
    return row, settings


# ------------------------------------------------------------------------- relay


def topic_headers(servers: str, topic: str) -> list[tuple[bytes, bytes]]:
    """(stream id, stream version) of every message on ``topic``, read to its end offsets."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False, group_id=None,
                             max_poll_records=5000)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        found: list[tuple[bytes, bytes]] = []
        deadline = time.monotonic() + 300
        while any(consumer.position(tp) < end for tp, end in ends.items()) and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                for r in records:
                    headers = dict(r.headers)
                    found.append((headers.get("stream_id", b""), headers.get("customer_version", b"")))
        return found
    finally:
        consumer.close()


def relay_row(settings: Settings, servers: str, prefix: str) -> Row:
    """The relay from the append's store onto a fresh events topic, next to raw produce of its
    own messages; exactly once: one message per stored event, no (stream, version) twice."""
    events_topic, raw = f"{prefix}-events", f"{prefix}-raw-events"
    create_topics(servers, events_topic, raw)
    settings = replace(settings, kafka_bootstrap=servers, events_topic=events_topic, partitions=PARTITIONS)
    limit = workers.in_worker(workers.raw_produce_relay_messages, settings, raw).result
    relayed = workers.in_worker(workers.relay, settings)
    assert settings.postgres_url is not None
    with psycopg.connect(settings.postgres_url) as con:
        [(stored,)] = con.execute("SELECT count(*) FROM journey_events").fetchall()
    on_topic = topic_headers(servers, events_topic)
    twice = len(on_topic) - len(set(on_topic))
    once = len(on_topic) == int(stored) and twice == 0
    row = Row(PG_RELAY, events=int(relayed.result["published"]), seconds=relayed.seconds,
              limit_events=int(limit["messages"]), limit_seconds=float(limit["seconds"]),
              peak_rss_mib=relayed.peak_rss_mib, exactly_once=once,
              note=(f"limit: raw kafka-python produce of the relay's own messages, same producer "
                    f"settings; {'exactly once' if once else 'NOT exactly once'}: {len(on_topic):,} "
                    f"messages on the topic for {int(stored):,} stored events, {twice} (stream, version) "
                    "twice"))
    row.detail.update(stored_events=int(stored), messages_on_topic=len(on_topic), duplicate_messages=twice)
    _say(f"postgres relay: {row.rate or 0:,.0f}/s (raw produce {row.limit_rate or 0:,.0f}/s)")
    return row


# ------------------------------------------------------------------------- ingest, N workers


@dataclass(frozen=True)
class Touchpoints:
    """The touchpoints as produced for the ingest rows, handed to the step before the workers."""

    bootstrap: str
    #: Where they were produced, keyed as channels key them (benchmarks.pipeline.touchpoint_key).
    topic: str
    partitions: int
    count: int
    #: For naming whatever else the step makes (topics, groups) in this run.
    prefix: str


#: A step before the workers: given the produced touchpoints, it returns the topic the ingest
#: workers consume (e.g. the touchpoints re-keyed by customer). Timed once, before the N runs.
Before = Callable[[Touchpoints], str]


def _end_offsets(servers: str, topic: str) -> dict[int, int]:
    """The offset after each partition's last record (a routed topic's commit markers take
    offsets of their own, which no worker ever stores)."""
    from kafka import KafkaConsumer, TopicPartition

    from consumers.kafka_ingest import record_ends

    consumer = KafkaConsumer(bootstrap_servers=servers, group_id=None)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        ends = consumer.end_offsets(tps)
    finally:
        consumer.close()
    return {tp.partition: int(end) for tp, end in record_ends(servers, ends).items()}


@dataclass
class _Run:
    seconds: float
    caught_up: bool
    results: list[dict[str, Any]]
    lost: int


def run_members(settings: Settings, topic: str, group: str, n: int, ends: dict[int, int],
                timeout: float) -> _Run:
    """N ingest processes of one group, started together once each has opened the store; the
    seconds until the store tracks every partition of ``topic`` at its end offset."""
    ctx = multiprocessing.get_context("spawn")
    ready: Any = ctx.Queue()
    results: Any = ctx.Queue()
    go = ctx.Event()
    members = [ctx.Process(target=workers.ingest_member, args=(settings, topic, group, ready, go, results),
                           name=f"ingest-{i}") for i in range(n)]
    journey = bootstrap(settings)  # the parent's view of the store: the tracked positions
    try:
        for member in members:
            member.start()
        waiting = time.monotonic() + 120
        started_members = 0
        while started_members < n and time.monotonic() < waiting:
            try:
                ready.get(timeout=1)
                started_members += 1
            except Exception:  # queue.Empty: check whether one died on the way
                if not any(m.is_alive() for m in members):
                    break
        recorder: Any = journey.app.recorder
        names = {p: tracking_name(topic, p) for p in ends}

        def caught_up() -> bool:
            for p, end in ends.items():
                done = recorder.max_tracking_id(names[p])
                if end > 0 and (done is None or done + 1 < end):
                    return False
            return True

        go.set()
        t0 = time.perf_counter()
        deadline = time.monotonic() + timeout
        done = False
        while time.monotonic() < deadline:
            if caught_up():
                done = True
                break
            if not any(m.is_alive() for m in members):
                done = caught_up()
                break
            time.sleep(0.05)
        seconds = time.perf_counter() - t0
        found: list[dict[str, Any]] = []
        finish = time.monotonic() + 60
        while len(found) < n and time.monotonic() < finish:
            try:
                found.append(results.get(timeout=1))
            except Exception:  # queue.Empty
                if not any(m.is_alive() for m in members):
                    break
        lost = 0
        for member in members:
            member.join(timeout=max(0.0, finish - time.monotonic()))
            if member.is_alive():
                member.kill()
                member.join()
            if member.exitcode != 0:
                lost += 1
        return _Run(seconds, done, found, lost)
    finally:
        journey.close()


def ingest_rows(db: Databases, servers: str, facts: list[dict[str, Any]], workdir: Path, prefix: str, *,
                counts: tuple[int, ...] = INGEST_WORKERS, topic: str | None = None,
                before: Before | None = None, timeout: float | None = None) -> list[Row]:
    """Produce ``facts`` once to ``topic`` (default: a fresh touchpoints topic), run ``before``
    (if any) for the topic to consume, time kafka-python consuming it (the limit), then for
    each N in ``counts`` a fresh database and N ingest workers of one group."""
    topic = topic or f"{prefix}-touchpoints"
    dlq = f"{prefix}-dlq"
    create_topics(servers, topic)
    from consumers import dlq as dead_letters

    dead_letters.ensure_topic(servers, dlq, partitions=1)
    produce(servers, topic, [(touchpoint_key(f), orjson.dumps(f)) for f in facts])
    before_s: float | None = None
    consumed = topic
    if before is not None:
        consumed, before_s = _timed(lambda: before(Touchpoints(servers, topic, PARTITIONS, len(facts),
                                                               prefix)))
        _say(f"postgres ingest: the step before the workers took {before_s:.2f} s, into {consumed}")
    ends = _end_offsets(servers, consumed)
    size = len(facts)  # every bench fact is valid: the routed topic holds them all, once
    seen, limit_s = _timed(lambda: consume_all(servers, consumed, size))
    expected = expected_ids(facts)
    rows = []
    for n in counts:
        url = db.fresh(f"ingest{n}")
        settings = store_settings(url, workdir / f"pg-ingest-{n}", kafka_bootstrap=servers,
                                  touchpoints_topic=consumed, dlq_topic=dlq, partitions=PARTITIONS)
        run = run_members(settings, consumed, f"{prefix}-ingest-{n}", n, ends,
                          timeout or max(INGEST_TIMEOUT, len(facts) / 200))
        refused = sum(int(r["dead_lettered"]) for r in run.results)
        stored = stored_once(url, expected, refused)
        conflicts = sum(int(r["conflicts"]) for r in run.results)
        splits = sum(int(r["splits"]) for r in run.results)
        recorded = sum(int(r["recorded"]) for r in run.results)
        row = Row(ingest_path(n), events=len(facts), seconds=run.seconds, limit_events=seen,
                  limit_seconds=limit_s,
                  peak_rss_mib=max((float(r["peak_rss_mib"]) for r in run.results), default=None),
                  note=(f"{n} journey ingest processes, one group, {PARTITIONS} partitions of {consumed}"
                        f"{'' if run.caught_up else ' (NOT caught up: timed out)'}: {recorded:,} recorded, "
                        f"{refused:,} dead-lettered; {conflicts} conflicts, {splits} batches split, "
                        f"{run.lost} workers lost; {stored.words()}; limit: raw kafka-python consume"))
        _checked(row, stored)
        row.exactly_once = stored.exactly_once and run.caught_up
        row.detail.update(workers=n, conflicts=conflicts, split_batches=splits, workers_lost=run.lost,
                          recorded=recorded, dead_lettered=refused)
        met = sorted({m for r in run.results for m in r.get("conflicts_met", ())})
        if met:
            row.note += "; conflicts met: " + " | ".join(met[:3])
        if before_s is not None:
            row.detail["before_seconds"] = round(before_s, 3)
            row.note += f"; the step before the workers: {before_s:.2f} s"
        if not run.caught_up:
            row.status = "timed out"
        rows.append(row)
        _say(f"postgres ingest, {n} worker(s): {row.rate or 0:,.0f}/s, {conflicts} conflicts, "
             f"{run.lost} lost, {'exactly once' if row.exactly_once else 'NOT exactly once'}")
    return rows


def routed_by_customer(db: Databases, workdir: Path) -> Before:
    """The product's step before the writers: ``journey route`` (consumers/routing.py) keys
    the touchpoints by the record each will be written to, into a topic of their own, against
    an empty store like the one each N starts from (so one routed topic serves every N)."""
    from consumers import dlq as dead_letters
    from consumers.routing import KafkaRouter

    def route(touchpoints: Touchpoints) -> str:
        target = f"{touchpoints.prefix}-by-customer"
        create_topics(touchpoints.bootstrap, target)
        dlq = f"{touchpoints.prefix}-route-dlq"
        dead_letters.ensure_topic(touchpoints.bootstrap, dlq, partitions=1)
        journey = bootstrap(store_settings(db.fresh("route"), workdir / "pg-route"))
        recorder: Any = journey.app.recorder

        def written(partition: int) -> int | None:
            done: int | None = recorder.max_tracking_id(tracking_name(target, partition))
            return done

        try:
            router = KafkaRouter(journey.app.index, written, bootstrap=touchpoints.bootstrap,
                                 topic=touchpoints.topic, routed_topic=target, dlq_topic=dlq,
                                 group=f"{touchpoints.prefix}-route",
                                 transactional_id=f"{touchpoints.prefix}-route", parse=journey.parse)
            try:
                stats = router.run(once=True)
            finally:
                router.close()
        finally:
            journey.close()
        _say(f"postgres ingest: routed {stats.routed:,} facts ({stats.waiting:,} wait for another "
             f"partition) at {stats.rate:,.0f}/s")
        return target

    return route


# ------------------------------------------------------------------------- all of them


def postgres_rows(facts: list[dict[str, Any]], source: Path, workdir: Path, *, postgres_url: str | None,
                  kafka: str | None, kafka_skipped: str, before: Before | None = None,
                  ingest_topic: str | None = None, counts: tuple[int, ...] = INGEST_WORKERS,
                  routed: bool = True) -> list[Row]:
    """Every PostgreSQL row (:data:`benchmarks.rows.PG_PATHS`) over ``facts`` (written in
    ``source``). ``kafka``: a broker for the relay and ingest rows, or None (they say
    ``kafka_skipped``). No server: every row says "skipped: no PostgreSQL".
    ``routed`` (the default, the product's distributed ingest): the ingest rows' step before the
    workers is :func:`routed_by_customer` unless ``before`` is given; False: the workers read
    the channels' topic as keyed by the channels."""
    with ExitStack() as stack:
        try:
            url = stack.enter_context(server(postgres_url))
        except Exception as error:  # no binaries, a server that would not start or answer
            text = str(error).strip()
            reason = text.splitlines()[0] if text else type(error).__name__
            _say(f"postgres paths skipped: {reason}")
            return [Row(p, status="skipped: no PostgreSQL", note=reason[:120]) for p in PG_PATHS]
        # A failure from here on is the path's, not a missing server: it propagates.
        run = uuid.uuid4().hex[:8]
        db = Databases(url, f"bench_{run}")
        stack.callback(db.drop_all)
        _say(f"postgres paths: {len(facts):,} facts")
        append, settings = append_row(db, workdir, source, facts)
        rows = [append]
        if kafka is None:
            return rows + [Row(p, status=kafka_skipped) for p in PG_PATHS[1:]]
        prefix = f"bench-pg-{run}"
        if routed and before is None:
            before = routed_by_customer(db, workdir)
        rows.append(relay_row(settings, kafka, prefix))
        rows.extend(ingest_rows(db, kafka, facts, workdir, prefix, counts=counts, topic=ingest_topic,
                                before=before))
        ran = {r.path for r in rows}
        return rows + [Row(p, status="skipped: not asked") for p in PG_PATHS if p not in ran]


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.postgres_rows --events N [--postgres URL] [--bootstrap HOST:PORT]
    [--json]``: the PostgreSQL rows alone, over the bench's workload of N facts."""
    import argparse
    import logging
    import sys
    import tempfile

    from benchmarks.rows import kafka_broker, table, workload
    from journey import demo_data
    from journey.runtime import tune_gc

    tune_gc()  # as the bench and the workers do
    parser = argparse.ArgumentParser(prog="python -m benchmarks.postgres_rows", description=main.__doc__)
    parser.add_argument("--events", type=int, default=24_000)
    parser.add_argument("--postgres", metavar="URL", help="an existing server (default: a throwaway one)")
    parser.add_argument("--bootstrap", help="an existing Kafka broker (default: a throwaway one)")
    parser.add_argument("--no-kafka", action="store_true", help="the append row alone")
    parser.add_argument("--unrouted", action="store_true",
                        help="ingest workers read the channels' topic as the channels keyed it (no route)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-pg-")))
        servers, _reason = (None, "") if args.no_kafka else kafka_broker(stack, args.bootstrap)
        facts = workload(args.events)
        source = workdir / "workload.jsonl"
        demo_data.write_jsonl(source, facts)
        rows = postgres_rows(facts, source, workdir, postgres_url=args.postgres, kafka=servers,
                             kafka_skipped="skipped: --no-kafka" if args.no_kafka else "skipped: no broker",
                             routed=not args.unrouted)
    if args.json:
        sys.stdout.write(orjson.dumps({"events": args.events, "rows": [r.to_json() for r in rows]},
                                      option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
