"""Compare two projection files table by table: row counts and an order-independent digest.

Both files are ATTACHed READ_ONLY to a private in-memory DuckDB connection, so neither is
written. DuckDB allows one process to hold a file for writing; a file held that way cannot
be attached, even read-only, and :class:`LockedError` says so.

The digest of a table is the sum (as HUGEINT, so it cannot overflow) of the first 60 bits of
the md5 of each row's canonical text, with the row count: the order rows were written in does
not matter, a changed, missing or doubled row does. The canonical text is every compared
column cast to VARCHAR (NULL spelled out), joined by a unit separator.

Left out, because they legitimately differ between a live file and a rebuild:

- the table ``projection_position`` (when each cursor moved, and a live file fed by several
  sources has other cursors);
- ``quarantine.quarantined_at`` (the quarantine's entries themselves are compared).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from projections import derived
from projections.duckdb_store import connect

TABLES = ("events", "customers", "customer_views", "identities", "customer_aliases", "tombstones",
          "quarantine")
SKIPPED_TABLES = ("projection_position",)
#: Columns left out: when a fact was quarantined differs between a live file and a rebuild;
#: which facts, and why, must not.
IGNORED_COLUMNS = {("quarantine", "quarantined_at")}
_SEP = "\x1f"
_NULL = "\x00"


class LockedError(RuntimeError):
    """Another process holds the file for writing."""


@dataclass
class TableDiff:
    table: str
    live_rows: int
    other_rows: int
    live_digest: str
    other_digest: str
    #: rows in one file and not the other (multiset difference), and a few examples.
    only_live: int = 0
    only_other: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def same(self) -> bool:
        return self.live_rows == self.other_rows and self.live_digest == self.other_digest

    def to_json(self) -> dict[str, Any]:
        return {"table": self.table, "same": self.same, "live_rows": self.live_rows,
                "rebuilt_rows": self.other_rows, "live_digest": self.live_digest,
                "rebuilt_digest": self.other_digest, "only_live": self.only_live,
                "only_rebuilt": self.only_other, "examples": self.examples}


@dataclass
class DiffResult:
    live: Path
    other: Path
    live_position: int | None
    other_position: int | None
    tables: list[TableDiff]

    @property
    def same(self) -> bool:
        return all(t.same for t in self.tables)

    def to_json(self) -> dict[str, Any]:
        return {"live": str(self.live), "rebuilt": str(self.other), "same": self.same,
                "live_position": self.live_position, "rebuilt_position": self.other_position,
                "skipped_tables": list(SKIPPED_TABLES),
                "tables": [t.to_json() for t in self.tables]}


def table_names() -> list[str]:
    return [*TABLES, *(t.name for t in derived.tables())]


def attach(con: duckdb.DuckDBPyConnection, path: Path, alias: str) -> None:
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such projections file")
    try:
        con.execute(f"ATTACH '{_quote(str(path))}' AS {alias} (READ_ONLY)")
    except duckdb.IOException as error:
        if "lock" in str(error).lower():
            raise LockedError(
                f"{path} is open for writing by another process (DuckDB allows one writer "
                f"process per file); stop that process or diff "
                f"a copy of the file. DuckDB said: {str(error).splitlines()[0]}") from None
        raise


def _quote(text: str) -> str:
    return text.replace("'", "''")


def _columns(con: duckdb.DuckDBPyConnection, alias: str, table: str) -> list[str]:
    rows = con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE database_name = ? AND table_name = ? "
        "ORDER BY column_index", [alias, table]).fetchall()
    return [str(r[0]) for r in rows if (table, str(r[0])) not in IGNORED_COLUMNS]


def _row_text(table: str, columns: list[str]) -> str:
    parts = [f"coalesce(CAST({c} AS VARCHAR), '{_NULL}')" for c in columns]
    return f"concat_ws('{_SEP}', {', '.join(parts)})" if parts else "''"


def _compare(con: duckdb.DuckDBPyConnection, table: str, columns: list[str],
             examples: int) -> TableDiff:
    text = _row_text(table, columns)
    digest = ("SELECT count(*), coalesce(sum(CAST(('0x' || substr(md5({t}), 1, 15)) AS BIGINT)"
              "::HUGEINT), 0) FROM {a}.{table}")
    found = []
    for alias in ("live", "other"):
        n, total = con.execute(digest.format(t=text, a=alias, table=table)).fetchall()[0]
        found.append((int(n), format(int(total), "x")))
    diff = TableDiff(table, found[0][0], found[1][0], found[0][1], found[1][1])
    if diff.same:
        return diff
    cols = ", ".join(columns)
    for side, a, b in (("live", "live", "other"), ("rebuilt", "other", "live")):
        sql = f"SELECT {cols} FROM {a}.{table} EXCEPT ALL SELECT {cols} FROM {b}.{table}"
        count = int(con.execute(f"SELECT count(*) FROM ({sql})").fetchall()[0][0])
        if side == "live":
            diff.only_live = count
        else:
            diff.only_other = count
        cursor = con.execute(f"{sql} LIMIT {int(examples)}")
        names = [d[0] for d in cursor.description]
        for values in cursor.fetchall():
            row = {k: v for k, v in zip(names, values, strict=True) if k not in ("data", "ref")}
            diff.examples.append({"only_in": side, "row": {k: _short(v) for k, v in row.items()
                                                            if v is not None}})
    return diff


def _short(value: Any, width: int = 40) -> str:
    text = str(value)
    return text if len(text) <= width else text[:width - 1] + "…"


def diff(live: Path, other: Path, examples: int = 3) -> DiffResult:
    """Compare the live projections file with ``other`` (a rebuild), table by table."""
    con = connect(":memory:")
    try:
        attach(con, live, "live")
        attach(con, other, "other")
        positions: list[int | None] = []
        for alias in ("live", "other"):
            rows = con.execute(f"SELECT position FROM {alias}.projection_position WHERE name = 'main'"
                               ).fetchall()
            positions.append(int(rows[0][0]) if rows else None)
        result = DiffResult(live, other, positions[0], positions[1], [])
        for table in table_names():
            live_cols, other_cols = _columns(con, "live", table), _columns(con, "other", table)
            if not live_cols or not other_cols:
                missing = "live" if not live_cols else "rebuilt"
                result.tables.append(TableDiff(table, 0, 0, f"(no table in {missing})", ""))
                continue
            if live_cols != other_cols:
                result.tables.append(TableDiff(table, 0, 0, "columns: " + ",".join(live_cols),
                                               "columns: " + ",".join(other_cols)))
                continue
            result.tables.append(_compare(con, table, live_cols, examples))
        return result
    finally:
        con.close()
