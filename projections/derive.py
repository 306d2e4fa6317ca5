"""What each department reads, recomputed from the rows of the customers a transaction touched.

The engine (projections/engine.py) calls :func:`refresh` once per transaction with every
customer whose rows it wrote, moved or emptied (and the owners of facts it quarantined). Each
derived table loses those customers' rows and gets them again, computed from ``events``; a
customer with no rows left (merged away, dropped from a partition's file) keeps none.

Two ways compute the same rows. A catch-up touches thousands of customers: the set-based SQL
of projections/sql/ computes them in bulk, at a fixed cost of planning its statements (a tenth
of a second or two). A live follower's transaction touches a few: each one's view is built from
their rows (projections/view_rows.py) and the Python rules that define every derived row
(``customer_view.summary`` and each table's ``rows``) give them in a few milliseconds. The
tests hold the two to the same rows, column for column (tests/integration/test_sql_*.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import duckdb
import pyarrow as pa

from projections import customer_view, derived, view_rows
from projections.rules import Rules
from projections.sql import cases, customers, service
from projections.tables import over

#: Up to this many touched customers, the rows are computed in Python (measured: one customer
#: 2-10 ms that way against 150-250 ms of planning for the SQL statements).
IN_PYTHON = 200

#: Rows of ``events`` the SQL recomputes from per round: its statements hold every row of a
#: round's customers in temporary tables, inside the projection's transaction. Each round also
#: scans ``events`` and plans its statements again, so rounds are made as large as the memory
#: allows: measured at 1M events (83,000 customers), the derived rows took 47-56 s in rounds
#: of 10,000 customers under 200 MB and 22-26 s in one or two rounds under 400 MB, while 25,000
#: customers (about 300,000 rows) at once ran out of 200 MB.
ROUND_ROWS = 600_000
#: DuckDB's memory limit while the SQL runs (the file's own limit is back afterwards, unless
#: it is larger): a round of ROUND_ROWS rows fits in it.
SQL_MEMORY_LIMIT = 500 * 1024 * 1024

#: The tables :func:`refresh` recomputes.
TABLES = ("customers", "identities", *(t.name for t in derived.tables()))


def refresh(con: duckdb.DuckDBPyConnection, rules: Rules, customer_ids: Sequence[str]) -> None:
    """Recompute every derived table's rows of these customers from their ``events`` rows:
    in Python for a few, by the SQL in rounds (:data:`ROUND_ROWS`) for more."""
    if len(customer_ids) <= IN_PYTHON:
        _round(con, rules, customer_ids)
        return
    limit = _memory_limit(con)
    if limit < SQL_MEMORY_LIMIT:
        con.execute(f"SET memory_limit = '{SQL_MEMORY_LIMIT}B'")
    try:
        for some in _rounds(con, customer_ids):
            _round(con, rules, some)
    finally:
        if limit < SQL_MEMORY_LIMIT:
            # In an aborted transaction this fails; the store's rollback path goes on.
            with contextlib.suppress(duckdb.Error):
                con.execute(f"SET memory_limit = '{limit}B'")


def _round(con: duckdb.DuckDBPyConnection, rules: Rules, some: Sequence[str]) -> None:
    touch(con, some)
    con.execute("DELETE FROM customer_views WHERE customer_id IN (SELECT customer_id FROM touched)")
    con.execute("INSERT INTO customer_views SELECT customer_id, max(position) FROM events "
                "WHERE customer_id IN (SELECT customer_id FROM touched) GROUP BY customer_id")
    if len(some) <= IN_PYTHON:
        in_python(con, rules, some)
    else:
        customers.refresh(con, rules)
        cases.refresh(con, rules)
        service.refresh(con, rules)
    con.execute("DROP TABLE touched")


def _rounds(con: duckdb.DuckDBPyConnection, customer_ids: Sequence[str]) -> list[list[str]]:
    """The customers in rounds of at most ROUND_ROWS rows (a customer with more has a round
    of their own)."""
    touch(con, customer_ids)
    counts = dict(con.execute("SELECT customer_id, count(*) FROM events WHERE customer_id IN "
                              "(SELECT customer_id FROM touched) GROUP BY customer_id").fetchall())
    con.execute("DROP TABLE touched")
    rounds: list[list[str]] = [[]]
    rows = 0
    for customer in customer_ids:
        count = int(counts.get(customer, 0))
        if rounds[-1] and rows + count > ROUND_ROWS:
            rounds.append([])
            rows = 0
        rounds[-1].append(customer)
        rows += count
    return rounds


_UNITS = {"": 1, "B": 1, "BYTES": 1, "KB": 1000, "MB": 1000**2, "GB": 1000**3, "TB": 1000**4,
          "KIB": 1024, "MIB": 1024**2, "GIB": 1024**3, "TIB": 1024**4}


def _memory_limit(con: duckdb.DuckDBPyConnection) -> int:
    """DuckDB's memory limit in bytes (it answers in words: '190.7 MiB')."""
    [(text,)] = con.execute("SELECT current_setting('memory_limit')").fetchall()
    number, _, unit = str(text).strip().partition(" ")
    try:
        return int(float(number) * _UNITS[unit.strip().upper()])
    except (ValueError, KeyError):
        return SQL_MEMORY_LIMIT  # not understood: left as it is


def remember_forgotten(con: duckdb.DuckDBPyConnection, customer_ids: Sequence[str]) -> None:
    """Keep forgotten customers' counts (and the records merged into them) before their rows
    lose everything personal: the tombstone shows them for good."""
    touch(con, customer_ids)
    customers.remember_forgotten(con)
    con.execute("DROP TABLE touched")


def in_python(con: duckdb.DuckDBPyConnection, rules: Rules, customer_ids: Sequence[str]) -> None:
    """The derived rows of these customers (listed in ``touched``) from the Python rules over
    their views."""
    for table in TABLES:
        con.execute(f"DELETE FROM {table} WHERE customer_id IN (SELECT customer_id FROM touched)")
    aliases = dict(con.execute("SELECT alias, customer_id FROM customer_aliases").fetchall())
    marks: dict[str, list[int]] = {}
    for position, owner in con.execute(
            "SELECT position, customer_id FROM quarantine WHERE customer_id IS NOT NULL").fetchall():
        marks.setdefault(aliases.get(owner, owner), []).append(int(position))
    # A record known only by facts set aside still has a (prospect's) view: its marks.
    views = view_rows.build(con, list(customer_ids), marks)
    if views:
        _write(con, views, rules)


def _write(con: duckdb.DuckDBPyConnection, views: dict[str, Any], rules: Rules) -> None:
    rendered = [customer_view.summary(v) for v in views.values()]
    over(con, "INSERT INTO customers SELECT * FROM arrow_batch",
         pa.Table.from_pylist([_customer_row(r) for r in rendered], schema=_CUSTOMER_SCHEMA))
    idents: dict[str, list[str]] = {"identity": [], "customer_id": []}
    for r in rendered:
        if r.get("forgotten"):
            continue  # nobody can be found by their identities any more
        for key in r["identities"]:
            idents["identity"].append(key)
            idents["customer_id"].append(r["customer_id"])
        idents["identity"].append(f"ledger:{r['customer_id']}")
        idents["customer_id"].append(r["customer_id"])
    over(con, "INSERT INTO identities SELECT * FROM arrow_batch", pa.Table.from_pydict(idents))
    for spec in derived.tables():
        rows = [row for view in views.values() for row in spec.rows(view, rules)]
        if rows:
            over(con, f"INSERT INTO {spec.name} SELECT * FROM arrow_batch",
                 pa.Table.from_pylist(rows, schema=spec.schema))


def touch(con: duckdb.DuckDBPyConnection, customer_ids: Sequence[str]) -> None:
    """The table the statements of projections/sql/ read the customers to recompute from."""
    over(con, "CREATE OR REPLACE TEMP TABLE touched AS SELECT customer_id FROM arrow_batch",
         pa.Table.from_pydict({"customer_id": list(customer_ids)}, schema=_IDS))


_IDS = pa.schema([("customer_id", pa.string())])

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
