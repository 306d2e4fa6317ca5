"""What each department reads, recomputed from the rows of the customers a transaction touched.

The engine (projections/engine.py) calls :func:`refresh` once per transaction with every
customer whose rows it wrote, moved or emptied (and the owners of facts it quarantined). Each
derived table loses those customers' rows and gets them again, computed by the set-based SQL of
projections/sql/ from ``events``; a customer with no rows left (merged away, dropped from a
partition's file) keeps none.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pyarrow as pa

from projections.rules import Rules
from projections.sql import cases, customers, service
from projections.tables import over


def refresh(con: duckdb.DuckDBPyConnection, rules: Rules, customer_ids: Sequence[str]) -> None:
    _touch(con, customer_ids)
    con.execute("DELETE FROM customer_views WHERE customer_id IN (SELECT customer_id FROM touched)")
    con.execute("INSERT INTO customer_views SELECT customer_id, max(position) FROM events "
                "WHERE customer_id IN (SELECT customer_id FROM touched) GROUP BY customer_id")
    customers.refresh(con, rules)
    cases.refresh(con, rules)
    service.refresh(con, rules)
    con.execute("DROP TABLE touched")


def remember_forgotten(con: duckdb.DuckDBPyConnection, customer_ids: Sequence[str]) -> None:
    """Keep forgotten customers' counts (and the records merged into them) before their rows
    lose everything personal: the tombstone shows them for good."""
    _touch(con, customer_ids)
    customers.remember_forgotten(con)
    con.execute("DROP TABLE touched")


def _touch(con: duckdb.DuckDBPyConnection, customer_ids: Sequence[str]) -> None:
    """The table the statements of projections/sql/ read the customers to recompute from."""
    over(con, "CREATE OR REPLACE TEMP TABLE touched AS SELECT customer_id FROM arrow_batch",
         pa.Table.from_pydict({"customer_id": list(customer_ids)}, schema=_IDS))


_IDS = pa.schema([("customer_id", pa.string())])
