"""DuckDB prints a progress bar to standard output for any query over 2 s; the project's
connections switch it off, or a long query corrupts ``--json`` output (it cost a 1M bench run
its result document)."""

from __future__ import annotations

from pathlib import Path

from projections.duckdb_store import ProjectionStore, connect


def test_project_connections_print_no_progress_bar(tmp_path: Path) -> None:
    for con in (connect(":memory:"), ProjectionStore(tmp_path / "p.duckdb").con):
        setting = con.execute("SELECT current_setting('enable_progress_bar')").fetchall()[0][0]
        assert setting is False
        con.close()
