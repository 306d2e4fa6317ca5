"""The derived tables as the Python rules define them: the oracle of the SQL that computes them.

The projection computes ``customers``, ``identities`` and the departments' tables with the
set-based SQL of projections/sql/ when a transaction touches many customers. What those rows
must be is defined by the Python rules (``customer_view.summary`` and the ``rows`` function
each derived table registers) applied to each customer's view as projections/view_rows.py
builds it from the same ``events`` rows: ``projections.derive.in_python``, which the engine
uses for small transactions. :func:`rewrite` replaces a file's derived rows with those, for
every customer, so a test can compare them with what the SQL writes.
"""

from __future__ import annotations

import duckdb

from projections import derive
from projections.rules import DEFAULT_RULES, Rules


def rewrite(con: duckdb.DuckDBPyConnection, rules: Rules = DEFAULT_RULES) -> None:
    """Replace every derived row with the rows the Python rules give, for every customer."""
    ids = sorted({str(r[0]) for r in con.execute(
        "SELECT customer_id FROM events UNION SELECT customer_id FROM quarantine "
        "WHERE customer_id IS NOT NULL").fetchall()})
    derive.touch(con, ids)
    derive.in_python(con, rules, ids)
    con.execute("DROP TABLE touched")
