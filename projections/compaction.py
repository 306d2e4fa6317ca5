"""Rewriting a DuckDB file without its free blocks.

DuckDB leaves the old versions of updated and deleted rows in free blocks of its file, where a
forgotten person's data stays readable to anyone who reads the bytes. Copying the live tables
into a new file and moving it over the old one leaves nothing else. For a file no process has
open; a store that holds its file open rewrites it itself (``ProjectionStore.compact``).
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb


def rewrite(path: Path) -> None:
    """Replace the DuckDB file at ``path`` by a copy of its live tables (atomically: a rename
    in one directory). Raises ``duckdb.IOException`` when another process holds it."""
    fresh = path.with_name(path.name + ".compact")
    for leftover in (fresh, Path(f"{fresh}.wal")):
        leftover.unlink(missing_ok=True)
    con = duckdb.connect(str(path))
    try:
        [(current,)] = con.execute("SELECT current_database()").fetchall()
        con.execute("CHECKPOINT")
        con.execute(f"ATTACH '{fresh}' AS journey_compacted")
        con.execute(f'COPY FROM DATABASE "{current}" TO journey_compacted')
        con.execute("DETACH journey_compacted")
    finally:
        con.close()
    os.replace(fresh, path)
    Path(f"{path}.wal").unlink(missing_ok=True)
