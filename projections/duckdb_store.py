"""The projections' DuckDB file: analyst tables and customer views, written batch by batch.

Each batch is one DuckDB transaction holding the new rows AND the store position they come
from, so a crash loses or doubles nothing: after a restart the runner resumes after the last
committed position, and a batch at or below it is skipped. Rows go in through Arrow (hundreds
of thousands of rows/s; ``executemany`` manages about a thousand).

Only one process may hold a DuckDB file open for writing; analysts read Parquet snapshots.
"""

from __future__ import annotations

import bisect
import ctypes
import gc
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa

from domain import catalogue
from ledger.application import StoredFact, record_history
from projections import customer_view, derived, quarantine, readable
from projections.customer_view import View
from projections.rules import DEFAULT_RULES, Rules

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS projection_position (
        name VARCHAR PRIMARY KEY, position BIGINT NOT NULL, updated_at TIMESTAMPTZ)""",
    """CREATE TABLE IF NOT EXISTS events (
        position BIGINT NOT NULL, event_id VARCHAR NOT NULL, customer_id VARCHAR NOT NULL,
        stream_id VARCHAR NOT NULL, stream_version INTEGER NOT NULL, type VARCHAR NOT NULL,
        type_version INTEGER NOT NULL, occurred_at TIMESTAMPTZ NOT NULL,
        occurred_local VARCHAR NOT NULL, recorded_at TIMESTAMPTZ NOT NULL, source VARCHAR NOT NULL,
        source_id VARCHAR NOT NULL, department VARCHAR, agent VARCHAR, channel VARCHAR,
        purpose VARCHAR, campaign VARCHAR, case_id VARCHAR, lag_s DOUBLE, ref JSON, data JSON)""",
    """CREATE TABLE IF NOT EXISTS customers (
        customer_id VARCHAR NOT NULL, customer_number VARCHAR, kind VARCHAR, name VARCHAR,
        birthday DATE, language VARCHAR, timezone VARCHAR, street VARCHAR, number VARCHAR,
        postal_code VARCHAR, city VARCHAR, phone VARCHAR, email VARCHAR, twitter VARCHAR,
        identities VARCHAR[], events BIGINT, first_seen TIMESTAMPTZ, last_seen TIMESTAMPTZ,
        cases INTEGER, open_cases INTEGER, open_promises INTEGER, products INTEGER,
        active_objections INTEGER, departments VARCHAR[], merged_from VARCHAR[])""",
    """CREATE TABLE IF NOT EXISTS customer_views (
        customer_id VARCHAR NOT NULL, position BIGINT NOT NULL, view VARCHAR NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS identities (
        identity VARCHAR NOT NULL, customer_id VARCHAR NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS customer_aliases (
        alias VARCHAR NOT NULL, customer_id VARCHAR NOT NULL)""",
    # Point lookups (a department's search, a customer's timeline) must not slow down as the
    # ledger grows: without these a lookup scans the table (12-19 ms at 1M events, linear in
    # size); with them 0.4-0.7 ms. They cost 10-15% of bulk projection throughput (measured).
    "CREATE INDEX IF NOT EXISTS events_by_customer ON events(customer_id)",
    "CREATE INDEX IF NOT EXISTS identities_by_key ON identities(identity)",
    "CREATE INDEX IF NOT EXISTS views_by_customer ON customer_views(customer_id)",
    quarantine.SCHEMA,
]

EVENT_COLUMNS = ("position", "event_id", "customer_id", "stream_id", "stream_version", "type",
                 "type_version", "occurred_at", "occurred_local", "recorded_at", "source",
                 "source_id", "department", "agent", "channel", "purpose", "campaign", "case_id",
                 "lag_s", "ref", "data")
CUSTOMER_COLUMNS = ("customer_id", "customer_number", "kind", "name", "birthday", "language",
                    "timezone", "street", "number", "postal_code", "city", "phone", "email",
                    "twitter", "identities", "events", "first_seen", "last_seen", "cases",
                    "open_cases", "open_promises", "products", "active_objections", "departments",
                    "merged_from")

_DELETED: View = {}
#: Views kept in memory between batches, packed (LZ4-compressed JSON: about 2 KB for the
#: average view of a 1M-event ledger, against 18 KB as Python dicts).
VIEW_CACHE_SIZE = 200_000
#: Customers whose rows a transaction's end writes per statement (bounds the decoded views:
#: 5,000 at a time put ~85 MiB more on a 1M projection's peak; the statements cost no more).
WRITE_SLICE = 1_000

#: The writer's DuckDB memory; it spills to disk beyond. With DuckDB's default (80% of the
#: machine's RAM) its buffers alone took over 1 GB of a 1M-event projection's process; at
#: 300MB it used 280 MB at each transaction's end, at 150MB 140 MB at no cost in speed, and
#: at 100MB a merge's UPDATE of the events table failed with DuckDB's Out of Memory Error.
MEMORY_LIMIT = "200MB"
#: After a transaction of at least this many facts (and after each further chunk of one),
#: freed memory is handed back to the OS.
RELEASE_AFTER = 50_000

#: A view as kept between chunks and batches: (JSON length, LZ4 frame of the JSON).
Packed = tuple[int, bytes]


#: A stored view not yet parsed: packed (from the cache or this transaction) or JSON text.
Stored = Packed | str


def parse_stored(raw: Stored) -> View:
    view: View = orjson.loads(raw if isinstance(raw, str) else unpack_doc(raw))
    return view


def pack(view: View) -> Packed:
    doc = orjson.dumps(view)
    return len(doc), pa.compress(doc, codec="lz4", asbytes=True)


def unpack_doc(packed: Packed) -> bytes:
    size, blob = packed
    return bytes(pa.decompress(blob, decompressed_size=size, codec="lz4", asbytes=True))


def connect(path: str, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection for this project: without DuckDB's progress bar, which it prints to
    standard output for any query over 2 s and which would corrupt ``--json`` output (a 1M-event
    bench run lost its result document to it)."""
    con = duckdb.connect(path, read_only=read_only)
    con.execute("SET enable_progress_bar = false")  # a session option: not settable at connect
    return con


class ProjectionStore:
    """Owns the DuckDB connection: applies batches, answers the readers' queries."""

    def __init__(self, path: str | Path, name: str = "main", read_only: bool = False,
                 start: int = 0, memory_limit: str = MEMORY_LIMIT, rules: Rules = DEFAULT_RULES) -> None:
        """``start``: the position before the first (0 for the store's log, -1 for offsets).
        ``memory_limit``: DuckDB's, for this file (each file is its own DuckDB instance).
        ``rules``: the ledger's configured rules the derived rows (and views rendered from
        this store) apply."""
        self.memory_limit = memory_limit
        self.rules = rules
        self.path = str(path)
        self.name = name
        self.con = connect(self.path, read_only=read_only)
        if not read_only:
            self.con.execute(f"SET memory_limit = '{memory_limit}'")
            for statement in SCHEMA:
                self.con.execute(statement)
            for table in derived.tables():
                self.con.execute(table.ddl)
            self.con.execute(
                "INSERT INTO projection_position SELECT ?, ?, now() WHERE NOT EXISTS "
                "(SELECT 1 FROM projection_position WHERE name = ?)", [name, start, name])
        self.aliases: dict[str, str] = dict(
            self.con.execute("SELECT alias, customer_id FROM customer_aliases").fetchall())
        #: Reads one customer's facts from the event store (``ledger.application.history_of``):
        #: an unmerge rebuilds both records from the source of truth. Set by the composition root.
        self.history: Callable[[str], list[StoredFact]] | None = None
        #: Views as last committed, kept between batches: this process is the file's only
        #: writer (DuckDB's lock), so the cache cannot go stale; a rollback clears it.
        self.cache: dict[str, Packed] = {}
        #: The customers with a row in customer_views (read once, kept up to date by the
        #: writes): a customer not in it is new, and needs no query to find that out.
        self.stored: set[str] | None = None
        #: The reader named in this file's quarantine entries.
        self.reader = quarantine.PROJECTION

    def close(self) -> None:
        self.con.close()

    def compact(self) -> None:
        """Rewrite the file without its free blocks (after a customer was forgotten).

        DuckDB leaves the old versions of updated and deleted rows in free blocks of the file;
        a forgotten customer's name would stay readable there. The live tables are copied into
        a new file, which then replaces this one (only this process has the file open)."""
        if self.path == ":memory:":
            return
        fresh = self.path + ".compact"
        for leftover in (fresh, fresh + ".wal"):
            if os.path.exists(leftover):
                os.remove(leftover)
        [(current,)] = self.con.execute("SELECT current_database()").fetchall()
        self.con.execute("CHECKPOINT")
        self.con.execute(f"ATTACH '{fresh}' AS journey_compacted")
        self.con.execute(f'COPY FROM DATABASE "{current}" TO journey_compacted')
        self.con.execute("DETACH journey_compacted")
        self.con.close()
        os.replace(fresh, self.path)
        if os.path.exists(self.path + ".wal"):
            os.remove(self.path + ".wal")
        self.con = connect(self.path)
        self.con.execute(f"SET memory_limit = '{self.memory_limit}'")

    def position(self, cursor: str | None = None) -> int:
        """The last source position applied: a store notification id, or a Kafka offset.

        ``cursor`` names the source (default: this store's name, the notification log); a
        Kafka partition is ``kafka:TOPIC:PARTITION`` and starts at -1 (nothing applied).
        """
        row = self.con.execute("SELECT position FROM projection_position WHERE name = ?",
                               [cursor or self.name]).fetchall()
        if row:
            return int(row[0][0])
        return 0 if cursor is None else -1

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self.con.begin()
        try:
            yield
        except BaseException:
            self.con.rollback()
            self.cache.clear()
            self.stored = None
            self.aliases = dict(
                self.con.execute("SELECT alias, customer_id FROM customer_aliases").fetchall())
            raise
        self.con.commit()

    def apply(self, batch: Sequence[StoredFact], before_commit: Any = None,
              refuse: Mapping[int, str] | None = None) -> int:
        """Project one batch from the notification log; returns how many facts were new.

        A replayed batch (positions at or below the recorded one) projects nothing.
        ``refuse``: positions to quarantine with these reasons (found failing on their own).
        """
        return self.apply_chunks([batch], before_commit, refuse=refuse)

    def apply_chunks(self, chunks: Iterable[Sequence[StoredFact]], before_commit: Any = None,
                     groups: dict[str, str] | None = None, end: int | None = None,
                     refuse: Mapping[int, str] | None = None) -> int:
        """Project consecutive batches of the log in ONE transaction; returns the new facts.

        Each chunk's events rows and record moves are written as they come (so only one
        chunk's facts are in memory), but each touched customer's view, ``customers``,
        ``identities`` and derived rows once, at the end: a customer touched by ten chunks
        was rewritten ten times, on tables that grow with the ledger (the 1M slowdown).

        ``groups`` (record -> root of its group, ledger/record_groups.py): the chunks hold a
        stretch of the log record group by record group rather than in log order, and ``end``
        is the last position of that stretch. A fact that needs log order (its view already
        holds a later fact, or a merge reaches outside its group) raises
        :class:`LogOrderNeeded` and the transaction is rolled back. Read that way, every group
        but the chunk's last is complete when its chunk ends: its customers' rows are written
        then (:meth:`_BatchProjection.settle`), so memory holds one chunk's groups whatever the
        transaction's length, and each customer is written once per transaction.

        A fact the readers cannot handle (projections/readable.py) is quarantined in the same
        transaction (projections/quarantine.py) and not counted.
        """
        with self._transaction(), _no_cyclic_gc():
            done = self.position()
            projection = _BatchProjection(self, [], self.history)
            projection.groups = groups
            projection.refuse = refuse or {}
            last = done
            count = 0
            for chunk in chunks:
                fresh = [sf for sf in chunk if sf.position > done]
                if not fresh:
                    continue
                projection.fold_chunk(fresh)
                if groups is not None:
                    projection.settle(fresh)
                last = max(last, fresh[-1].position)
                count += len(fresh)
                if count >= RELEASE_AFTER:  # a catch-up, not a live follower's few facts
                    release_memory()  # the chunk's facts and views: ~25 MiB off the peak
            if end is not None:
                last = max(last, end)
            if not count and last == done:
                return 0
            if count:
                projection.finish()
            self._advance(self.name, last)
            if before_commit is not None:
                before_commit()
        if projection.forgotten_any:
            self.compact()
        if count >= RELEASE_AFTER:
            release_memory()
        return count - projection.held

    def apply_tracked(self, cursor: str, chunks: Iterable[Sequence[tuple[int, StoredFact]]],
                      history: Callable[[str], list[StoredFact]] | None = None,
                      before_commit: Any = None, release_after: int = RELEASE_AFTER) -> int:
        """Project Kafka records ``(offset, fact)`` of one partition, with the offset, in ONE
        transaction; returns the new facts.

        Records at or below the partition's recorded offset are skipped (a rebalance or a
        restart redelivers them); a fact at or below its customer's applied store position
        is skipped too (the relay redelivers after a crash). ``history(customer_id)`` reads
        a merged-away customer's facts from the store when their view lives elsewhere.

        The records come in consecutive chunks (what :meth:`apply_chunks` does for the log):
        each chunk's facts are folded and its events rows written as it comes, the views at
        the end. A caller that decodes each chunk when it is asked for holds one chunk's facts
        at a time, not the transaction's (the Kafka projector's Python peak grew with its
        largest transaction). From ``release_after`` records on, freed memory is handed back
        after each chunk and at the end."""
        count = 0
        with self._transaction(), _no_cyclic_gc():
            done = self.position(cursor)
            projection = _BatchProjection(self, [], history or self.history)
            projection.partitioned = True
            last: int | None = None
            for chunk in chunks:
                count += len(chunk)
                fresh = [(offset, sf) for offset, sf in chunk if offset > done]
                if fresh:
                    last = fresh[-1][0]
                    projection.fold_chunk([sf for _, sf in fresh])
                # Before the next chunk is made: a generator's next chunk is built while the
                # loop variable still holds this one.
                del chunk, fresh
                if count >= release_after:
                    release_memory()
            if last is None:
                return 0
            if projection.applied or projection.held:  # else all redeliveries: only the offset moves
                projection.finish()
            self._advance(cursor, last)
            if before_commit is not None:
                before_commit()
        if projection.forgotten_any:
            self.compact()
        if count >= release_after:
            release_memory()
        return projection.applied

    def _advance(self, cursor: str, position: int) -> None:
        self.con.execute("DELETE FROM projection_position WHERE name = ?", [cursor])
        self.con.execute("INSERT INTO projection_position VALUES (?, ?, now())", [cursor, position])

    def cursors(self) -> dict[str, int]:
        return dict(self.con.execute("SELECT name, position FROM projection_position").fetchall())

    # ------------------------------------------------------------------------ readers

    def resolve(self, identity_key: str) -> str | None:
        """The customer an identity key (``phone:+34...``) or a ledger id names."""
        rows = self.con.execute("SELECT customer_id FROM identities WHERE identity = ? LIMIT 1",
                                [identity_key]).fetchall()
        if rows:
            return str(rows[0][0])
        candidate = identity_key.split(":", 1)[-1]
        candidate = self.aliases.get(candidate, candidate)
        rows = self.con.execute("SELECT customer_id FROM customer_views WHERE customer_id = ?",
                                [candidate]).fetchall()
        return str(rows[0][0]) if rows else None

    def load_views(self, customer_ids: Sequence[str]) -> dict[str, View]:
        """Stored views (the folded state) of these customers; absent ones are not returned.

        Fresh objects each time (the cache keeps them packed); a rolled-back batch clears
        the cache, so only committed state survives a failure.
        """
        return {cid: parse_stored(raw) for cid, raw in self.load_docs(customer_ids).items()}

    def load_docs(self, customer_ids: Sequence[str]) -> dict[str, Stored]:
        """:meth:`load_views` before parsing: packed from the cache, else JSON from the file.

        A projection parses each one when it first folds into it: a 20k-fact chunk touches
        ~15k customers, and all their views as dicts at once were ~270 MB at 1M events."""
        cache = self.cache
        found: dict[str, Stored] = {cid: cache[cid] for cid in customer_ids if cid in cache}
        stored = self.stored_ids()
        missing = [cid for cid in customer_ids if cid not in found and cid in stored]
        if missing:
            if len(missing) == 1:  # an equality the index answers (IN over a list scans)
                rows = self.con.execute("SELECT customer_id, view FROM customer_views WHERE customer_id = ?",
                                        missing).fetchall()
            else:
                rows = self.con.execute(
                    "SELECT customer_id, view FROM customer_views WHERE customer_id IN "
                    "(SELECT unnest(?::VARCHAR[]))", [missing]).fetchall()
            found.update(rows)
        return found

    def stored_ids(self) -> set[str]:
        if self.stored is None:
            self.stored = {str(r[0]) for r in self.con.execute(
                "SELECT customer_id FROM customer_views").fetchall()}
        return self.stored

    def timeline(self, customer_id: str, limit: int | None = None) -> list[dict[str, Any]]:
        sql = ("SELECT position, event_id, type, occurred_local, "
               "strftime(recorded_at AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S.%fZ') AS recorded_at, "
               "source, source_id, "
               "department, agent, channel, purpose, campaign, case_id, lag_s, data "
               "FROM events WHERE customer_id = ? ORDER BY occurred_at, position")
        params: list[Any] = [customer_id]
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        cursor = self.con.execute(sql, params)
        names = [d[0] for d in cursor.description]
        rows = []
        for values in cursor.fetchall():
            row = dict(zip(names, values, strict=True))
            row["occurred_at"] = row.pop("occurred_local")
            row["data"] = orjson.loads(row["data"]) if row["data"] else {}
            rows.append(row)
        mark_late(rows)
        return rows

    def quarantined(self, limit: int | None = None, newest_first: bool = False) -> list[quarantine.Entry]:
        """The facts this file's projection set aside, in log order (or the newest first)."""
        return quarantine.load(self.con, limit, newest_first)

    def quarantine_count(self) -> int:
        return quarantine.count(self.con)

    def reapply(self, sf: StoredFact) -> str | None:
        """Fold a quarantined fact into the projection now (the code or an upcaster can read
        it at last), out of log order as a late upload is, and drop its entry, in one
        transaction. Returns None when it was applied, else why not (its entry says so)."""
        reason = readable.problem(sf)
        if reason is None:
            try:
                with self._transaction(), _no_cyclic_gc():
                    projection = _BatchProjection(self, [], self.history)
                    projection.again = True
                    projection.fold_chunk([sf])
                    projection.finish()
                    self.con.execute("DELETE FROM quarantine WHERE position = ?", [sf.position])
                return None
            except quarantine.FACT_ERRORS as error:
                reason = quarantine.failure(error)
        self.con.execute("UPDATE quarantine SET reason = ? WHERE position = ?", [reason, sf.position])
        return reason

    def drop_entry(self, entry: quarantine.Entry) -> None:
        """Forget a quarantine entry whose event is no longer in the store, and its mark in
        the customer's view, in one transaction."""
        with self._transaction():
            projection = _BatchProjection(self, [], self.history)
            owner = entry.customer_id
            if owner is not None:
                owner = self.aliases.get(owner, owner)
                view = projection._view(owner)
                if view is not _DELETED and entry.position in view.get("quarantined", ()):
                    _unmark(view, entry.position)
                    projection.dirty[owner] = pack(view)
                    projection.finish()
            self.con.execute("DELETE FROM quarantine WHERE position = ?", [entry.position])

    def table_counts(self) -> dict[str, int]:
        # fetchall, never fetchone: DuckDB 2 refuses further work on a connection whose last
        # result was not read to the end.
        return {t: int(self.con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0])
                for t in ("events", "customers", "customer_views", "identities")}


class LogOrderNeeded(Exception):
    """A stretch of the log read record group by record group holds a fact whose fold needs
    the log's order: read the stretch again in log order (consumers/log_follower.py)."""


class _BatchProjection:
    """Folds one batch into views and rows, then writes them with set-based statements."""

    def __init__(self, store: ProjectionStore, batch: Sequence[StoredFact],
                 history: Callable[[str], list[StoredFact]] | None = None) -> None:
        self.store = store
        self.batch = batch
        self.history = history
        self.aliases = store.aliases
        self.views: dict[str, View] = {}
        self.rows: dict[str, list[Any]] = {c: [] for c in EVENT_COLUMNS}
        #: Alias changes, in order: ("merge", absorbed, survivor, position) or ("split", absorbed, members,
        #: event ids of the absorbed records' facts).
        self.moves: list[tuple[Any, ...]] = []
        #: Customers whose stored views were read in bulk for this chunk.
        self.loaded: set[str] = set()
        #: Those views not parsed yet (each is parsed when first folded into).
        self.docs: dict[str, Stored] = {}
        #: Views this transaction changed, packed after each chunk (None: deleted, merged
        #: away): only one chunk's views are Python objects at a time, the rest are ~9x smaller.
        self.dirty: dict[str, Packed | None] = {}
        #: Customer -> the view sections this batch fed ("*": merged or split: everything).
        self.fed: dict[str, set[str]] = {}
        #: A private fold (rebuilding a record from the store): never reads or writes the file.
        self.private = False
        #: One partition's file (Kafka): records keyed elsewhere keep their views in their own
        #: partition's file, so a record split off by an unmerge is dropped here, not restored.
        self.partitioned = False
        #: Customers forgotten in this chunk: their rows lose ``ref`` and ``data``.
        self.forgotten: set[str] = set()
        #: Somebody was forgotten in this transaction (the file is compacted afterwards).
        self.forgotten_any = False
        #: Facts folded (not redeliveries) in this transaction.
        self.applied = 0
        #: record -> the aliases that (may) point at it: a merge moves them without scanning
        #: every alias (23k merges at 1M events made that quadratic). Entries may be stale:
        #: the aliases dict is checked before an alias is moved.
        self.pointing: dict[str, list[str]] | None = None
        #: Read record group by record group (ledger/record_groups.py): record -> its group's
        #: root; None: in log order.
        self.groups: dict[str, str] | None = None
        #: Positions to quarantine whatever the checks say (they failed on their own).
        self.refuse: Mapping[int, str] = {}
        #: Facts quarantined in this transaction.
        self.held = 0
        #: Folding quarantined facts again: a view holding later facts does not make them
        #: redeliveries, and their marks go.
        self.again = False

    def _pointing(self) -> dict[str, list[str]]:
        if self.pointing is None:
            self.pointing = {}
            for alias, target in self.aliases.items():
                self.pointing.setdefault(target, []).append(alias)
        return self.pointing

    def _absorbed_view(self, customer_id: str) -> View:
        """The view of a customer being merged away: here, or rebuilt from the store.

        With Kafka, a prospect's events may sit in another partition (another file); the
        store is the source of truth, so their facts are read from it and folded afresh.
        """
        if self.private:
            return self._view(customer_id)
        local = self.views.get(customer_id) or self._load([customer_id]).get(customer_id)
        if local is not None or self.history is None:
            return self._view(customer_id)
        rebuilt = _BatchProjection(self.store, self.history(customer_id), self.history)
        rebuilt.aliases = {}  # a private fold: it must not move anybody in this file
        rebuilt.private = True
        for sf in rebuilt.batch:
            if readable.problem(sf) is None:
                rebuilt._fold(sf, record_row=False)
        return rebuilt.views.get(customer_id) or self._view(customer_id)

    def _rebuild(self, root: str, before: int, without: str | None = None) -> tuple[View, set[str], set[str]]:
        """``root``'s view from the store as of position ``before`` (exclusive): its own facts
        and those of every record merged into it, except ``without``'s. Returns the view, the
        records it is made of and the event ids of their facts."""
        if self.history is None:
            raise RuntimeError("customer.unmerged needs the event store (ProjectionStore.history)")
        gathered = record_history(self.history, root,
                                  lambda sf: sf.position < before and readable.problem(sf) is None, without)
        members, split_off = gathered.members, gathered.split_off
        private = _BatchProjection(self.store, gathered.facts, self.history)
        private.aliases = {}
        private.private = True
        for sf in private.batch:
            kind = sf.fact["type"]
            if kind in ("customer.merged", "customer.unmerged") and sf.fact["data"]["from"] in split_off:
                marked = private._view(private._owner(sf))
                customer_view.apply(marked, sf.fact,
                                    customer_view.entry_of(sf.fact, sf.position, sf.recorded_at.isoformat()),
                                    None)
                marked["merged_from"] = [m for m in marked["merged_from"] if m not in split_off]
                continue  # the markers stay in the survivor's history; the record they name does not
            private._fold(sf, record_row=False)
        view = private.views.get(root)
        if view is None or view is _DELETED:
            view = customer_view.new_view(root)
        if without is not None:
            view["merged_from"] = [m for m in view["merged_from"] if m != without]
        return view, members, {sf.fact["event_id"] for sf in private.batch}

    def _owner(self, sf: StoredFact) -> str:
        stream_customer: str = sf.fact["customer_uuid"]
        return self.aliases.get(stream_customer, stream_customer)

    def _view(self, customer_id: str) -> View:
        view = self.views.get(customer_id)
        if view is None:
            # Customers of the batch were read in bulk (docs): absent there, and not put
            # away packed since (dirty), means new.
            if (customer_id in self.docs or customer_id in self.dirty
                    or (customer_id not in self.loaded and not self.private)):
                view = self._load([customer_id]).get(customer_id)
                self.docs.pop(customer_id, None)
            if view is None:
                view = customer_view.new_view(customer_id)
            self.views[customer_id] = view
        return view

    def fold_chunk(self, chunk: Sequence[StoredFact]) -> int:
        """Fold a chunk and write its events rows and record moves (views wait for finish);
        quarantine the facts the readers cannot handle."""
        batch, held = self._screen(chunk)
        aliases = self.aliases
        before = dict(aliases)
        wanted = {aliases.get(sf.fact["customer_uuid"], sf.fact["customer_uuid"]) for sf in batch}
        # The records merged away in this chunk too: one bulk read, not a point read each
        # (about 1 ms apiece on a cold cache: 6,000 per 200k facts).
        wanted.update(sf.fact["data"]["from"] for sf in batch if sf.fact["type"] == "customer.merged")
        wanted.update(aliases.get(cid, cid) for _, _, cid in held if cid is not None)
        self.docs = self._load_docs(sorted(wanted))
        self.loaded = wanted
        last, pinned = _last_uses(batch, aliases)
        dirty, views = self.dirty, self.views
        applied = 0
        for i, sf in enumerate(batch):
            customer_id = aliases.get(sf.fact["customer_uuid"], sf.fact["customer_uuid"])
            if self.again:
                _unmark(self._view(customer_id), sf.position)
                self._fold(sf)
                applied += 1
            elif sf.position > self._view(customer_id)["position"]:
                self._fold(sf)
                applied += 1
            elif self.groups is not None:
                # Not a redelivery (the log has none): a fact of another group folded into
                # this view first.
                raise LogOrderNeeded(f"position {sf.position} after a later fact of {customer_id}")
            # else a redelivery: this customer's view already holds it
            if last.get(customer_id) == i and customer_id not in pinned:
                # The chunk's last fact of this customer: put the view away packed now, as
                # the chunk's end does, so only the views of customers still to come are
                # dicts (a later use, if any, unpacks it again from dirty). A merge or an
                # unmerge changes owners, but the records it involves are pinned.
                view = views.pop(customer_id, None)
                if view is not None:
                    dirty[customer_id] = None if view is _DELETED else pack(view)
        self.applied += applied
        if held:
            self._hold(held)
        if applied:
            self._flush_rows(before)
        self.rows = {c: [] for c in EVENT_COLUMNS}
        self.moves = []
        self.forgotten = set()
        for cid, view in self.views.items():
            self.dirty[cid] = None if view is _DELETED else pack(view)
        self.views = {}
        self.docs = {}
        self.loaded = set()
        return applied

    def _screen(self, chunk: Sequence[StoredFact]
                ) -> tuple[list[StoredFact], list[tuple[StoredFact, str, str | None]]]:
        """The chunk's facts the readers can handle, and the others with their reasons and
        customers (when known)."""
        refuse = self.refuse
        good: list[StoredFact] = []
        held: list[tuple[StoredFact, str, str | None]] = []
        for sf in chunk:
            reason = refuse.get(sf.position) or readable.problem(sf)
            if reason is None:
                good.append(sf)
            else:
                held.append((sf, reason, readable.customer_of(sf)))
        return good, held

    def _hold(self, held: Sequence[tuple[StoredFact, str, str | None]]) -> None:
        """Mark each held fact in its customer's view and write its quarantine entry."""
        entries = []
        for sf, reason, record in held:
            owner = None if record is None else self.aliases.get(record, record)
            if owner is not None:
                view = self._view(owner)
                if view is not _DELETED:
                    marks = view.setdefault("quarantined", [])
                    if sf.position not in marks:
                        bisect.insort(marks, sf.position)
            entries.append(quarantine.entry_of(sf, self.store.reader, reason, owner))
        self.held += len(held)
        if self.private:
            return
        _over(self.store.con, "INSERT OR IGNORE INTO quarantine SELECT *, now() FROM arrow_batch",
              pa.Table.from_pylist([e.to_json() for e in entries], schema=_QUARANTINE_SCHEMA))

    def _load_docs(self, customer_ids: Sequence[str]) -> dict[str, Stored]:
        """:meth:`_load` without parsing."""
        dirty = self.dirty
        found: dict[str, Stored] = {}
        rest = []
        for cid in customer_ids:
            if cid in dirty:
                packed = dirty[cid]
                if packed is not None:
                    found[cid] = packed
            else:
                rest.append(cid)
        if rest:
            found.update(self.store.load_docs(rest))
            self._uncache(rest)
        return found

    def _uncache(self, customer_ids: Sequence[str]) -> None:
        """Drop the cached copies of views this transaction has read: it keeps its own (dirty)
        and puts them back when it ends. Both at once were 60-90 MiB of a 1M projection; a
        rollback clears the cache anyway, and a view read but not changed is read again from
        the file when next needed."""
        if not self.private:
            cache = self.store.cache
            for cid in customer_ids:
                cache.pop(cid, None)

    def _load(self, customer_ids: Sequence[str]) -> dict[str, View]:
        """Views as this transaction left them, else as stored; absent ones are not returned."""
        docs = self.docs  # read in bulk for this chunk, not parsed yet
        raw = {cid: docs[cid] for cid in customer_ids if cid in docs}
        raw.update(self._load_docs([cid for cid in customer_ids if cid not in docs]))
        return {cid: parse_stored(doc) for cid, doc in raw.items()}

    def finish(self) -> None:
        """Write every touched customer's view and derived rows."""
        self._write_views()

    def _flush_rows(self, aliases_before: dict[str, str]) -> None:
        con = self.store.con
        if self.moves and all(move[0] == "merge" for move in self.moves):
            self._merge_rows(aliases_before)
            self.moves = []
        _over(con, f"INSERT INTO events SELECT {', '.join(_EVENT_CASTS)} FROM arrow_batch",
              pa.Table.from_pydict(self.rows))
        for move in self.moves:
            if move[0] == "merge":
                _, alias, survivor, at = move
                # Only rows from before the merge: a later unmerge in this batch gave the record
                # its own rows back, and those must stay its own.
                con.execute("UPDATE events SET customer_id = ? WHERE customer_id = ? AND position < ?",
                            [survivor, alias, at])
                con.execute("UPDATE customer_aliases SET customer_id = ? WHERE customer_id = ?",
                            [survivor, alias])
                con.execute("INSERT INTO customer_aliases VALUES (?, ?)", [alias, survivor])
                continue
            _, absorbed, members, event_ids = move
            _over(con, "UPDATE events SET customer_id = ? WHERE event_id IN "
                  "(SELECT event_id FROM arrow_batch)",
                  pa.Table.from_pydict({"event_id": sorted(event_ids)}), [absorbed])
            con.execute("DELETE FROM customer_aliases WHERE alias = ?", [absorbed])
            for member in sorted(members - {absorbed}):
                con.execute("UPDATE customer_aliases SET customer_id = ? WHERE alias = ?", [absorbed, member])
        for customer_id in sorted(self.forgotten):
            con.execute("UPDATE events SET ref = NULL, data = NULL, source_id = event_id "
                        "WHERE customer_id = ?", [customer_id])
            self.forgotten_any = True

    def _merge_rows(self, aliases_before: dict[str, str]) -> None:
        """The chunk's merges, set-based: what the statements per merge in :meth:`_flush_rows`
        do (``UPDATE events ... WHERE customer_id = absorbed AND position < merge``), one
        UPDATE for the rows already written and in memory for the chunk's own rows. Each
        per-merge UPDATE scanned the whole events table: hundreds per chunk at 1M events."""
        rows = self.rows
        owners = rows["customer_id"]
        positions = rows["position"]
        by_owner: dict[str, list[int]] = {}
        for i, owner in enumerate(owners):
            by_owner.setdefault(owner, []).append(i)
        moved: dict[str, str] = {}  # owner before this chunk -> owner after its merges
        for _, absorbed, survivor, at in self.moves:
            for old, new in moved.items():
                if new == absorbed:
                    moved[old] = survivor
            moved.setdefault(absorbed, survivor)
            mine = by_owner.pop(absorbed, [])
            stay = [i for i in mine if positions[i] >= at]
            if stay:
                by_owner[absorbed] = stay
            for i in mine:
                if positions[i] < at:
                    owners[i] = survivor
                    by_owner.setdefault(survivor, []).append(i)
        con = self.store.con
        changes = {old: new for old, new in moved.items() if old != new}
        if changes:
            _over(con, "UPDATE events SET customer_id = arrow_batch.new FROM arrow_batch "
                  "WHERE events.customer_id = arrow_batch.old",
                  pa.Table.from_pydict({"old": list(changes), "new": list(changes.values())}))
        aliases = self.aliases
        changed = {a: c for a, c in aliases.items() if aliases_before.get(a) != c}
        gone = [a for a in aliases_before if a not in aliases]
        if changed or gone:
            _over(con, "DELETE FROM customer_aliases WHERE alias IN (SELECT alias FROM arrow_batch)",
                  pa.Table.from_pydict({"alias": [*changed, *gone]}))
            _over(con, "INSERT INTO customer_aliases SELECT alias, customer_id FROM arrow_batch",
                  pa.Table.from_pydict({"alias": list(changed), "customer_id": list(changed.values())}))

    def _fold(self, sf: StoredFact, record_row: bool = True) -> None:
        fact = catalogue.upcast(sf.fact)
        aliases = self.aliases
        stream_customer: str = fact["customer_uuid"]
        customer_id = aliases.get(stream_customer, stream_customer)
        recorded_at = sf.recorded_at.isoformat()
        kind = fact["type"]
        fed = self.fed.setdefault(customer_id, set())
        if kind in ("customer.merged", "customer.unmerged"):
            fed.add("*")
            self.fed.setdefault(fact["data"]["from"], set()).add("*")
        elif kind == "customer.forgotten":
            fed.add("*")  # every derived row of theirs goes
            self.forgotten.add(customer_id)
            self.forgotten_any = True
        else:
            fed.update(("case",) if kind.startswith("case.") else customer_view.SECTIONS.get(kind, ()))
        if self.groups is not None and kind in ("customer.merged", "customer.unmerged"):
            other = fact["data"]["from"]
            self._one_group(stream_customer, customer_id, other, aliases.get(other, other),
                            *(a for a in self._pointing().get(other, ()) if aliases.get(a) == other))
        if fact["type"] == "customer.merged":
            absorbed = fact["data"]["from"]
            absorbed_view = self._absorbed_view(absorbed)
            if absorbed_view is not _DELETED:
                self.views[customer_id] = customer_view.merge(self._view(customer_id), absorbed_view)
            self.views[absorbed] = _DELETED
            pointing = self._pointing()
            for alias in pointing.pop(absorbed, ()):
                if aliases.get(alias) == absorbed:
                    aliases[alias] = customer_id
                    pointing.setdefault(customer_id, []).append(alias)
            aliases[absorbed] = customer_id
            pointing.setdefault(customer_id, []).append(absorbed)
            self.moves.append(("merge", absorbed, customer_id, sf.position))
        elif fact["type"] == "customer.unmerged" and not self.private:
            absorbed = fact["data"]["from"]
            self.views[customer_id], _, _ = self._rebuild(customer_id, sf.position, without=absorbed)
            restored, members, event_ids = self._rebuild(absorbed, sf.position)
            if self.groups is not None:
                self._one_group(customer_id, *members)
            self.views[absorbed] = _DELETED if self.partitioned else restored
            for member in members:
                if member == absorbed:
                    aliases.pop(member, None)
                else:
                    aliases[member] = absorbed
            self.pointing = None  # rare: rebuilt from the aliases when next needed
            # Applied after this batch's rows are inserted, in order with the merges.
            self.moves.append(("split", absorbed, members, event_ids))
        channel = catalogue.channel_of(fact)
        entry = customer_view.entry_of(fact, sf.position, recorded_at)
        view = self._view(customer_id)
        customer_view.apply(view, fact, entry, channel)
        if not record_row:
            return
        data = fact.get("data", {})
        # Nothing personal in the rows of a forgotten customer (an erased fact: a rebuild).
        hidden = bool(fact.get("erased") or view.get("forgotten"))
        occurred = entry["at"]
        lag = sf.recorded_at.timestamp() - _epoch(occurred)
        values = (sf.position, fact["event_id"], customer_id, str(sf.stream_id),
                  sf.stream_version, fact["type"], fact.get("v", 1), occurred,
                  fact["occurred_at"], recorded_at, fact["source"], fact["id"],
                  fact.get("department"), fact.get("agent"), channel, data.get("purpose"),
                  data.get("campaign"), data.get("case_id"), lag,
                  None if hidden else orjson.dumps(fact["customer"]).decode(),
                  None if hidden else orjson.dumps(data).decode())
        for column, value in zip(EVENT_COLUMNS, values, strict=True):
            self.rows[column].append(value)

    def _one_group(self, *records: str) -> None:
        """Records a merge or an unmerge ties together must be folded in log order: in a
        stretch read group by group, they must all be in the fact's group."""
        groups = self.groups
        assert groups is not None
        roots = {groups.get(record, record) for record in records}
        if len(roots) > 1:
            raise LogOrderNeeded(f"a merge ties records of {len(roots)} groups: {sorted(records)}")

    def settle(self, chunk: Sequence[StoredFact]) -> None:
        """Write the rows of the customers whose groups are complete, in a stretch read record
        group by record group: all the chunk's groups but that of its ``last`` fact, which may
        go on in the next chunk. What is written leaves this transaction's memory; a later
        fact of the same customer (a group the store no longer joins, after an unmerge) finds
        the written view, as the next transaction would, and writes it again."""
        groups = self.groups
        assert groups is not None
        record = next((r for r in map(readable.customer_of, reversed(chunk)) if r is not None), None)
        if record is None:
            return
        owner = self.aliases.get(record, record)
        keep = {groups.get(record, record), groups.get(owner, owner)}
        done = [cid for cid in self.dirty if groups.get(cid, cid) not in keep]
        if not done:
            return
        self._write_views({cid: self.dirty.pop(cid) for cid in done})
        for cid in done:
            self.fed.pop(cid, None)

    def _write_views(self, dirty: dict[str, Packed | None] | None = None) -> None:
        """Replace the rows of every customer this transaction changed (or of ``dirty``: some of
        them): the view, the ``customers`` row, the identities, and each derived table whose
        sections were fed."""
        con = self.store.con
        if dirty is None:
            dirty = self.dirty
        stored = self.store.stored_ids()
        touched = sorted(cid for cid in dirty if cid in stored)
        if touched:  # a customer without a view has no rows in these tables either
            ids_table = pa.Table.from_pydict({"customer_id": touched})
            for table in ("customer_views", "customers", "identities"):
                _over(con, f"DELETE FROM {table} WHERE customer_id IN "
                      "(SELECT customer_id FROM arrow_batch)", ids_table)
            del ids_table
        specs = []
        for spec in derived.tables():
            ids = {cid for cid, fed in self.fed.items()
                   if cid in dirty and ("*" in fed or not spec.reads or fed & spec.reads)}
            if not ids:
                continue
            # Each DELETE scans its table: a catch-up writing new customers chunk by chunk
            # (settle) would scan every derived table once per chunk for nothing.
            old = sorted(cid for cid in ids if cid in stored)
            if old:
                _over(con, f"DELETE FROM {spec.name} WHERE customer_id IN "
                      "(SELECT customer_id FROM arrow_batch)",
                      pa.Table.from_pydict({"customer_id": old}))
            specs.append((spec, ids))
        live = [cid for cid, packed in dirty.items() if packed is not None]
        stored.difference_update(cid for cid, packed in dirty.items() if packed is None)
        stored.update(live)
        cache = self.store.cache
        if len(cache) > VIEW_CACHE_SIZE:
            cache.clear()
        for cid, packed in dirty.items():
            if packed is None:
                cache.pop(cid, None)
            else:
                cache[cid] = packed
        for i in range(0, len(live), WRITE_SLICE):
            part = live[i:i + WRITE_SLICE]
            docs = [unpack_doc(dirty[cid]) for cid in part]  # type: ignore[arg-type]
            views = [orjson.loads(doc) for doc in docs]
            self._write_slice(part, docs, views, specs)
            if len(live) > WRITE_SLICE:
                del docs, views
                release_memory()

    def _write_slice(self, ids: list[str], docs: list[bytes], views: list[View],
                     specs: list[tuple[derived.DerivedTable, set[str]]]) -> None:
        con = self.store.con
        _over(con, "INSERT INTO customer_views SELECT customer_id, position, view FROM arrow_batch",
              pa.Table.from_pydict({
                  "customer_id": ids,
                  "position": pa.array([v["position"] for v in views], pa.int64()),
                  "view": [doc.decode() for doc in docs],
              }))
        rendered = [customer_view.summary(v) for v in views]
        customers = pa.Table.from_pylist([_customer_row(r) for r in rendered],
                                         schema=_CUSTOMER_SCHEMA)
        _over(con, "INSERT INTO customers SELECT * FROM arrow_batch", customers)
        del customers
        idents = {"identity": [], "customer_id": []}  # type: dict[str, list[str]]
        for r in rendered:
            if r.get("forgotten"):
                continue  # nobody can be found by their identities any more
            for key in r["identities"]:
                idents["identity"].append(key)
                idents["customer_id"].append(r["customer_id"])
            idents["identity"].append(f"ledger:{r['customer_id']}")
            idents["customer_id"].append(r["customer_id"])
        _over(con, "INSERT INTO identities SELECT * FROM arrow_batch", pa.Table.from_pydict(idents))
        for spec, wanted in specs:
            rows = [row for cid, view in zip(ids, views, strict=True) if cid in wanted
                    for row in spec.rows(view, self.store.rules)]
            if not rows:
                continue
            _over(con, f"INSERT INTO {spec.name} SELECT * FROM arrow_batch",
                  pa.Table.from_pylist(rows, schema=spec.schema))


def _over(con: duckdb.DuckDBPyConnection, sql: str, arrow_batch: pa.Table,
          parameters: list[Any] | None = None) -> None:
    """Run ``sql``, in which the name ``arrow_batch`` is this Arrow table.

    DuckDB finds the table by a replacement scan of this frame's local of that name. Not
    ``con.register()``: a registered object stays referenced by the open transaction until
    it commits, even after ``unregister``, so a 200k-event transaction kept every Arrow table
    it had written (95 MiB of events rows after ten chunks, 310 MiB at the end, measured with
    ``pa.total_allocated_bytes()``). The scanned table is freed when this call returns."""
    con.execute(sql, parameters)


def _last_uses(batch: Sequence[StoredFact], aliases: dict[str, str]) -> tuple[dict[str, int], set[str]]:
    """Each owner's last fact in ``batch`` (its index), and the records a merge or an unmerge
    in it involves: their owners change within the chunk, so their views stay until its end."""
    last: dict[str, int] = {}
    pinned: set[str] = set()
    for i, sf in enumerate(batch):
        fact = sf.fact
        stream_customer = fact["customer_uuid"]
        owner = aliases.get(stream_customer, stream_customer)
        last[owner] = i
        if fact["type"] in ("customer.merged", "customer.unmerged"):
            other = fact["data"]["from"]
            pinned.update((stream_customer, owner, other, aliases.get(other, other)))
    return last, pinned


def release_memory() -> None:
    """Hand freed memory back to the OS after a big transaction: Arrow's pool and glibc's
    heap otherwise keep the transaction's peak (400 MB of a 1M projection) for good."""
    pa.default_memory_pool().release_unused()
    with suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)  # glibc only


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """The fold makes millions of small acyclic dicts (facts, entries, views): reference
    counting frees them, and the cyclic collector only rescans the view cache again and again
    (a fifth of a 1M projection's time). Re-enabled afterwards if it was on."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


_EVENT_CASTS = [
    f"{c}::TIMESTAMPTZ" if c in ("occurred_at", "recorded_at")
    else f"{c}::JSON" if c in ("ref", "data") else c
    for c in EVENT_COLUMNS
]

_QUARANTINE_SCHEMA = pa.schema([
    ("position", pa.int64()), ("reader", pa.string()), ("event_id", pa.string()),
    ("originator", pa.string()), ("customer_id", pa.string()), ("type", pa.string()),
    ("reason", pa.string()),
])


def _unmark(view: View, position: int) -> None:
    marks = view.get("quarantined")
    if marks and position in marks:
        marks.remove(position)
        if not marks:
            del view["quarantined"]


_CUSTOMER_SCHEMA = pa.schema([
    ("customer_id", pa.string()), ("customer_number", pa.string()), ("kind", pa.string()),
    ("name", pa.string()), ("birthday", pa.string()), ("language", pa.string()),
    ("timezone", pa.string()), ("street", pa.string()), ("number", pa.string()),
    ("postal_code", pa.string()), ("city", pa.string()), ("phone", pa.string()),
    ("email", pa.string()), ("twitter", pa.string()), ("identities", pa.list_(pa.string())),
    ("events", pa.int64()), ("first_seen", pa.string()), ("last_seen", pa.string()),
    ("cases", pa.int32()), ("open_cases", pa.int32()), ("open_promises", pa.int32()),
    ("products", pa.int32()), ("active_objections", pa.int32()),
    ("departments", pa.list_(pa.string())), ("merged_from", pa.list_(pa.string())),
])


def mark_late(timeline: list[dict[str, Any]]) -> None:
    """Flag facts recorded after something that happened later: a late upload, say.

    ``timeline`` is ordered by occurred_at; a fact is late when any fact that occurred after
    it had already been recorded (a smaller store position) when it came in.
    """
    lowest_after = None
    for row in reversed(timeline):
        row["late"] = lowest_after is not None and lowest_after < row["position"]
        if lowest_after is None or row["position"] < lowest_after:
            lowest_after = row["position"]


def _epoch(utc_key: str) -> float:
    return datetime.fromisoformat(utc_key.replace("Z", "+00:00")).timestamp()


def _customer_row(view: dict[str, Any]) -> dict[str, Any]:
    """A row of ``customers`` from :func:`customer_view.summary`."""
    address = view["contact"]["address"] or {}
    return {
        "customer_id": view["customer_id"],
        "customer_number": view["customer_number"],
        "kind": view["kind"],
        "name": view.get("name"),
        "birthday": view.get("birthday"),
        "language": view.get("language"),
        "timezone": view.get("timezone"),
        **{k: address.get(k) for k in ("street", "number", "postal_code", "city")},
        **{k: view["contact"][k] for k in ("phone", "email", "twitter")},
        **{k: view[k] for k in ("identities", "events", "first_seen", "last_seen", "cases",
                                "open_cases", "open_promises", "products", "active_objections",
                                "departments", "merged_from")},
    }
