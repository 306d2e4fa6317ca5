"""The derived tables as the Python rules define them: the oracle of the SQL that computes them.

The projection computes ``customers``, ``identities`` and the departments' tables with the
set-based SQL of projections/sql/. What those rows must be is defined by the Python rules:
``customer_view.summary`` and the ``rows`` function each derived table registers
(projections/cases.py, inbox.py, warranty.py), applied to each customer's view as
projections/view_rows.py builds it from the same ``events`` rows. :func:`rewrite` replaces a
file's derived rows with those, so a test can compare them with what the SQL writes.
"""

from __future__ import annotations

from typing import Any

import duckdb
import pyarrow as pa

from projections import customer_view, derived, view_rows
from projections.rules import DEFAULT_RULES, Rules
from projections.view_rows import View

TABLES = ("customers", "identities", *(t.name for t in derived.tables()))


def rewrite(con: duckdb.DuckDBPyConnection, rules: Rules = DEFAULT_RULES) -> None:
    """Replace every row of :data:`TABLES` with the rows the Python rules give."""
    aliases = dict(con.execute("SELECT alias, customer_id FROM customer_aliases").fetchall())
    marks: dict[str, list[int]] = {}
    for position, owner in con.execute(
            "SELECT position, customer_id FROM quarantine WHERE customer_id IS NOT NULL").fetchall():
        marks.setdefault(aliases.get(owner, owner), []).append(int(position))
    ids = sorted({str(r[0]) for r in con.execute("SELECT DISTINCT customer_id FROM events").fetchall()})
    views = view_rows.build(con, ids, marks)
    # A record known only by facts set aside still has a (prospect's) view: its marks.
    for owner, positions in marks.items():
        if owner not in views and owner not in aliases:
            views[owner] = {**customer_view.new_view(owner), "quarantined": sorted(positions)}
    for table in TABLES:
        con.execute(f"DELETE FROM {table}")
    _write(con, views, rules)


def _write(con: duckdb.DuckDBPyConnection, views: dict[str, View], rules: Rules) -> None:
    rendered = [customer_view.summary(v) for v in views.values()]
    customers = pa.Table.from_pylist([_customer_row(r) for r in rendered], schema=_CUSTOMER_SCHEMA)
    con.register("customers_rows", customers)
    con.execute("INSERT INTO customers SELECT * FROM customers_rows")
    con.unregister("customers_rows")
    idents: dict[str, list[str]] = {"identity": [], "customer_id": []}
    for r in rendered:
        if r.get("forgotten"):
            continue  # nobody can be found by their identities any more
        for key in r["identities"]:
            idents["identity"].append(key)
            idents["customer_id"].append(r["customer_id"])
        idents["identity"].append(f"ledger:{r['customer_id']}")
        idents["customer_id"].append(r["customer_id"])
    con.register("identity_rows", pa.Table.from_pydict(idents))
    con.execute("INSERT INTO identities SELECT * FROM identity_rows")
    con.unregister("identity_rows")
    for spec in derived.tables():
        rows = [row for view in views.values() for row in spec.rows(view, rules)]
        if rows:
            con.register("derived_rows", pa.Table.from_pylist(rows, schema=spec.schema))
            con.execute(f"INSERT INTO {spec.name} SELECT * FROM derived_rows")
            con.unregister("derived_rows")


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
