"""What each department reads, recomputed from the rows of the customers a transaction touched.

The engine (projections/engine.py) calls :func:`refresh` once per transaction with every
customer whose rows it wrote, moved or emptied. Each derived table loses those customers' rows
and gets them again, computed from ``events``; a customer with no rows left (merged away,
dropped from a partition's file) keeps none.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb
import pyarrow as pa

from projections import customer_view, derived, view_rows
from projections.duckdb_store import ProjectionStore, over
from projections.sql import service

#: Derived tables whose rows SQL statements compute (the rest are computed from views built
#: from the rows, in Python).
IN_SQL = frozenset(("mentions", "products", "warranty_claims"))

#: Customers whose views are built at a time when a table is derived in Python.
SLICE = 1_000


def refresh(store: ProjectionStore, customer_ids: Sequence[str]) -> None:
    con = store.con
    over(con, "CREATE OR REPLACE TEMP TABLE touched AS SELECT customer_id FROM arrow_batch",
         pa.Table.from_pydict({"customer_id": list(customer_ids)}))
    con.execute("DELETE FROM customer_views WHERE customer_id IN (SELECT customer_id FROM touched)")
    con.execute("INSERT INTO customer_views SELECT customer_id, max(position) FROM events "
                "WHERE customer_id IN (SELECT customer_id FROM touched) GROUP BY customer_id")
    service.refresh(con, store.rules)
    _python_refresh(store, customer_ids)
    con.execute("DROP TABLE touched")


def remember_forgotten(con: duckdb.DuckDBPyConnection, customer_id: str) -> None:
    """Keep a forgotten customer's counts (and the records merged into them) before their rows
    lose everything personal: the tombstone shows them for good."""
    if con.execute("SELECT 1 FROM tombstones WHERE customer_id = ?", [customer_id]).fetchall():
        return
    rows = con.execute(view_rows.ONE, [customer_id]).fetchall()
    forgets = sorted((r for r in rows if r[3] == "customer.forgotten"), key=lambda r: r[1])
    if not forgets:
        return
    view = view_rows.fold(customer_id, [r for r in rows if r[3] != "customer.forgotten"])
    kept = customer_view.summary(view)
    con.execute("INSERT INTO tombstones VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [customer_id, customer_view.utc_key(forgets[0][4]), view["merged_from"],
                 *(kept[k] for k in customer_view.KEPT)])


def _python_refresh(store: ProjectionStore, customer_ids: Sequence[str]) -> None:
    con = store.con
    for table in ("customers", "identities", *(t.name for t in derived.tables() if t.name not in IN_SQL)):
        con.execute(f"DELETE FROM {table} WHERE customer_id IN (SELECT customer_id FROM touched)")
    marks = store._quarantine_marks()
    for i in range(0, len(customer_ids), SLICE):
        views = view_rows.build(con, list(customer_ids[i:i + SLICE]), marks)
        if views:
            _write(store, views)


def _write(store: ProjectionStore, views: dict[str, Any]) -> None:
    con = store.con
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
        if spec.name in IN_SQL:
            continue
        rows = [row for view in views.values() for row in spec.rows(view, store.rules)]
        if rows:
            over(con, f"INSERT INTO {spec.name} SELECT * FROM arrow_batch",
                 pa.Table.from_pylist(rows, schema=spec.schema))


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
