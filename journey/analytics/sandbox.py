"""``journey sql``'s DuckDB: the analyst tables of one snapshot, and nothing else within reach.

An analyst's query runs with the rights of the process, which can read ``ledger.sqlite`` (the
keys of every customer's personal data included), ``/etc/passwd`` or anything else, and write
files. So the snapshot is loaded into an in-memory database first, and then DuckDB is told to
touch no file at all (``enable_external_access = false``: no ``read_*``, ``glob``, ``COPY``,
``EXPORT``, ``ATTACH`` of a file, ``INSTALL`` or ``LOAD``) and to refuse any change of its
configuration from then on (``lock_configuration = true``), so no statement can undo that.

Statements are also checked by the kind DuckDB parses them as, before any runs: only queries
(``SELECT``, ``WITH``, ``FROM``, ``VALUES``, ``DESCRIBE``, ``SHOW``, ``SUMMARIZE``, which DuckDB
parses as SELECT) and ``EXPLAIN``. The rest is refused with a message that says so, rather
than with a permission error from deep inside DuckDB, and a script is refused whole when one
of its statements is, so ``SELECT 1; COPY ...`` runs nothing.

Loading costs what reading the Parquet files costs (docs/analytics.md has the figures); views
over the files would need the snapshot directory readable, and a directory DuckDB may read it
may also write into with ``COPY``.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from journey.analytics.snapshots import Export, NoSnapshot, load_statements, read_manifest
from projections.duckdb_store import connect

#: What DuckDB calls the statements an analyst may run.
ALLOWED = frozenset({duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN})
#: How the refusal names what was asked for (DuckDB's own name otherwise).
_KINDS = {
    duckdb.StatementType.LOAD: "INSTALL/LOAD",
    duckdb.StatementType.SET: "SET/RESET/USE",
    duckdb.StatementType.CALL: "CALL/CHECKPOINT",
    duckdb.StatementType.MULTI: "a PIVOT without an IN list (it creates a type first: "
                                "name the columns, PIVOT ... ON c IN (...))",
}
ALLOWS = ("queries only: SELECT, WITH, FROM, VALUES, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN over "
          "the analyst tables; no files are read or written, no database attached, no extension "
          "loaded, no setting changed")


class Refused(Exception):
    """A statement the sandbox does not run; the message says which and what is allowed."""


def open_sandbox(directory: Path) -> tuple[duckdb.DuckDBPyConnection, Export]:
    """An in-memory DuckDB holding the latest snapshot in ``directory``, locked away from files.

    Raises :class:`NoSnapshot` when nothing was exported there yet.
    """
    snapshot = read_manifest(directory)
    if snapshot is None:
        raise NoSnapshot(f"no analyst snapshot in {directory} yet")
    con = connect(":memory:")
    try:
        for statement in load_statements(snapshot):
            con.execute(statement)
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
    except BaseException:
        con.close()
        raise
    return con, snapshot


def statements(con: duckdb.DuckDBPyConnection, query: str) -> list[duckdb.Statement]:
    """The statements of ``query``, each of a kind the sandbox runs; :class:`Refused` (naming
    the first that is not) otherwise, or when there is none. Parse errors propagate."""
    parsed = con.extract_statements(query)
    if not parsed:
        raise Refused("no statement to run (the query is empty or only comments)")
    for number, statement in enumerate(parsed, 1):
        if statement.type not in ALLOWED:
            kind = _KINDS.get(statement.type, statement.type.name)
            where = f"statement {number} of {len(parsed)}" if len(parsed) > 1 else "the statement"
            raise Refused(f"{where} is {kind}, which the analyst sandbox refuses ({ALLOWS}); "
                          "nothing was run")
    return parsed


def run(con: duckdb.DuckDBPyConnection, query: str) -> tuple[list[str], list[tuple[object, ...]]]:
    """Run every statement of ``query`` (checked first, all of them) and return the columns
    and rows of the last. The statements run are the very ones checked, not the text again."""
    columns: list[str] = []
    rows: list[tuple[object, ...]] = []
    for statement in statements(con, query):
        cursor = con.execute(statement)
        columns = [d[0] for d in cursor.description] if cursor.description else []
        rows = cursor.fetchall() if columns else []
    return columns, rows


def names(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The analyst tables and views, for a message about a name that is not one of them."""
    return [str(name) for (name,) in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE NOT internal UNION "
        "SELECT view_name FROM duckdb_views() WHERE NOT internal ORDER BY 1").fetchall()]
