"""Tables derived from customer views (cases, promises, the social inbox, products...).

Each is owned by a module that knows one story (``projections.cases``, ``projections.inbox``...)
and registers a :class:`DerivedTable` here: its ``rows`` define what the table holds for one
customer. The projection recomputes a touched customer's rows of every derived table in the
same DuckDB transaction as their events rows and the recorded position (projections/derive.py:
these rules for a few customers, the SQL of projections/sql/ for many, held equal by tests).
Rows are a pure function of one view: no clock is read, so anything that depends on *now*
(overdue, age) is computed by the query.

Every derived table has a ``customer_id`` column: that is how a customer's old rows are found
and replaced when the customer's view changes (and dropped when a merge absorbs them).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from projections.rules import Rules

Row = dict[str, Any]
View = dict[str, Any]


@dataclass(frozen=True, slots=True)
class DerivedTable:
    name: str
    #: ``CREATE TABLE IF NOT EXISTS name (customer_id VARCHAR NOT NULL, ...)``; the columns in
    #: the same order as ``schema``.
    ddl: str
    #: The Arrow schema of the rows (types DuckDB casts from; timestamps as ISO strings are fine
    #: when the DDL says TIMESTAMPTZ, the insert casts by position).
    schema: pa.Schema
    #: The rows of one customer's view (the fold state from ``projections.customer_view``)
    #: under the ledger's configured rules (the projection store's).
    rows: Callable[[View, Rules], list[Row]]


REGISTRY: dict[str, DerivedTable] = {}

#: Modules that register derived tables; imported on first use so this module has no cycle.
PROVIDERS: tuple[str, ...] = ("projections.cases", "projections.inbox", "projections.warranty")


def register(table: DerivedTable) -> DerivedTable:
    REGISTRY[table.name] = table
    return table


def tables() -> list[DerivedTable]:
    for module in PROVIDERS:
        importlib.import_module(module)
    return [REGISTRY[name] for name in sorted(REGISTRY)]
