"""SQLite stores of the schema before ``journey_log``, written the way the ledger wrote them: the
fact index ``journey_facts`` (keyed by event id, ids as text) and the links ``journey_chain``
(keyed by position), two rows per event. What a store created by an older ledger holds, for
the tests that open one with the current code."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast
from unittest import mock
from uuid import UUID

from eventsourcing.persistence import Notification, StoredEvent
from eventsourcing.sqlite import SQLiteCursor, SQLiteProcessRecorder

import journey.bootstrap
from journey.bootstrap import Journey, bootstrap
from journey.config import Settings
from ledger import chain
from ledger.index import IndexChanges
from ledger.sqlite_recorder import JourneySQLiteRecorder, Row

#: The older schema's statements, as its recorder ran them.
FACTS_DDL = [
    "CREATE TABLE IF NOT EXISTS journey_facts ("
    "event_id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, "
    "stream_id TEXT NOT NULL, stream_version INTEGER NOT NULL, digest BLOB) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS journey_facts_by_customer_stream "
    "ON journey_facts (customer_id, stream_id, stream_version)",
    "CREATE TABLE IF NOT EXISTS journey_identities ("
    "identity TEXT PRIMARY KEY, customer_id TEXT NOT NULL) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS journey_identities_by_customer ON journey_identities (customer_id)",
    "CREATE TABLE IF NOT EXISTS journey_customers ("
    "customer_id TEXT PRIMARY KEY, kind TEXT NOT NULL, customer_number TEXT, "
    "merged_into TEXT) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS journey_keys ("
    "customer_id TEXT PRIMARY KEY, key BLOB, forgotten_at TEXT) WITHOUT ROWID",
]
CHAIN_DDL = [
    "CREATE TABLE IF NOT EXISTS journey_chain (position INTEGER PRIMARY KEY, customer_id TEXT NOT NULL, "
    "stream_id TEXT NOT NULL, stream_version INTEGER NOT NULL, prev_hash BLOB NOT NULL, hash BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS journey_chain_heads (customer_id TEXT PRIMARY KEY, "
    "position INTEGER NOT NULL, hash BLOB NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS journey_chain_start (id INTEGER PRIMARY KEY CHECK (id = 1), "
    "position INTEGER NOT NULL)",
]


class LegacyRecorder(JourneySQLiteRecorder):
    """The recorder of the older schema: its tables, its write path and its index reads."""

    #: False: a store from before the hash chain (no journey_chain tables, nothing chained).
    chained = True

    def create_table(self) -> None:
        SQLiteProcessRecorder.create_table(self)

    def construct_create_table_statements(self) -> list[str]:
        return [*SQLiteProcessRecorder.construct_create_table_statements(self), *FACTS_DDL,
                *(CHAIN_DDL if self.chained else [])]

    def _insert_events(self, c: SQLiteCursor, stored_events: Sequence[StoredEvent],
                       **kwargs: Any) -> Sequence[int] | None:
        c.executemany(self.insert_events_statement, [
            (s.originator_id.hex if isinstance(s.originator_id, UUID) else s.originator_id,
             s.originator_version, s.topic, s.state) for s in stored_events])
        returning: list[int] | None = None
        if stored_events:
            c.execute(self.select_max_notification_id_statement)
            last = int(c.fetchone()[0])
            returning = list(range(last - len(stored_events) + 1, last + 1))
        tracking = kwargs.get("tracking")
        if tracking is not None:
            self._insert_tracking(c, tracking)
        changes: IndexChanges | None = kwargs.get("index")
        if changes is not None:
            digests = changes.digests
            c.executemany(
                "INSERT INTO journey_facts (event_id, customer_id, stream_id, stream_version, digest) "
                "VALUES (?,?,?,?,?)",
                [(e, cu, s, v, digests.get(e)) for e, cu, s, v in sorted(changes.facts)])
            self._check_owners(c, changes)
            c.executemany("INSERT INTO journey_identities VALUES (?,?) "
                          "ON CONFLICT(identity) DO UPDATE SET customer_id=excluded.customer_id",
                          sorted((k, v.hex) for k, v in changes.identities.items()))
            c.executemany(
                "INSERT INTO journey_customers VALUES (?,?,?,?) ON CONFLICT(customer_id) DO UPDATE "
                "SET kind=excluded.kind, customer_number=excluded.customer_number, "
                "merged_into=excluded.merged_into",
                sorted((k.hex, r.kind, r.customer_number, r.merged_into.hex if r.merged_into else None)
                       for k, r in changes.customers.items()))
            c.executemany("INSERT INTO journey_keys VALUES (?,?,NULL)",
                          sorted((k.hex, key) for k, key in changes.keys.items()))
            if changes.forget:
                self._forget(c, changes)
        if self.chained and returning:
            self._chain(c, returning, stored_events, changes.facts if changes else None)
        return returning

    @staticmethod
    def _chain(c: SQLiteCursor, positions: Sequence[int], stored_events: Sequence[StoredEvent],
               facts: Iterable[tuple[str, str, str, int]] | None) -> None:
        def read_heads(customers: list[str]) -> dict[str, bytes]:
            c.execute("SELECT customer_id, hash FROM journey_chain_heads WHERE customer_id IN "
                      f"({','.join('?' * len(customers))})", customers)
            return {r[0]: bytes(r[1]) for r in c.fetchall()}

        links = chain.links_for(positions, stored_events, facts, read_heads)
        c.executemany("INSERT INTO journey_chain VALUES (?,?,?,?,?,?)", [
            (k.position, k.customer_id, k.stream_id, k.stream_version, k.prev_hash, k.hash) for k in links])
        heads = {k.customer_id: (k.position, k.hash) for k in links}
        c.executemany("INSERT INTO journey_chain_heads VALUES (?,?,?) ON CONFLICT(customer_id) DO UPDATE "
                      "SET position=excluded.position, hash=excluded.hash",
                      sorted((cu, p, h) for cu, (p, h) in heads.items()))
        c.execute("INSERT OR IGNORE INTO journey_chain_start VALUES (1, ?)", (links[0].position,))

    def known_events(self, event_ids: Iterable[str]) -> set[str]:
        return {r[0] for r in self._select("SELECT event_id FROM journey_facts WHERE event_id IN ({})",
                                           event_ids)}

    def fact_digests(self, event_ids: Iterable[str]) -> dict[str, tuple[UUID, bytes | None]]:
        rows = self._select("SELECT event_id, customer_id, digest FROM journey_facts WHERE event_id IN ({})",
                            event_ids)
        return {r[0]: (UUID(r[1]), bytes(r[2]) if r[2] is not None else None) for r in rows}

    def recorded_fact(self, event_id: str) -> Notification | None:
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT s.rowid, s.originator_id, s.originator_version, s.topic, s.state "
                      f"FROM journey_facts f JOIN {self.events_table_name} s ON s.originator_id = f.stream_id "
                      "AND s.originator_version = f.stream_version WHERE f.event_id = ?", (event_id,))
            r = c.fetchone()
        return None if r is None else Notification(
            id=r[0], originator_id=self.convert_originator_id(r[1]), originator_version=r[2],
            topic=r[3], state=r[4])

    def fact_rows_of(self, customer_id: UUID) -> list[Row]:
        with self.datastore.transaction(commit=False) as c:
            c.sqlite_cursor.row_factory = None
            c.execute(f"SELECT s.rowid, s.originator_id, s.originator_version, s.topic, s.state "
                      f"FROM journey_facts f JOIN {self.events_table_name} s ON s.originator_id = f.stream_id "
                      "AND s.originator_version = f.stream_version WHERE f.customer_id = ? ORDER BY s.rowid",
                      (customer_id.hex,))
            return cast(list[Row], c.fetchall())

    def fact_count(self) -> int:
        with self.datastore.transaction(commit=False) as c:
            c.execute("SELECT COUNT(*) FROM journey_facts")
            return int(c.fetchone()[0])


class PreChainRecorder(LegacyRecorder):
    """The older schema as it was before the hash chain."""

    chained = False


@contextmanager
def legacy_journey(path: Path, chained: bool = True) -> Iterator[Journey]:
    """A ledger in ``path`` whose store is written by the older schema's recorder."""
    recorder = f"{__name__}:{LegacyRecorder.__name__ if chained else PreChainRecorder.__name__}"
    real = journey.bootstrap.sqlite_env

    def env(*args: Any, **kwargs: Any) -> dict[str, str]:
        return {k: recorder if k.endswith("APPLICATION_RECORDER_TOPIC") else v
                for k, v in real(*args, **kwargs).items()}

    with mock.patch.object(journey.bootstrap, "sqlite_env", env):
        opened = bootstrap(Settings(data_dir=path))
    try:
        assert isinstance(opened.app.recorder, LegacyRecorder)
        yield opened
    finally:
        opened.close()
