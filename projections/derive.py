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

#: Customers the SQL recomputes per round: its statements hold every row of a round's
#: customers in temporary tables, inside the projection's transaction, under the file's
#: DuckDB memory limit (200 MB: 70,000 customers of a 1M-event ledger at once ran out of it).
SQL_SLICE = 10_000

#: The tables :func:`refresh` recomputes.
TABLES = ("customers", "identities", *(t.name for t in derived.tables()))


def refresh(con: duckdb.DuckDBPyConnection, rules: Rules, customer_ids: Sequence[str]) -> None:
    for start in range(0, len(customer_ids), SQL_SLICE):
        some = customer_ids[start:start + SQL_SLICE]
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
