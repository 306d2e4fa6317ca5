"""``journey sql``'s DuckDB: the analyst tables of one snapshot, and nothing else within reach.

An analyst's query runs with the rights of the process, which can read ``ledger.sqlite`` (the
keys of every customer's personal data included), ``/etc/passwd`` or anything else, and write
files. So before a query runs, DuckDB is told to touch no file but the snapshot's Parquet
files (``allowed_paths``, then ``enable_external_access = false``: no other ``read_*``, no
``glob``, ``ATTACH``, ``INSTALL`` or ``LOAD``), and to refuse any change of its configuration
from then on (``lock_configuration = true``), so no statement can undo that.

Statements are checked by the kind DuckDB parses them as, all of them before any runs, so
``SELECT 1; COPY ...`` runs nothing. Allowed: queries (``SELECT``, ``WITH``, ``FROM``,
``VALUES``, ``DESCRIBE``, ``SHOW``, ``SUMMARIZE`` and a ``PIVOT`` with an ``IN`` list, which
DuckDB parses as SELECT; a query cannot write), ``EXPLAIN`` and a ``PIVOT`` that finds its
own columns (DuckDB's MULTI). Everything else is refused with a message that says so.

``EXPLAIN ANALYZE`` runs the statement it explains, and a MULTI wraps whatever statement holds
the PIVOT (a ``COPY`` too), and DuckDB writes into a path it may read. So those two run over
a copy of the snapshot loaded into memory, with no file allowed at all; plain queries read
the Parquet files in place, which costs nothing up front at any size of the ledger (loading
the 20,000-customer demo's 250k events takes 0.5 s and 160 MB, and grows with the ledger:
tens of seconds and gigabytes at a million customers).
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from journey.analytics.snapshots import (
    Dataset,
    Export,
    load_statements,
    parquet_files,
    pin,
    pin_dataset,
    read_manifest,
    release,
    view_statements,
)
from projections.duckdb_store import connect

#: Queries: they read the Parquet files in place.
QUERIES = frozenset({duckdb.StatementType.SELECT})
#: Statements that may run another statement: they run over the snapshot loaded into memory.
WRAPPERS = frozenset({duckdb.StatementType.EXPLAIN, duckdb.StatementType.MULTI})
#: How a refusal names what was asked for (DuckDB's own name otherwise).
_KINDS = {
    duckdb.StatementType.LOAD: "INSTALL/LOAD",
    duckdb.StatementType.SET: "SET/RESET/USE",
    duckdb.StatementType.CALL: "CALL/CHECKPOINT",
}
ALLOWS = ("queries only: SELECT, WITH, FROM, VALUES, DESCRIBE, SHOW, SUMMARIZE, PIVOT, EXPLAIN over "
          "the analyst views; no file is read but the snapshot's, none written, no database "
          "attached, no extension loaded, no setting changed")


class Refused(Exception):
    """A statement the sandbox does not run; the message says which and what is allowed."""


def kinds(query: str) -> list[duckdb.StatementType]:
    """The kinds of the statements in ``query``; :class:`Refused` (naming the first one that is
    not allowed) when one is not, or when there is none. Parse errors propagate."""
    with connect(":memory:") as parser:
        parsed = [s.type for s in parser.extract_statements(query)]
    if not parsed:
        raise Refused("no statement to run (the query is empty or only comments)")
    for number, kind in enumerate(parsed, 1):
        if kind not in QUERIES | WRAPPERS:
            name = _KINDS.get(kind, kind.name)
            where = f"statement {number} of {len(parsed)}" if len(parsed) > 1 else "the statement"
            raise Refused(f"{where} is {name}, which the analyst sandbox refuses ({ALLOWS}); "
                          "nothing was run")
    return parsed


def open_sandbox(directory: Path, *, in_memory: bool = False, partitioned: bool = False
                 ) -> tuple[duckdb.DuckDBPyConnection, Export | Dataset]:
    """A locked in-memory DuckDB with the analyst views over the latest snapshot in
    ``directory`` (``partitioned``: the Kafka partitions' dataset there): reading its Parquet
    files and no other file, or (``in_memory``) holding a copy of them and reading no file at
    all. :class:`NoSnapshot` when nothing was exported.

    The snapshot is pinned (snapshots.pin): the views read that generation (each partition's),
    the one the returned :class:`Export` (:class:`Dataset`) describes, however many exports
    follow."""
    snapshot: Export | Dataset = pin_dataset(directory) if partitioned else pin(directory)
    con = connect(":memory:")
    try:
        if in_memory:
            for statement in load_statements(snapshot):
                con.execute(statement)
        else:
            for statement in view_statements(snapshot):
                con.execute(statement)
            con.execute("SET allowed_paths = ?", [[str(p) for p in parquet_files(snapshot)]])
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
    except BaseException:
        con.close()
        release(snapshot)
        raise
    return con, snapshot


def answer(directory: Path, query: str, *, partitioned: bool = False
           ) -> tuple[list[str], list[tuple[object, ...]], Export | Dataset]:
    """Check every statement of ``query``, run them all, and return the columns and rows of
    the last, with the snapshot they read. The statements run are parsed again by the sandbox
    and checked again: what runs is what was checked."""
    in_memory = not set(kinds(query)) <= QUERIES
    con, snapshot = open_sandbox(directory, in_memory=in_memory, partitioned=partitioned)
    try:
        statements = con.extract_statements(query)
        allowed = QUERIES | WRAPPERS if in_memory else QUERIES
        if any(s.type not in allowed for s in statements):  # never: the same parser said so
            raise Refused(f"the query parsed differently in the sandbox ({ALLOWS}); nothing was run")
        columns: list[str] = []
        rows: list[tuple[object, ...]] = []
        for statement in statements:
            cursor = con.execute(statement)
            columns = [d[0] for d in cursor.description] if cursor.description else []
            rows = cursor.fetchall() if columns else []
        return columns, rows, snapshot
    finally:
        con.close()
        release(snapshot)


def names(directory: Path, *, partitioned: bool = False) -> list[str]:
    """The analyst views, for a message about a name that is not one of them."""
    if partitioned:
        tables = {t for sub in sorted(directory.glob("*/manifest.json"))
                  if (part := read_manifest(sub.parent)) is not None for t in part.rows}
    else:
        snapshot = read_manifest(directory)
        tables = set() if snapshot is None else set(snapshot.rows)
    if not tables:
        return []
    return sorted([*tables, *(["contacts"] if "events" in tables else []), "snapshot"])
