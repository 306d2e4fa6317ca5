"""``journey sql`` against an analyst who tries to reach more than the analyst tables.

The process running it can read ``ledger.sqlite`` (and the keys of everybody's personal data
in it), ``/etc/passwd`` and write files: none of that may be reachable from a query.
"""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

import duckdb
import orjson
import pytest

from journey.analytics.sandbox import open_sandbox
from journey.analytics.snapshots import read_manifest
from tests.analytics.helpers import run

PASSWD = "/etc/passwd"


def ledger_file(home: Path) -> str:
    return str(home / "ledger.sqlite")


def _generation(home: Path) -> Path:
    """The directory of the Parquet files the sandbox may read."""
    snapshot = read_manifest(home / "analytics")
    assert snapshot is not None
    return snapshot.location.resolve()


READS = [
    "SELECT * FROM read_blob('{ledger}')",
    "SELECT * FROM read_text('{ledger}')",
    "SELECT * FROM read_text('{passwd}')",
    "SELECT * FROM read_csv('{passwd}')",
    "SELECT * FROM read_csv_auto('{passwd}', sep=':')",
    "SELECT * FROM read_parquet('{ledger}')",
    "SELECT * FROM read_text('{home}/analytics/manifest.json')",
    "SELECT * FROM read_blob('{snapshot}/events.parquet/../../../../ledger.sqlite')",
    "SELECT * FROM read_blob('{snapshot}/*.parquet')",
    "SELECT * FROM read_blob('{home}/analytics/analyst.duckdb')",
    "SELECT * FROM sqlite_scan('{ledger}', 'journey_keys')",
    "SELECT * FROM glob('{home}/*')",
    "SELECT * FROM '{passwd}'",
    "WITH x AS (SELECT * FROM read_blob('{ledger}')) SELECT * FROM x",
    "SELECT count(*) FROM events; SELECT * FROM read_text('{passwd}')",
]


@pytest.mark.parametrize("sql", READS)
def test_no_file_can_be_read(sql: str, demo_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    query = sql.format(ledger=ledger_file(demo_home), passwd=PASSWD, home=demo_home,
                       snapshot=_generation(demo_home))
    code, out, err = run(capsys, demo_home, "sql", query, "--format", "csv")
    assert code == 2, out
    assert out == ""
    assert "root:" not in err and "SQLite format" not in err
    assert "Traceback" not in err


@pytest.mark.parametrize("sql", [
    "COPY (SELECT * FROM events) TO '{target}'",
    "COPY events TO '{target}' (FORMAT csv)",
    "SELECT 1; COPY (SELECT 1) TO '{target}'",
    "EXPLAIN ANALYZE COPY (SELECT 1) TO '{target}'",
    "EXPORT DATABASE '{target}'",
    "COPY (PIVOT events ON type USING count(*)) TO '{target}'",
])
def test_no_file_can_be_written(sql: str, demo_home: Path, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "stolen.csv"
    code, out, err = run(capsys, demo_home, "sql", sql.format(target=target))
    assert code == 2, out
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []
    assert "Traceback" not in err


@pytest.mark.parametrize("sql", [
    "COPY (SELECT 1 AS a) TO '{target}' (FORMAT parquet, USE_TMP_FILE false)",
    "EXPLAIN ANALYZE COPY (SELECT 1 AS a) TO '{target}' (FORMAT parquet, USE_TMP_FILE false)",
    "COPY (PIVOT events ON type USING count(*)) TO '{target}' (FORMAT parquet, USE_TMP_FILE false)",
    "SELECT 1; EXPLAIN ANALYZE COPY (SELECT 1 AS a) TO '{target}' (FORMAT parquet, USE_TMP_FILE false)",
])
def test_the_snapshot_itself_cannot_be_overwritten(sql: str, demo_home: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """The one place queries may read from is no place a statement may write to."""
    target = _generation(demo_home) / "events.parquet"
    before = target.read_bytes()
    code, out, err = run(capsys, demo_home, "sql", sql.format(target=target))
    assert code == 2, out
    assert target.read_bytes() == before
    code, out, err = run(capsys, demo_home, "sql", "SELECT count(*) AS n FROM events", "--json")
    assert code == 0 and orjson.loads(out)[0]["n"] > 1000, err


@pytest.mark.parametrize(("sql", "kind"), [
    ("ATTACH '{ledger}' AS store", "ATTACH"),
    ("ATTACH '{ledger}' AS store (TYPE sqlite, READ_ONLY)", "ATTACH"),
    ("INSTALL httpfs", "INSTALL/LOAD"),
    ("LOAD sqlite", "INSTALL/LOAD"),
    ("SET enable_external_access = true", "SET"),
    ("RESET enable_external_access", "SET"),
    ("SET lock_configuration = false", "SET"),
    ("SET allowed_directories = ['/']", "SET"),
    ("PRAGMA enable_profiling", "PRAGMA"),
    ("CREATE TABLE copied AS SELECT * FROM events", "CREATE"),
    ("CREATE SECRET (TYPE s3, KEY_ID 'x', SECRET 'y')", "CREATE"),
    ("SELECT 1; SET enable_external_access = true; SELECT * FROM read_text('{passwd}')", "SET"),
    ("DELETE FROM events", "DELETE"),
    ("CALL pragma_version()", "CALL"),
])
def test_statements_other_than_queries_are_refused_by_kind(
        sql: str, kind: str, demo_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, demo_home, "sql", sql.format(ledger=ledger_file(demo_home), passwd=PASSWD))
    assert (code, out) == (2, "")
    assert kind in err and "refuses" in err and "nothing was run" in err


@pytest.mark.parametrize("in_memory", [False, True], ids=["parquet", "in memory"])
def test_the_lock_holds_even_for_a_statement_that_got_through(demo_home: Path, in_memory: bool) -> None:
    """Beneath the refusal by kind, DuckDB itself may touch no other file and keeps its settings."""
    con, _ = open_sandbox(demo_home / "analytics", in_memory=in_memory)
    with closing(con):
        for setting in ("enable_external_access = true", "lock_configuration = false",
                        "allowed_directories = ['/']", "allowed_paths = ['/etc/passwd']"):
            with pytest.raises(duckdb.Error):
                con.execute(f"SET {setting}")
        with pytest.raises(duckdb.PermissionException):
            con.execute(f"SELECT * FROM read_text('{PASSWD}')")
        with pytest.raises(duckdb.PermissionException):
            con.execute(f"ATTACH '{ledger_file(demo_home)}' AS store")
        assert con.execute("SELECT count(*) FROM contacts").fetchone() != (0,)


@pytest.mark.parametrize("sql", [
    "SELECT type, count(*) AS n FROM events GROUP BY ALL ORDER BY n DESC",
    "WITH c AS (SELECT * FROM contacts) SELECT direction, count(*) FROM c GROUP BY ALL",
    "FROM snapshot",
    "DESCRIBE events",
    "SHOW TABLES",
    "SUMMARIZE cases",
    "EXPLAIN SELECT * FROM events WHERE type = 'call.inbound'",
    "SELECT * FROM pragma_table_info('events')",
    "PIVOT (SELECT department, type FROM events) ON type IN ('call.inbound', 'call.outbound') "
    "USING count(*)",
    "PIVOT events ON type USING count(*) GROUP BY department",
    "SELECT 1 AS a; SELECT 2 AS b",
    "EXPLAIN ANALYZE SELECT count(*) FROM contacts",
    "/* a comment */ SELECT count(*) FROM mentions -- and another",
])
def test_analyst_queries_still_run(sql: str, demo_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, demo_home, "sql", sql, "--json")
    assert code == 0, err
    assert out.startswith("[")


def test_an_empty_query_is_a_usage_error(demo_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, demo_home, "sql", "-- nothing here")
    assert (code, out) == (2, "")
    assert "no statement" in err
