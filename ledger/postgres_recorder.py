"""eventsourcing's PostgreSQL recorder, extended with the write-side index in the same transaction.

The mechanics are eventsourcing's: the tracking row first (single-row tracking: a position that
is not past the recorded one fails the transaction with IntegrityError), then ``LOCK TABLE ...
IN EXCLUSIVE MODE`` so that notification ids are issued in commit order, ``NOTIFY``, and one
``INSERT ... SELECT FROM unnest(...) RETURNING notification_id`` for the events. The index rows
(``journey_facts``, ``journey_identities``, ``journey_customers``) are written after the events,
under the same table lock and in the same transaction, so writers never wait on each other's
index rows in an order that could deadlock, and any failure rolls back events, tracking and
index together.

Notification ids come from a ``bigserial`` sequence: a rolled-back write leaves a gap.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit
from uuid import UUID

import orjson
from eventsourcing.persistence import (
    IntegrityError,
    InterfaceError,
    Notification,
    OperationalError,
    StoredEvent,
)
from eventsourcing.postgres import PostgresDatastore, PostgresProcessRecorder
from eventsourcing.utils import retry
from psycopg import Cursor
from psycopg.rows import DictRow, tuple_row
from psycopg.sql import SQL, Composed, Identifier

from ledger import chain
from ledger.application import DEFAULT_CACHE_SIZE, JourneyApplication
from ledger.decoding import Row
from ledger.index import CustomerRecord, IndexChanges

_RETRY = retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)


#: The largest notification id (bigserial): "no stop".
_MAX_POSITION = (1 << 63) - 1

#: Advisory lock key serialising schema creation across processes ("journey" in ASCII).
SCHEMA_LOCK_KEY = 0x6A6F75726E6579

class JourneyPostgresRecorder(PostgresProcessRecorder):
    def create_table(self) -> None:
        """The schema, its migrations and eventsourcing's migration tracking row, in one
        transaction under one advisory lock, so processes starting together take turns.

        eventsourcing creates its composite type in a transaction of its own (two processes
        creating it at once: a duplicate key in pg_type) and reads whether its tracking table
        exists before its transaction (processes starting on a new database each saw none and
        inserted the migration row after the first had: "Failed to record tracking for
        __migration__ 1"). Here both happen under the lock, the state read after taking it
        (each statement sees what committed before it). Concurrent CREATE ... IF NOT EXISTS
        on the same catalog rows fails too ("tuple concurrently updated"): also under it."""
        with self.datastore.transaction(commit=True) as curs:
            curs.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_KEY,))
            curs.execute("SELECT 1 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
                         "WHERE n.nspname = %s AND t.typname = %s",
                         (self.datastore.schema, self.stored_event_type_name))
            if curs.fetchone() is None:
                for statement in self.sql_create_statements:
                    if "CREATE TYPE" in statement.as_string():
                        curs.execute(statement, prepare=False)
            curs.execute("SELECT 1 FROM information_schema.tables WHERE table_schema = %s "
                         "AND table_name = %s", (self.datastore.schema, self.tracking_table_name))
            self.tracking_table_exists = curs.fetchone() is not None
            self.tracking_migration_current = self.tracking_migration_previous = (
                self._max_tracking_id(self.table_migration_identifier, curs)
                if self.tracking_table_exists else None)
            self._create_table(curs)
        self.datastore.register_type_adapters()
        if not self.datastore.single_row_tracking and self.tracking_migration_current is not None:
            raise OperationalError("Can't do multi-row tracking with single-row tracking table")

    def _create_table(self, curs: Cursor[DictRow]) -> None:
        super()._create_table(curs)
        # Stores created before facts had content digests get the column; their rows keep
        # NULL (compared as duplicates, docs/decisions.md). Asked first: ALTER TABLE takes
        # an exclusive lock on the table even when the column is there.
        curs.execute("SELECT 1 FROM information_schema.columns WHERE table_schema = %s "
                     "AND table_name = 'journey_facts' AND column_name = 'digest'",
                     (self.datastore.schema,))
        if curs.fetchone() is None:
            curs.execute(SQL("ALTER TABLE {}.journey_facts ADD COLUMN digest bytea").format(
                Identifier(self.datastore.schema)))

    def __init__(
        self,
        datastore: PostgresDatastore,
        *,
        events_table_name: str = "stored_events",
        tracking_table_name: str = "notification_tracking",
    ) -> None:
        super().__init__(
            datastore, events_table_name=events_table_name, tracking_table_name=tracking_table_name
        )
        schema = Identifier(self.datastore.schema)
        events = Identifier(self.events_table_name)

        def sql(text: str) -> Composed:
            return SQL(text).format(schema=schema, events=events)

        self.sql_create_statements.extend([
            sql("CREATE TABLE IF NOT EXISTS {schema}.journey_facts ("
                "event_id uuid PRIMARY KEY, customer_id uuid NOT NULL, "
                "stream_id uuid NOT NULL, stream_version bigint NOT NULL, digest bytea)"),
            # facts_of(customer): a merged-away prospect's history, read by the projections.
            sql("CREATE INDEX IF NOT EXISTS journey_facts_by_customer "
                "ON {schema}.journey_facts (customer_id)"),
            sql("CREATE TABLE IF NOT EXISTS {schema}.journey_identities ("
                "identity text PRIMARY KEY, customer_id uuid NOT NULL)"),
            # identities_of(customer) runs on every merge: no full scans.
            sql("CREATE INDEX IF NOT EXISTS journey_identities_customer_idx "
                "ON {schema}.journey_identities (customer_id)"),
            sql("CREATE TABLE IF NOT EXISTS {schema}.journey_customers ("
                "customer_id uuid PRIMARY KEY, kind text NOT NULL, customer_number text, "
                "merged_into uuid)"),
            # Per-record keys of the personal data (ledger/keys.py); key NULL: forgotten.
            sql("CREATE TABLE IF NOT EXISTS {schema}.journey_keys ("
                "customer_id uuid PRIMARY KEY, key bytea, forgotten_at text)"),
            # Tamper evidence (ledger/chain.py): one hash link per event, per customer.
            *chain.postgres_create(self.datastore.schema),
        ])
        # The events as four arrays of plain types, which psycopg's C adapters send as they are:
        # eventsourcing's array of a composite type is built and adapted in Python, under the
        # table lock every writer of the store takes turns on.
        self.insert_arrays_statement = sql(
            "INSERT INTO {schema}.{events} (originator_id, originator_version, topic, state) "
            "SELECT * FROM unnest(%s::uuid[], %s::bigint[], %s::text[], %s::bytea[]) "
            "RETURNING notification_id"
        )
        # A plain INSERT: a key created meanwhile by another writer fails the batch.
        self.insert_keys_statement = sql(
            "INSERT INTO {schema}.journey_keys (customer_id, key) "
            "SELECT x.c, decode(x.k, 'hex') FROM json_to_recordset(%s::json) AS x(c uuid, k text)"
        )
        self.forget_keys_statement = sql(
            "INSERT INTO {schema}.journey_keys (customer_id, key, forgotten_at) "
            "SELECT c, NULL, %s FROM unnest(%s::uuid[]) AS c "
            "ON CONFLICT (customer_id) DO UPDATE SET key = NULL, forgotten_at = EXCLUDED.forgotten_at"
        )
        self.forget_identities_statement = sql(
            "DELETE FROM {schema}.journey_identities WHERE customer_id = ANY(%s::uuid[])"
        )
        self.forget_numbers_statement = sql(
            "UPDATE {schema}.journey_customers SET customer_number = NULL "
            "WHERE customer_id = ANY(%s::uuid[])"
        )
        self.select_keys_statement = sql(
            "SELECT customer_id, key FROM {schema}.journey_keys WHERE customer_id = ANY(%s::uuid[])"
        )
        self.select_merged_into_statement = sql(
            "SELECT customer_id FROM {schema}.journey_customers WHERE merged_into = %s"
        )
        # One statement per table, each with a single JSON document as its parameter: psycopg's
        # pure-Python adapters dump arrays element by element (seconds per 100k rows), orjson
        # writes the whole batch in milliseconds and the server unpacks it.
        # A plain INSERT for facts: a fact recorded meanwhile by another writer fails the whole
        # batch (IntegrityError), which the writer retries against the new state.
        self.insert_facts_statement = sql(
            "INSERT INTO {schema}.journey_facts "
            "(event_id, customer_id, stream_id, stream_version, digest) "
            "SELECT x.e, x.c, x.s, x.v, decode(x.d, 'hex') FROM json_to_recordset(%s::json) "
            "AS x(e uuid, c uuid, s uuid, v bigint, d text)"
        )
        self.upsert_identities_statement = sql(
            "INSERT INTO {schema}.journey_identities (identity, customer_id) "
            "SELECT * FROM json_to_recordset(%s::json) AS x(k text, c uuid) "
            "ON CONFLICT (identity) DO UPDATE SET customer_id = EXCLUDED.customer_id"
        )
        self.check_owners_statement = sql(
            "SELECT x.k FROM json_to_recordset(%s::json) AS x(k text, c uuid, o uuid) "
            "LEFT JOIN {schema}.journey_identities i ON i.identity = x.k "
            "WHERE i.customer_id IS DISTINCT FROM x.o LIMIT 1"
        )
        self.upsert_customers_statement = sql(
            "INSERT INTO {schema}.journey_customers (customer_id, kind, customer_number, merged_into) "
            "SELECT * FROM json_to_recordset(%s::json) AS x(c uuid, k text, n text, m uuid) "
            "ON CONFLICT (customer_id) DO UPDATE SET kind = EXCLUDED.kind, "
            "customer_number = EXCLUDED.customer_number, merged_into = EXCLUDED.merged_into"
        )
        self.select_known_events_statement = sql(
            "SELECT event_id FROM {schema}.journey_facts WHERE event_id = ANY(%s::uuid[])"
        )
        self.select_fact_digests_statement = sql(
            "SELECT event_id, customer_id, digest FROM {schema}.journey_facts "
            "WHERE event_id = ANY(%s::uuid[])"
        )
        self.select_recorded_fact_statement = sql(
            "SELECT s.notification_id, s.originator_id, s.originator_version, s.topic, s.state "
            "FROM {schema}.journey_facts f JOIN {schema}.{events} s "
            "ON s.originator_id = f.stream_id AND s.originator_version = f.stream_version "
            "WHERE f.event_id = %s"
        )
        self.select_identity_owners_statement = sql(
            "SELECT identity, customer_id FROM {schema}.journey_identities "
            "WHERE identity = ANY(%s::text[])"
        )
        self.select_customer_records_statement = sql(
            "SELECT customer_id, kind, customer_number, merged_into FROM {schema}.journey_customers "
            "WHERE customer_id = ANY(%s::uuid[])"
        )
        self.select_existing_streams_statement = sql(
            "SELECT originator_id FROM {schema}.{events} "
            "WHERE originator_version = 1 AND originator_id = ANY(%s::uuid[])"
        )
        self.select_identities_of_statement = sql(
            "SELECT identity FROM {schema}.journey_identities WHERE customer_id = %s ORDER BY identity"
        )
        self.select_facts_of_statement = sql(
            "SELECT s.notification_id, s.originator_id, s.originator_version, s.topic, s.state "
            "FROM {schema}.journey_facts f JOIN {schema}.{events} s "
            "ON s.originator_id = f.stream_id AND s.originator_version = f.stream_version "
            "WHERE f.customer_id = %s ORDER BY s.notification_id"
        )
        self.select_rows_statement = sql(
            "SELECT notification_id, originator_id, originator_version, topic, state FROM {schema}.{events} "
            "WHERE notification_id > %s AND notification_id <= %s ORDER BY notification_id LIMIT %s"
        )
        self.count_facts_statement = sql("SELECT COUNT(*) AS n FROM {schema}.journey_facts")
        self.select_identities_by_customer_statement = sql(
            "SELECT customer_id, identity FROM {schema}.journey_identities "
            "WHERE customer_id = ANY(%s::uuid[]) ORDER BY customer_id, identity"
        )
        self.select_stream_versions_statement = sql(
            "SELECT originator_id, MAX(originator_version) AS v FROM {schema}.{events} "
            "WHERE originator_id = ANY(%s::uuid[]) GROUP BY originator_id"
        )
        self.select_first_states_statement = sql(
            "SELECT originator_id, state FROM {schema}.{events} "
            "WHERE originator_version = 1 AND originator_id = ANY(%s::uuid[])"
        )
        self.select_stream_states_statement = sql(
            "SELECT originator_id, state FROM {schema}.{events} "
            "WHERE originator_id = ANY(%s::uuid[]) "
            "AND (%s::bytea IS NULL OR position(%s::bytea IN state) > 0) "
            "ORDER BY originator_id, originator_version"
        )

    # -- writing -------------------------------------------------------------------------------

    @_RETRY
    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        # Everything that can fail in Python is done before the first statement: the
        # transaction must only ever commit whole.
        changes: IndexChanges | None = kwargs.get("index")
        index_params = _index_params(changes) if changes is not None else None
        arrays = ([e.originator_id for e in stored_events], [e.originator_version for e in stored_events],
                  [e.topic for e in stored_events], [e.state for e in stored_events])
        notification_ids: Sequence[int] | None = None
        with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as curs:
            # eventsourcing's process recorder: the tracking row (conflict -> IntegrityError).
            self._insert_events(curs, stored_events, **kwargs)
            if stored_events:
                # As eventsourcing does: lock the events table, NOTIFY, insert RETURNING ids.
                self._lock_table(curs)
                self._notify_channel(curs)
                curs.execute(self.insert_arrays_statement, arrays)
                notification_ids = [row["notification_id"] for row in curs.fetchall()]
                if len(notification_ids) != len(stored_events):
                    raise IntegrityError(f"{len(notification_ids)} notification ids for "
                                         f"{len(stored_events)} events")
            elif index_params is not None and any(index_params):
                self._lock_table(curs)
            if index_params is not None:
                self._insert_index(curs, *index_params)
            if changes is not None:
                self._insert_keys(curs, changes)
            # The hash chain, under the same lock (events without an index entry: ledger/chain.py).
            chain.postgres_write(curs, self.datastore.schema, notification_ids or [], stored_events,
                                 changes.facts if changes else None)
        return notification_ids

    def _insert_index(
        self,
        curs: Cursor[DictRow],
        facts: str | None,
        identities: str | None,
        customers: str | None,
    ) -> None:
        if facts is not None:
            curs.execute(self.insert_facts_statement, (facts,))
        if identities is not None:
            # Under the table lock: an owner changed by another writer since the batch read
            # it fails the batch (IntegrityError, the writer redoes it), never last-writer-wins.
            curs.execute(self.check_owners_statement, (identities,))
            changed = curs.fetchone()
            if changed is not None:
                raise IntegrityError(f"identity {changed['k']} changed owner while the batch ran")
            curs.execute(self.upsert_identities_statement, (identities,))
        if customers is not None:
            curs.execute(self.upsert_customers_statement, (customers,))

    def _insert_keys(self, curs: Cursor[DictRow], changes: IndexChanges) -> None:
        if changes.keys:
            curs.execute(self.insert_keys_statement, (orjson.dumps(
                [{"c": c.hex, "k": k.hex()} for c, k in changes.keys.items()]).decode(),))
        if changes.forget:
            # Crypto-shred: destroy the keys, delete the identity keys, clear the numbers.
            # (Deleted rows stay in the table's pages until VACUUM: docs/privacy.md.)
            ids = list(changes.forget)
            curs.execute(self.forget_keys_statement, (changes.forgotten_at, ids))
            curs.execute(self.forget_identities_statement, (ids,))
            curs.execute(self.forget_numbers_statement, (ids,))

    def scrub(self) -> bool:
        """Nothing to do here: VACUUM (run by the operator) reclaims deleted rows; VACUUM does
        not zero them, and VACUUM FULL locks the tables against every writer (docs/privacy.md)."""
        return True

    # -- reading the index ---------------------------------------------------------------------

    def _fetch(self, statement: Composed, *params: Any) -> list[DictRow]:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(statement, params)
            return curs.fetchall()

    @_RETRY
    def known_events(self, event_ids: Iterable[str]) -> set[str]:
        ids = [UUID(e) for e in event_ids]
        if not ids:
            return set()
        return {str(r["event_id"]) for r in self._fetch(self.select_known_events_statement, ids)}

    @_RETRY
    def fact_digests(self, event_ids: Iterable[str]) -> dict[str, tuple[UUID, bytes | None]]:
        ids = [UUID(e) for e in event_ids]
        if not ids:
            return {}
        rows = self._fetch(self.select_fact_digests_statement, ids)
        return {str(r["event_id"]): (r["customer_id"], None if r["digest"] is None else bytes(r["digest"]))
                for r in rows}

    @_RETRY
    def recorded_fact(self, event_id: str) -> Notification | None:
        rows = self._fetch(self.select_recorded_fact_statement, UUID(event_id))
        return Notification(id=rows[0]["notification_id"], originator_id=rows[0]["originator_id"],
                            originator_version=rows[0]["originator_version"], topic=rows[0]["topic"],
                            state=bytes(rows[0]["state"])) if rows else None

    @_RETRY
    def identity_owners(self, keys: Iterable[str]) -> dict[str, UUID]:
        wanted = list(keys)
        if not wanted:
            return {}
        rows = self._fetch(self.select_identity_owners_statement, wanted)
        return {r["identity"]: r["customer_id"] for r in rows}

    @_RETRY
    def customer_records(self, ids: Iterable[UUID]) -> dict[UUID, CustomerRecord]:
        wanted = list(ids)
        if not wanted:
            return {}
        rows = self._fetch(self.select_customer_records_statement, wanted)
        return {
            r["customer_id"]: CustomerRecord(r["kind"], r["customer_number"], r["merged_into"])
            for r in rows
        }

    @_RETRY
    def existing_streams(self, ids: Iterable[UUID]) -> set[UUID]:
        wanted = list(ids)
        if not wanted:
            return set()
        return {r["originator_id"] for r in self._fetch(self.select_existing_streams_statement, wanted)}

    @_RETRY
    def identities_of(self, customer_id: UUID) -> list[str]:
        return [r["identity"] for r in self._fetch(self.select_identities_of_statement, customer_id)]

    @_RETRY
    def facts_of(self, customer_id: UUID) -> list[Notification]:
        """Every stored event whose fact resolved to this customer, in log order."""
        return [
            Notification(id=r["notification_id"], originator_id=r["originator_id"],
                         originator_version=r["originator_version"], topic=r["topic"],
                         state=bytes(r["state"]))
            for r in self._fetch(self.select_facts_of_statement, customer_id)
        ]

    @_RETRY
    def select_rows(self, after: int, limit: int, stop: int | None = None) -> list[Row]:
        """(position, stream id, stream version, topic, state) of the events after position
        ``after`` (up to ``stop``), in log order: what ``select_notifications`` returns, as
        the driver's tuples, for ``decode_rows`` (a ``Notification`` per row, and a dict
        before it, were most of the read)."""
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(self.select_rows_statement,
                         (after, _MAX_POSITION if stop is None else stop, limit), prepare=True)
            return curs.fetchall()

    @_RETRY
    def fact_rows_of(self, customer_id: UUID) -> list[Row]:
        """:meth:`facts_of` as the rows of :meth:`select_rows`, for ``decode_rows``."""
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(self.select_facts_of_statement, (customer_id,))
            return curs.fetchall()

    @_RETRY
    def merged_into(self, customer_id: UUID) -> list[UUID]:
        return [r["customer_id"] for r in self._fetch(self.select_merged_into_statement, customer_id)]

    @_RETRY
    def load_keys(self, ids: Iterable[UUID]) -> dict[UUID, bytes | None]:
        wanted = list(ids)
        if not wanted:
            return {}
        return {r["customer_id"]: bytes(r["key"]) if r["key"] is not None else None
                for r in self._fetch(self.select_keys_statement, wanted)}

    @_RETRY
    def identities_by_customer(self, ids: Iterable[UUID]) -> dict[UUID, list[str]]:
        wanted = list(ids)
        found: dict[UUID, list[str]] = {}
        if wanted:
            for r in self._fetch(self.select_identities_by_customer_statement, wanted):
                found.setdefault(r["customer_id"], []).append(r["identity"])
        return found

    @_RETRY
    def stream_versions(self, ids: Iterable[UUID]) -> dict[UUID, int]:
        wanted = list(ids)
        if not wanted:
            return {}
        rows = self._fetch(self.select_stream_versions_statement, wanted)
        return {r["originator_id"]: int(r["v"]) for r in rows}

    @_RETRY
    def first_states(self, ids: Iterable[UUID]) -> dict[UUID, bytes]:
        wanted = list(ids)
        if not wanted:
            return {}
        return {r["originator_id"]: bytes(r["state"])
                for r in self._fetch(self.select_first_states_statement, wanted)}

    @_RETRY
    def stream_states(self, ids: Iterable[UUID], needle: bytes | None) -> dict[UUID, list[bytes]]:
        wanted = list(ids)
        found: dict[UUID, list[bytes]] = {}
        if wanted:
            for r in self._fetch(self.select_stream_states_statement, wanted, needle, needle):
                found.setdefault(r["originator_id"], []).append(bytes(r["state"]))
        return found

    @_RETRY
    def fact_count(self) -> int:
        [row] = self._fetch(self.count_facts_statement)
        return int(row["n"])


def _index_params(changes: IndexChanges) -> tuple[str | None, str | None, str | None]:
    """One JSON document per index table (None where a table has nothing to write)."""
    facts = None
    digests = changes.digests
    if changes.facts:
        facts = orjson.dumps(
            [{"e": e, "c": c, "s": s, "v": v, "d": d.hex() if (d := digests.get(e)) else None}
             for e, c, s, v in changes.facts]
        ).decode()
    identities = None
    if changes.identities:
        identities = orjson.dumps(
            [{"k": k, "c": c.hex, "o": o.hex if (o := changes.expected_owners.get(k)) else None}
             for k, c in changes.identities.items()]
        ).decode()
    customers = None
    if changes.customers:
        customers = orjson.dumps([
            {"c": c.hex, "k": r.kind, "n": r.customer_number,
             "m": r.merged_into.hex if r.merged_into else None}
            for c, r in changes.customers.items()
        ]).decode()
    return facts, identities, customers


def postgres_env(url: str, cache_size: int = DEFAULT_CACHE_SIZE) -> dict[str, str]:
    """eventsourcing's settings for ``postgresql://user[:password]@host[:port]/dbname``.

    eventsourcing merges ``os.environ`` under these settings and looks every key up with the
    application's name as a prefix first (``JOURNEY_POSTGRES_DBNAME`` before
    ``POSTGRES_DBNAME``). Every key is therefore given in both forms, so the URL decides and a
    stray variable in the environment cannot point the ledger somewhere else; the settings the
    recorder depends on (uuid ids, single-row tracking, no database functions, the schema) are
    pinned the same way.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise ValueError(f"not a postgresql:// URL: {_redact(url)!r}")
    if parts.query or parts.fragment:
        raise ValueError(f"URL options are not supported: {_redact(url)!r}")
    dbname = unquote(parts.path.lstrip("/"))
    if not dbname or "/" in dbname:
        raise ValueError(f"the URL names no database (postgresql://user@host:port/dbname): {_redact(url)!r}")
    try:
        port = parts.port or 5432
    except ValueError as error:
        raise ValueError(f"bad port in {_redact(url)!r}: {error}") from None
    if not parts.username:
        raise ValueError(f"the URL names no user (postgresql://user@host:port/dbname): {_redact(url)!r}")
    plain = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": dbname,
        "POSTGRES_HOST": parts.hostname or "localhost",
        "POSTGRES_PORT": str(port),
        "POSTGRES_USER": unquote(parts.username),
        "POSTGRES_PASSWORD": unquote(parts.password or ""),
        "POSTGRES_GET_PASSWORD_TOPIC": "",
        "POSTGRES_SCHEMA": "public",
        "POSTGRES_LOCK_TIMEOUT": "30",
        "POSTGRES_POOL_SIZE": "2",
        "POSTGRES_MAX_OVERFLOW": "8",
        "POSTGRES_ENABLE_DB_FUNCTIONS": "n",
        "SINGLE_ROW_TRACKING": "y",
        "ORIGINATOR_ID_TYPE": "uuid",
        "CREATE_TABLE": "y",
        "APPLICATION_RECORDER_TOPIC": "ledger.postgres_recorder:JourneyPostgresRecorder",
        "AGGREGATE_CACHE_MAXSIZE": str(cache_size),
        "AGGREGATE_CACHE_FASTFORWARD": "n",
        "DEEPCOPY_FROM_AGGREGATE_CACHE": "n",
    }
    prefix = JourneyApplication.name.upper() + "_"
    return {**plain, **{prefix + k: v for k, v in plain.items()}}


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)
