"""eventsourcing's SQLite recorder, extended with the write-side index in the same transaction."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any, cast
from uuid import UUID

from eventsourcing.persistence import IntegrityError, Notification, OperationalError, StoredEvent
from eventsourcing.sqlite import (
    SQLITE3_DEFAULT_LOCK_TIMEOUT,
    SQLiteCursor,
    SQLiteProcessRecorder,
    SQLiteTransaction,
)

from ledger import chain, wal_checkpoint
from ledger.index import CustomerRecord, IndexChanges, chunks
from ledger.index import uuid_of as _uuid

#: The writing connection's page cache (KiB). SQLite's default (2 MiB) re-reads the index pages
#: of random keys from the OS for every batch; 64 MiB holds them up to a few 100k events: the
#: batch inserts of a 100k append took 2.4-2.7 s instead of 3.4-3.9 s (A/B, two runs each).
WRITER_CACHE_KIB = 65536

#: A stored event as :meth:`JourneySQLiteRecorder.select_rows` reads it.
Row = tuple[int, str, int, str, bytes]


def rows_after(cursor: Any, table: str, after: int, limit: int, stop: int | None = None) -> list[Row]:
    """The rows of :meth:`JourneySQLiteRecorder.select_rows` through any cursor that returns
    plain tuples: the relay's read-ahead process (consumers/relay_reader.py) has a plain
    ``sqlite3`` connection of its own, not the application's recorder."""
    sql = f"SELECT rowid, originator_id, originator_version, topic, state FROM {table} WHERE rowid > ?"
    params: tuple[int, ...] = (after,)
    if stop is not None:
        sql += " AND rowid <= ?"
        params = (after, stop)
    cursor.execute(sql + " ORDER BY rowid LIMIT ?", (*params, limit))
    return cast(list[Row], cursor.fetchall())


class _ImmediateTransaction(SQLiteTransaction):
    """eventsourcing's transaction, begun with the write lock taken (waiting for it up to the
    lock timeout) instead of on the first write: a transaction that has read before another
    process commits can never write after it (SQLite fails it, without waiting)."""

    def __enter__(self) -> SQLiteCursor:
        cursor = self.connection.cursor()
        cursor.execute("BEGIN IMMEDIATE")
        return cursor


class JourneySQLiteRecorder(SQLiteProcessRecorder):
    _checkpointer: wal_checkpoint.BackgroundCheckpointer | None = None

    def create_table(self) -> None:
        """The schema, its migrations and eventsourcing's migration tracking row, in one
        transaction that holds the write lock from its start (unless all of it is there).

        eventsourcing reads whether the tracking table exists before its transaction, so
        processes opening a new store together each saw none and each inserted the tracking
        row: all but the first failed ("Failed to record tracking for __migration__ 1"). Read
        under the lock, the state is the one the transaction changes (a store of the older
        schema is migrated once, by whichever process takes the lock first). A store that is set
        up is opened as before, without the write lock: a reader does not wait for a writer's
        batch to commit."""
        if self._set_up():
            super().create_table()
            return
        with self.datastore.get_connection(commit=True) as conn, \
                _ImmediateTransaction(conn, commit=True) as c, c:
            c.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'tracking'")
            self.tracking_table_exists = c.fetchone() is not None
            self.tracking_migration_current = self.tracking_migration_previous = (
                self._max_tracking_id(self.table_migration_identifier, c)
                if self.tracking_table_exists else None)
            self._create_table(c)
            _migrate_to_log(c, self.events_table_name)
        if not self.datastore.single_row_tracking and self.tracking_migration_current is not None:
            raise OperationalError("Can't do multi-row tracking with single-row tracking table")

    def _set_up(self) -> bool:
        """Whether the store has its tracking row and the current schema (a read)."""
        with self.datastore.transaction(commit=False) as c:
            c.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                      "AND name IN ('tracking', 'journey_log', 'journey_facts', 'journey_chain')")
            if {r[0] for r in c.fetchall()} != {"tracking", "journey_log"}:
                return False
            return self._max_tracking_id(self.table_migration_identifier, c) is not None

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        # Checkpoints run beside the writer, not in its COMMIT (see ledger/wal_checkpoint.py).
        checkpointer = self._background_checkpointer()
        if checkpointer is not None:
            checkpointer.before_write()
        returning = super().insert_events(stored_events, **kwargs)
        if checkpointer is not None:
            checkpointer.start()
        return returning

    def _background_checkpointer(self) -> wal_checkpoint.BackgroundCheckpointer | None:
        pool = self.datastore.pool
        if not wal_checkpoint.WRITER_LIMIT_PAGES or pool.is_sqlite_memory_mode:
            return None
        if self._checkpointer is None:
            self._checkpointer = wal_checkpoint.BackgroundCheckpointer(
                pool.db_name, pool.lock_timeout or SQLITE3_DEFAULT_LOCK_TIMEOUT)
        return self._checkpointer

    def wait_for_checkpoint(self) -> None:
        """Called before the store is closed (JourneyApplication.close): as SQLite's own
        checkpoint in COMMIT did, so once closed the database file is complete without its WAL."""
        if self._checkpointer is not None:
            self._checkpointer.wait()

    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            # Tamper evidence and the fact index (ledger/chain.py): ONE row per event,
            # ``journey_log``, keyed by its position, with the chain heads and start.
            *chain.SQLITE_CREATE,
            "CREATE TABLE IF NOT EXISTS journey_identities ("
            "identity TEXT PRIMARY KEY, customer_id TEXT NOT NULL) WITHOUT ROWID",
            "CREATE INDEX IF NOT EXISTS journey_identities_by_customer "
            "ON journey_identities (customer_id)",
            "CREATE TABLE IF NOT EXISTS journey_customers ("
            "customer_id TEXT PRIMARY KEY, kind TEXT NOT NULL, customer_number TEXT, "
            "merged_into TEXT) WITHOUT ROWID",
            # Per-record keys of the personal data (ledger/keys.py); key NULL: forgotten.
            "CREATE TABLE IF NOT EXISTS journey_keys ("
            "customer_id TEXT PRIMARY KEY, key BLOB, forgotten_at TEXT) WITHOUT ROWID",
        ]

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        if WRITER_CACHE_KIB:
            c.execute(f"PRAGMA cache_size = -{WRITER_CACHE_KIB}")
        if wal_checkpoint.WRITER_LIMIT_PAGES and not self.datastore.pool.is_sqlite_memory_mode:
            c.execute(f"PRAGMA wal_autocheckpoint = {wal_checkpoint.WRITER_LIMIT_PAGES}")
        # One executemany instead of eventsourcing's row-by-row inserts (it wants each rowid).
        # Inside this write transaction SQLite gives the rows consecutive rowids after the
        # current maximum, so the notification ids are the last n up to the new maximum.
        c.executemany(self.insert_events_statement, [
            (s.originator_id.hex if isinstance(s.originator_id, UUID) else s.originator_id,
             s.originator_version, s.topic, s.state)
            for s in stored_events
        ])
        returning: list[int] | None = None
        if stored_events:
            c.execute(self.select_max_notification_id_statement)
            last = int(c.fetchone()[0])
            returning = list(range(last - len(stored_events) + 1, last + 1))
        # Tracking is inserted here, not by the parent class (whose _insert_events is not
        # called): calling both would insert it twice and fail every tracked batch.
        tracking = kwargs.get("tracking")
        if tracking is not None:
            self._insert_tracking(c, tracking)
        changes: IndexChanges | None = kwargs.get("index")
        # Each event's row of journey_log: its fact's index entry (the dedupe: a fact recorded
        # concurrently by another writer fails the whole batch with IntegrityError, which the
        # writer retries against the new state) and its hash link (events without an index
        # entry: see ledger/chain.py), in this transaction.
        chain.sqlite_write(c, returning or [], stored_events, changes.facts if changes else None,
                           changes.digests if changes else None)
        if changes is not None:
            self._check_owners(c, changes)
            c.executemany(
                "INSERT INTO journey_identities VALUES (?,?) "
                "ON CONFLICT(identity) DO UPDATE SET customer_id=excluded.customer_id",
                sorted((k, v.hex) for k, v in changes.identities.items()),
            )
            c.executemany(
                "INSERT INTO journey_customers VALUES (?,?,?,?) ON CONFLICT(customer_id) DO UPDATE "
                "SET kind=excluded.kind, customer_number=excluded.customer_number, "
                "merged_into=excluded.merged_into",
                sorted(
                    (k.hex, r.kind, r.customer_number, r.merged_into.hex if r.merged_into else None)
                    for k, r in changes.customers.items()
                ),
            )
            # A plain INSERT: a key created meanwhile by another writer fails the batch.
            c.executemany("INSERT INTO journey_keys VALUES (?,?,NULL)",
                          sorted((k.hex, key) for k, key in changes.keys.items()))
            if changes.forget:
                self._forget(c, changes)
        return returning

    def _forget(self, c: SQLiteCursor, changes: IndexChanges) -> None:
        """Crypto-shred: destroy the keys, delete the identity keys, clear customer numbers.

        secure_delete makes SQLite overwrite the freed bytes with zeros (the caller then
        checkpoints the WAL, see :meth:`scrub`)."""
        c.execute("PRAGMA secure_delete = ON")
        ids = [(i.hex,) for i in changes.forget]
        c.executemany(
            "INSERT INTO journey_keys VALUES (?, NULL, ?) ON CONFLICT(customer_id) "
            "DO UPDATE SET key = NULL, forgotten_at = excluded.forgotten_at",
            [(i, changes.forgotten_at) for (i,) in ids])
        c.executemany("DELETE FROM journey_identities WHERE customer_id = ?", ids)
        c.executemany("UPDATE journey_customers SET customer_number = NULL WHERE customer_id = ?", ids)

    def scrub(self, attempts: int = 10) -> bool:
        """After a forget: copy the WAL into the database file and truncate it, so the pages
        that held the deleted rows (and the old keys) are overwritten in the file too, and the
        WAL's older frames with them. False when readers kept it busy on every attempt (the
        next checkpoint that completes truncates it)."""
        import time

        for attempt in range(attempts):
            self.wait_for_checkpoint()  # a checkpoint in flight would make this one return busy
            with self.datastore.transaction(commit=False) as c:
                c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                row = c.fetchone()
            if row is None or not row[0]:
                return True
            time.sleep(0.05 * (attempt + 1))  # a reader's snapshot ends with its transaction
        return False

    def _check_owners(self, c: SQLiteCursor, changes: IndexChanges) -> None:
        """Fail the batch if an identity it re-points changed owner since it was read."""
        expected = changes.expected_owners
        for batch in chunks(expected):
            c.execute("SELECT identity, customer_id FROM journey_identities WHERE identity IN "
                      f"({','.join('?' * len(batch))})", batch)
            now = {row[0]: _uuid(row[1]) for row in c.fetchall()}
            for key in batch:
                if now.get(key) != expected[key]:
                    raise IntegrityError(f"identity {key} changed owner while the batch ran")

    def _select(self, sql: str, keys: Iterable[Any]) -> list[Any]:
        rows: list[Any] = []
        parts = list(chunks(keys))
        if not parts:  # no read transaction for nothing (a batch of one fact asks many of these)
            return rows
        with self.datastore.transaction(commit=False) as c:
            for batch in parts:
                c.execute(sql.format(",".join("?" * len(batch))), batch)
                rows.extend(c.fetchall())
        return rows

    def _by_event(self, sql: str, event_ids: Iterable[str]) -> tuple[dict[bytes, str], list[Any]]:
        """Rows of journey_log for these event ids (text uuids; anything else is no fact's id),
        and each id's 16 bytes -> its text as asked."""
        asked: dict[bytes, str] = {}
        for e in event_ids:
            try:
                asked[chain.event_id_bytes(e)] = e
            except ValueError:
                continue
        return asked, self._select(sql, asked)

    def known_events(self, event_ids: Iterable[str]) -> set[str]:
        asked, rows = self._by_event("SELECT event_id FROM journey_log WHERE event_id IN ({})", event_ids)
        return {asked[row[0]] for row in rows}

    def fact_digests(self, event_ids: Iterable[str]) -> dict[str, tuple[UUID, bytes | None]]:
        asked, rows = self._by_event(
            "SELECT event_id, customer_id, digest FROM journey_log WHERE event_id IN ({})", event_ids)
        return {asked[row[0]]: (UUID(bytes=row[1]), bytes(row[2]) if row[2] is not None else None)
                for row in rows}

    def recorded_fact(self, event_id: str) -> Notification | None:
        try:
            key = chain.event_id_bytes(event_id)
        except ValueError:
            return None
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT s.rowid, s.originator_id, s.originator_version, s.topic, s.state "
                f"FROM journey_log f JOIN {self.events_table_name} s ON s.rowid = f.position "
                "WHERE f.event_id = ?", (key,))
            r = c.fetchone()
        if r is None:
            return None
        return Notification(id=r[0], originator_id=self.convert_originator_id(r[1]),
                            originator_version=r[2], topic=r[3], state=r[4])

    def identity_owners(self, keys: Iterable[str]) -> dict[str, UUID]:
        rows = self._select(
            "SELECT identity, customer_id FROM journey_identities WHERE identity IN ({})", keys
        )
        return {row[0]: _uuid(row[1]) for row in rows}

    def customer_records(self, ids: Iterable[UUID]) -> dict[UUID, CustomerRecord]:
        rows = self._select(
            "SELECT customer_id, kind, customer_number, merged_into FROM journey_customers "
            "WHERE customer_id IN ({})",
            (i.hex for i in ids),
        )
        return {
            _uuid(r[0]): CustomerRecord(r[1], r[2], _uuid(r[3]) if r[3] else None) for r in rows
        }

    def existing_streams(self, ids: Iterable[UUID]) -> set[UUID]:
        rows = self._select(
            f"SELECT originator_id FROM {self.events_table_name} "
            "WHERE originator_version = 1 AND originator_id IN ({})",
            (i.hex for i in ids),
        )
        return {_uuid(r[0]) for r in rows}

    def select_rows(self, after: int, limit: int, stop: int | None = None) -> list[Row]:
        """(position, stream id as 32 hex digits, stream version, topic, state) of the events
        after position ``after`` (up to ``stop``), in log order: what ``select_notifications``
        returns, without a Notification and a UUID per row, which were half the relay's read."""
        with self.datastore.transaction(commit=False) as c:
            c.sqlite_cursor.row_factory = None  # plain tuples: this cursor only
            return rows_after(c, self.events_table_name, after, limit, stop)

    def facts_of(self, customer_id: UUID) -> list[Notification]:
        """Every stored event whose fact resolved to this customer, in log order."""
        return [Notification(id=r[0], originator_id=self.convert_originator_id(r[1]),
                             originator_version=r[2], topic=r[3], state=r[4])
                for r in self.fact_rows_of(customer_id)]

    def fact_rows_of(self, customer_id: UUID) -> list[Row]:
        """:meth:`facts_of` as the rows of :meth:`select_rows`, for ``decode_rows``."""
        with self.datastore.transaction(commit=False) as c:
            c.sqlite_cursor.row_factory = None  # plain tuples: this cursor only
            # The customer's positions in order from its index, each event by its rowid.
            c.execute(
                f"SELECT s.rowid, s.originator_id, s.originator_version, s.topic, s.state "
                f"FROM journey_log f JOIN {self.events_table_name} s ON s.rowid = f.position "
                "WHERE f.customer_id = ? ORDER BY f.position",
                (customer_id.bytes,),
            )
            return cast(list[Row], c.fetchall())

    def merged_into(self, customer_id: UUID) -> list[UUID]:
        """The records merged directly into this one (and not split off again)."""
        with self.datastore.transaction(commit=False) as c:
            c.execute("SELECT customer_id FROM journey_customers WHERE merged_into = ?",
                      (customer_id.hex,))
            return [UUID(row[0]) for row in c.fetchall()]

    def load_keys(self, ids: Iterable[UUID]) -> dict[UUID, bytes | None]:
        rows = self._select("SELECT customer_id, key FROM journey_keys WHERE customer_id IN ({})",
                            (i.hex for i in ids))
        return {_uuid(r[0]): bytes(r[1]) if r[1] is not None else None for r in rows}

    def identities_by_customer(self, ids: Iterable[UUID]) -> dict[UUID, list[str]]:
        rows = self._select("SELECT customer_id, identity FROM journey_identities WHERE customer_id IN ({}) "
                            "ORDER BY customer_id, identity", (i.hex for i in ids))
        found: dict[UUID, list[str]] = {}
        for customer, key in rows:
            found.setdefault(_uuid(customer), []).append(key)
        return found

    def stream_versions(self, ids: Iterable[UUID]) -> dict[UUID, int]:
        rows = self._select(
            f"SELECT originator_id, MAX(originator_version) FROM {self.events_table_name} "
            "WHERE originator_id IN ({}) GROUP BY originator_id",
            (i.hex for i in ids),
        )
        return {_uuid(r[0]): int(r[1]) for r in rows}

    def first_states(self, ids: Iterable[UUID]) -> dict[UUID, bytes]:
        rows = self._select(
            f"SELECT originator_id, state FROM {self.events_table_name} "
            "WHERE originator_version = 1 AND originator_id IN ({})",
            (i.hex for i in ids),
        )
        return {_uuid(r[0]): bytes(r[1]) for r in rows}

    def stream_states(self, ids: Iterable[UUID], needle: bytes | None) -> dict[UUID, list[bytes]]:
        wanted = [i.hex for i in ids]
        if not wanted:
            return {}
        where = "" if needle is None else "instr(state, ?) > 0 AND "
        found: dict[UUID, list[bytes]] = {}
        with self.datastore.transaction(commit=False) as c:
            for batch in chunks(wanted):
                c.execute(f"SELECT originator_id, state FROM {self.events_table_name} WHERE {where}"
                          f"originator_id IN ({','.join('?' * len(batch))}) "
                          "ORDER BY originator_id, originator_version",
                          ([needle] if needle is not None else []) + batch)
                for r in c.fetchall():
                    found.setdefault(_uuid(r[0]), []).append(bytes(r[1]))
        return found

    def identities_of(self, customer_id: UUID) -> list[str]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                "SELECT identity FROM journey_identities WHERE customer_id=? ORDER BY identity",
                (customer_id.hex,),
            )
            return [row[0] for row in c.fetchall()]

    def fact_count(self) -> int:
        with self.datastore.transaction(commit=False) as c:
            c.execute("SELECT COUNT(*) FROM journey_log WHERE event_id IS NOT NULL")
            return int(c.fetchone()[0])


def _id_bytes(text: str | None) -> bytes | None:
    """An id of the older schema (a uuid as text, with or without dashes) as 16 bytes (called
    three times per event by the move: ``UUID(text).bytes`` took 1.5 s more at 1M)."""
    if text is None:
        return None
    return bytes.fromhex(text if len(text) == 32 else text.replace("-", ""))


def _migrate_to_log(c: SQLiteCursor, events: str) -> None:
    """A store of the older schema (``journey_facts``: the fact index keyed by event id, and
    ``journey_chain``: the links keyed by position) gets its rows in ``journey_log``, inside the
    set-up transaction under the write lock; the two tables are dropped.

    Every link keeps its position with the fact of its stream and version (if any: a link
    without one was chained under its stream, which it still is, see ledger/chain.py); a fact
    without a link (recorded before the chain existed) gets the position of its event and no
    hash. A fact whose event is not in the store (the old index named it alone) has no position
    and is not kept."""
    c.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
              "AND name IN ('journey_facts', 'journey_chain')")
    old = {r[0] for r in c.fetchall()}
    if not old:
        return
    c.sqlite_cursor.connection.create_function("journey_id", 1, _id_bytes, deterministic=True)
    if "journey_facts" not in old:  # the chain alone: its facts were lost already
        c.execute("CREATE TEMP TABLE journey_facts (event_id TEXT, customer_id TEXT, stream_id TEXT, "
                  "stream_version INTEGER, digest BLOB)")
    c.execute("SELECT 1 FROM pragma_table_info('journey_facts') WHERE name = 'digest'")
    # Stores created before facts had content digests: their facts keep none (compared as
    # duplicates, docs/decisions.md).
    digest = "f.digest" if c.fetchone() is not None else "NULL"
    # The rows go in first and the two indexes are built after, from sorted keys: inserted one
    # row at a time into random places of both, a 1M-event store took 35 s (the lock timeout
    # of the processes waiting to open it is 30 s).
    indexes = [sql for sql in chain.SQLITE_CREATE if sql.startswith(("CREATE INDEX", "CREATE UNIQUE INDEX"))]
    for name in ("journey_log_by_event", "journey_log_by_customer"):
        c.execute(f"DROP INDEX IF EXISTS {name}")
    try:
        if "journey_chain" in old:
            # The old index had no (stream, version) key: without one the join below scans the
            # facts once per link; covering, it does not look each fact up by its event id
            # (1M events: 9 s for the join instead of 15 s).
            covered = "event_id, customer_id" + (", digest" if digest != "NULL" else "")
            c.execute("CREATE INDEX IF NOT EXISTS journey_facts_by_stream "
                      f"ON journey_facts (stream_id, stream_version, {covered})")
            c.execute(
                "INSERT INTO journey_log SELECT k.position, journey_id(f.event_id), "
                "CASE WHEN f.event_id IS NULL THEN NULL ELSE journey_id(k.customer_id) END, "
                f"journey_id(k.stream_id), k.stream_version, {digest}, k.prev_hash, k.hash "
                "FROM journey_chain k LEFT JOIN journey_facts f "
                "ON f.stream_id = k.stream_id AND f.stream_version = k.stream_version ORDER BY k.position")
        c.execute(
            "INSERT INTO journey_log SELECT s.rowid, journey_id(f.event_id), journey_id(f.customer_id), "
            f"journey_id(f.stream_id), f.stream_version, {digest}, NULL, NULL "
            f"FROM journey_facts f JOIN {events} s "
            "ON s.originator_id = f.stream_id AND s.originator_version = f.stream_version "
            "WHERE NOT EXISTS (SELECT 1 FROM journey_log l WHERE l.position = s.rowid) ORDER BY s.rowid")
    except sqlite3.OperationalError as error:  # an id that is not a uuid (journey_id raised)
        raise OperationalError(f"cannot move journey_facts and journey_chain into journey_log: {error}"
                               ) from error
    for sql in indexes:
        c.execute(sql)
    c.execute("DROP TABLE journey_facts")
    if "journey_chain" in old:
        c.execute("DROP TABLE journey_chain")
