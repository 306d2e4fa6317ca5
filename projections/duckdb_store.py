"""The projections' DuckDB file: the events rows and what every department reads from them.

The engine is set-based (projections/engine.py): each fact becomes one ``events`` row, sent to
DuckDB in columnar batches, and everything derived from them (the customers and their
identities, cases, promises, the inbox, products and claims) is recomputed by statements over
the rows of the customers a transaction touched. No view is folded per fact: a customer's view
is built from their rows when somebody reads it (projections/view_rows.py). A merge or an
unmerge moves rows between owners (``customer_id``) and records who absorbed whom
(``customer_aliases``); nothing is rebuilt.

Each transaction holds the new rows AND the source position they come from, so a crash loses
or doubles nothing: after a restart the runner resumes after the last committed position, and
a batch at or below it is skipped.

Only one process may hold a DuckDB file open for writing; analysts read Parquet snapshots.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from ledger.application import StoredFact
from projections import derived, quarantine, view_rows
from projections.customer_view import View
from projections.engine import Batch
from projections.preparing import Prepared, Tracked
from projections.rules import DEFAULT_RULES, Rules
from projections.tables import EVENT_COLUMNS as EVENT_COLUMNS
from projections.tables import MEMORY_LIMIT, RELEASE_AFTER
from projections.tables import SCHEMA as SCHEMA
from projections.tables import connect as connect
from projections.tables import release_memory as release_memory


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
        #: record -> the customer it was merged into (flat: always the final survivor).
        self.aliases: dict[str, str] = dict(
            self.con.execute("SELECT alias, customer_id FROM customer_aliases").fetchall())
        #: Reads one customer's facts from the event store (``ledger.application.history_of``):
        #: an unmerge finds there which facts go back to the record split off. Set by the
        #: composition root.
        self.history: Callable[[str], list[StoredFact]] | None = None
        #: The reader named in this file's quarantine entries.
        self.reader = quarantine.PROJECTION
        #: Customer -> positions of their quarantined facts, read once per change: this
        #: process is the file's only writer (DuckDB's lock), and every write drops it.
        self._marks: dict[str, list[int]] | None = None

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
        self._marks = None
        self.con.begin()
        try:
            yield
        except BaseException:
            self.con.rollback()
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

    def apply_chunks(self, chunks: Iterable[Sequence[StoredFact] | Prepared], before_commit: Any = None,
                     refuse: Mapping[int, str] | None = None) -> int:
        """Project consecutive batches of the log in ONE transaction; returns the new facts.

        A chunk is facts in log order, or the same prepared (projections/preparing.py: a long
        catch-up prepares them in worker processes). Each chunk's rows are written as it comes
        (memory holds one chunk's facts); what is derived from them is recomputed once, at the
        end, for every customer the transaction touched. A fact the readers cannot handle
        (projections/readable.py) is quarantined in the same transaction
        (projections/quarantine.py) and not counted.
        """
        with self._transaction(), _no_cyclic_gc():
            done = self.position()
            batch = Batch(self.con, self.aliases, self.reader, self.rules, self.history, pipelined=True)
            batch.refuse = refuse or {}
            last = done
            count = 0
            try:
                for chunk in chunks:
                    if isinstance(chunk, Prepared):  # read after the position: all new
                        if not chunk.facts:
                            continue
                        if min(chunk.positions[:1] + [h.position for h in chunk.held[:1]]) <= done:
                            raise ValueError(f"a prepared chunk from position {done} or before")
                        batch.add_prepared(chunk)
                        last = max(last, chunk.last)
                        count += chunk.facts
                    else:
                        fresh = [sf for sf in chunk if sf.position > done]
                        if not fresh:
                            continue
                        batch.add(fresh)
                        last = max(last, fresh[-1].position)
                        count += len(fresh)
                    if count >= RELEASE_AFTER:  # a catch-up, not a live follower's few facts
                        release_memory()
                if not count:
                    return 0
                batch.finish()
            finally:
                batch.close()  # nothing may use the connection once the transaction ends
            self._advance(self.name, last)
            if before_commit is not None:
                before_commit()
        if batch.forgotten_any:
            self.compact()
        if count >= RELEASE_AFTER:
            release_memory()
        return count - batch.held

    def apply_tracked(self, cursor: str, chunks: Iterable[Sequence[tuple[int, StoredFact]] | Tracked],
                      history: Callable[[str], list[StoredFact]] | None = None,
                      before_commit: Any = None, release_after: int = RELEASE_AFTER) -> int:
        """Project Kafka records ``(offset, fact)`` of one partition, with the offset, in ONE
        transaction; returns the new facts. A chunk is such records, or the same prepared
        (:class:`projections.preparing.Tracked`, made of records after the offset only).

        Records at or below the partition's recorded offset are skipped (a rebalance or a
        restart redelivers them); a fact whose store position this file already holds is
        skipped too (the relay redelivers after a crash). ``history(customer_id)`` reads a
        merged-away customer's facts from the store when their rows live in another file."""
        count = 0
        with self._transaction(), _no_cyclic_gc():
            done = self.position(cursor)
            batch = Batch(self.con, self.aliases, self.reader, self.rules, history or self.history)
            batch.partitioned = True
            last: int | None = None
            for chunk in chunks:
                if isinstance(chunk, Tracked):  # prepared from records after the offset
                    count += chunk.records
                    if chunk.last <= done:
                        raise ValueError(f"a prepared chunk from offset {done} or before")
                    last = chunk.last
                    batch.add_prepared(batch.unseen_prepared(chunk.prepared))
                    del chunk
                else:
                    count += len(chunk)
                    fresh = [(offset, sf) for offset, sf in chunk if offset > done]
                    if fresh:
                        last = fresh[-1][0]
                        batch.add(batch.unseen([sf for _, sf in fresh]))
                    # Before the next chunk is made: a generator's next chunk is built while
                    # the loop variable still holds this one.
                    del chunk, fresh
                if count >= release_after:
                    release_memory()
            if last is None:
                return 0
            batch.finish()
            self._advance(cursor, last)
            if before_commit is not None:
                before_commit()
        if batch.forgotten_any:
            self.compact()
        if count >= release_after:
            release_memory()
        return batch.applied

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
        """The view states of these customers, built from their rows; absent ones are not
        returned. Fresh objects each time: a caller may change them."""
        return view_rows.build(self.con, list(customer_ids), self._quarantine_marks())

    def _quarantine_marks(self) -> dict[str, list[int]]:
        """Customer -> positions of their facts set aside (the entries name the record's owner
        when it was held; a later merge moves them with the record)."""
        if self._marks is None:
            marks: dict[str, list[int]] = {}
            for position, owner in self.con.execute(
                    "SELECT position, customer_id FROM quarantine WHERE customer_id IS NOT NULL").fetchall():
                marks.setdefault(self.aliases.get(owner, owner), []).append(int(position))
            self._marks = marks
        return self._marks

    def view_and_timeline(self, customer_id: str, limit: int | None = None
                          ) -> tuple[View | None, list[dict[str, Any]]]:
        """:meth:`load_views` and :meth:`timeline` of one customer, from one read of their
        rows (a customer's document needs both)."""
        view, rows = view_rows.build_one(self.con, customer_id, self._quarantine_marks())
        timeline = []
        for (_, position, event_id, kind, occurred, _, source, source_id, department, agent, channel,
             _, data, recorded, purpose, campaign, case_id, lag_s) in rows[:limit]:
            timeline.append({
                "position": position, "event_id": event_id, "type": kind, "recorded_at": recorded,
                "source": source, "source_id": source_id, "department": department, "agent": agent,
                "channel": channel, "purpose": purpose, "campaign": campaign, "case_id": case_id,
                "lag_s": lag_s, "data": orjson.loads(data) if data else {}, "occurred_at": occurred})
        mark_late(timeline)
        return view, timeline

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
        """Apply a quarantined fact now (the code or an upcaster can read it at last), as a
        late upload is, and drop its entry, in one transaction. Returns None when it was
        applied, else why not (its entry says so)."""
        from projections import readable
        reason = readable.problem(sf)
        if reason is None:
            try:
                with self._transaction(), _no_cyclic_gc():
                    batch = Batch(self.con, self.aliases, self.reader, self.rules, self.history)
                    self.con.execute("DELETE FROM quarantine WHERE position = ?", [sf.position])
                    batch.add([sf])
                    batch.finish()
                if batch.forgotten_any:
                    self.compact()
                return None
            except quarantine.FACT_ERRORS as error:
                reason = quarantine.failure(error)
        self._marks = None
        self.con.execute("UPDATE quarantine SET reason = ? WHERE position = ?", [reason, sf.position])
        return reason

    def drop_entry(self, entry: quarantine.Entry) -> None:
        """Forget a quarantine entry whose event is no longer in the store (its mark in the
        customer's view goes with it: views read the marks from the entries)."""
        self._marks = None
        self.con.execute("DELETE FROM quarantine WHERE position = ?", [entry.position])

    def table_counts(self) -> dict[str, int]:
        # fetchall, never fetchone: DuckDB 2 refuses further work on a connection whose last
        # result was not read to the end.
        return {t: int(self.con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0])
                for t in ("events", "customers", "customer_views", "identities")}


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """A batch makes many small acyclic objects (facts, row values): reference counting frees
    them, and the cyclic collector would only rescan them again and again. Re-enabled
    afterwards if it was on."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


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
