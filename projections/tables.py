"""The projections' tables, and how this project talks to DuckDB.

Below the engine (projections/engine.py) and the store that drives it
(projections/duckdb_store.py): both write these tables through :func:`over`.
"""

from __future__ import annotations

import ctypes
from contextlib import suppress
from typing import Any

import duckdb
import pyarrow as pa

from projections import quarantine
from projections.sql.customers import TOMBSTONES_DDL

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS projection_position (
        name VARCHAR PRIMARY KEY, position BIGINT NOT NULL, updated_at TIMESTAMPTZ)""",
    """CREATE TABLE IF NOT EXISTS events (
        position BIGINT NOT NULL, event_id VARCHAR NOT NULL, customer_id VARCHAR NOT NULL,
        stream_id VARCHAR NOT NULL, stream_version INTEGER NOT NULL, type VARCHAR NOT NULL,
        type_version INTEGER NOT NULL, occurred_at TIMESTAMPTZ NOT NULL,
        occurred_local VARCHAR NOT NULL, recorded_at TIMESTAMPTZ NOT NULL, source VARCHAR NOT NULL,
        source_id VARCHAR NOT NULL, department VARCHAR, agent VARCHAR, channel VARCHAR,
        purpose VARCHAR, campaign VARCHAR, case_id VARCHAR, lag_s DOUBLE, copied BOOLEAN,
        ref JSON, data JSON)""",
    """CREATE TABLE IF NOT EXISTS customers (
        customer_id VARCHAR NOT NULL, customer_number VARCHAR, kind VARCHAR, name VARCHAR,
        birthday DATE, language VARCHAR, timezone VARCHAR, street VARCHAR, number VARCHAR,
        postal_code VARCHAR, city VARCHAR, phone VARCHAR, email VARCHAR, twitter VARCHAR,
        identities VARCHAR[], events BIGINT, first_seen TIMESTAMPTZ, last_seen TIMESTAMPTZ,
        cases INTEGER, open_cases INTEGER, open_promises INTEGER, products INTEGER,
        active_objections INTEGER, departments VARCHAR[], merged_from VARCHAR[])""",
    # ``events.copied``: a row a partition's file holds for a view of its own whose fact was keyed
# to another partition (a record merged across partitions, read from the store); the other
# partition's file has the fact's own row. Never set in a file that follows the store.
# The customers this file has rows of, and the last store position among them: the
    # change feed publishes the customers whose position passed its mark.
    """CREATE TABLE IF NOT EXISTS customer_views (
        customer_id VARCHAR NOT NULL, position BIGINT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS identities (
        identity VARCHAR NOT NULL, customer_id VARCHAR NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS customer_aliases (
        alias VARCHAR NOT NULL, customer_id VARCHAR NOT NULL)""",
    # What a forgotten customer's tombstone keeps (the counts, read from public fields only,
    # as they stood when the customer was forgotten): their rows hold nothing to count again.
    TOMBSTONES_DDL,
    # Point lookups (a department's search, a customer's timeline, a view built from rows)
    # must not slow down as the ledger grows: without these a lookup scans the table (12-19 ms
    # at 1M events, linear in size); with them 0.4-0.7 ms.
    "CREATE INDEX IF NOT EXISTS events_by_customer ON events(customer_id)",
    "CREATE INDEX IF NOT EXISTS identities_by_key ON identities(identity)",
    "CREATE INDEX IF NOT EXISTS views_by_customer ON customer_views(customer_id)",
    quarantine.SCHEMA,
]

EVENT_COLUMNS = ("position", "event_id", "customer_id", "stream_id", "stream_version", "type",
                 "type_version", "occurred_at", "occurred_local", "recorded_at", "source",
                 "source_id", "department", "agent", "channel", "purpose", "campaign", "case_id",
                 "lag_s", "copied", "ref", "data")
#: The writer's DuckDB memory; it spills to disk beyond. With DuckDB's default (80% of the
#: machine's RAM) its buffers alone took over 1 GB of a 1M-event projection's process.
MEMORY_LIMIT = "200MB"
#: After a transaction of at least this many facts (and after each further chunk of one),
#: freed memory is handed back to the OS.
RELEASE_AFTER = 50_000


def connect(path: str, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection for this project: without DuckDB's progress bar, which it prints to
    standard output for any query over 2 s and which would corrupt ``--json`` output (a 1M-event
    bench run lost its result document to it)."""
    con = duckdb.connect(path, read_only=read_only)
    con.execute("SET enable_progress_bar = false")  # a session option: not settable at connect
    return con


def over(con: duckdb.DuckDBPyConnection, sql: str, arrow_batch: pa.Table,
         parameters: list[Any] | None = None) -> None:
    """Run ``sql``, in which the name ``arrow_batch`` is this Arrow table.

    DuckDB finds the table by a replacement scan of this frame's local of that name. Not
    ``con.register()``: a registered object stays referenced by the open transaction until
    it commits, even after ``unregister``, so a 200k-event transaction kept every Arrow table
    it had written (95 MiB of events rows after ten chunks, 310 MiB at the end, measured with
    ``pa.total_allocated_bytes()``). The scanned table is freed when this call returns."""
    con.execute(sql, parameters)


def release_memory() -> None:
    """Hand freed memory back to the OS after a big transaction: Arrow's pool and glibc's
    heap otherwise keep the transaction's peak for good."""
    pa.default_memory_pool().release_unused()
    with suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)  # glibc only
