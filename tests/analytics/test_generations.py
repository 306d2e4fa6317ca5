"""What analysts' own tools open: ``analyst.duckdb`` in the DuckDB command line, the Parquet
files as text, and a session that stays on the snapshot it opened while exports go on."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

from journey import open_ledger
from journey.analytics import sandbox
from journey.analytics.snapshots import (
    ANALYST_DB,
    GENERATIONS,
    analytics_dir,
    export,
    open_snapshot,
    pin,
    read_manifest,
    unpin,
)
from journey.bootstrap import Journey

#: The command line of the duckdb-cli package (the test extra), installed next to the Python
#: running the tests. Not found is a failure: this file is about what that program reads.
CLI = Path(sys.executable).parent / "duckdb"

FACTS = [
    {"type": "customer.registered", "id": "r1", "source": "crm", "customer": {"customer_id": "C-7"},
     "occurred_at": "2026-01-03T10:00:00+01:00", "data": {"name": "Uxue Arana", "phone": "+34622333777"}},
    {"type": "objection.recorded", "id": "x1", "source": "crm", "customer": {"customer_id": "C-7"},
     "occurred_at": "2026-01-04T10:00:00+01:00", "data": {"channels": ["phone"]}},
]


def _call(n: int) -> dict[str, Any]:
    return {"type": "call.outbound", "id": f"o{n}", "source": "cc", "customer": {"phone": "+34622333777"},
            "occurred_at": f"2026-02-01T10:{n % 60:02d}:00+01:00", "department": "sales",
            "data": {"purpose": "service", "outcome": "answered"}}


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Journey]:
    with closing(open_ledger(str(tmp_path / "ledger"))) as journey:
        assert not journey.record(FACTS).rejected
        yield journey


class Session:
    """An analyst's ``duckdb -readonly analyst.duckdb``, held open and asked one query at a time."""

    def __init__(self, path: Path, read_only: bool = True) -> None:
        assert CLI.is_file(), f"the DuckDB command line is not installed at {CLI} (pip install duckdb-cli)"
        mode = ["-readonly"] if read_only else []
        self.process = subprocess.Popen([str(CLI), *mode, "-csv", "-noheader", str(path)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, bufsize=1)

    def ask(self, sql: str) -> list[str]:
        """The rows of ``sql`` as CSV lines; an error fails with what the program said."""
        stdin, stdout = self.process.stdin, self.process.stdout
        assert stdin is not None and stdout is not None
        stdin.write(f"{sql.rstrip().rstrip(';')};\nSELECT 'end-of-answer';\n")
        stdin.flush()
        lines = []
        while (line := stdout.readline()) and line.strip() != "end-of-answer":
            lines.append(line.strip())
        assert line, f"the DuckDB command line ended: {self.close()}"
        return lines

    def close(self) -> str:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        finally:
            if self.process.poll() is None:
                self.process.kill()
        err = self.process.stderr.read() if self.process.stderr is not None else ""
        if self.process.stdout is not None:
            self.process.stdout.close()
        if self.process.stderr is not None:
            self.process.stderr.close()
        return err


def test_the_duckdb_command_line_reads_the_analyst_database(ledger: Journey) -> None:
    """`duckdb -readonly analyst.duckdb` (docs/analytics.md) with the command line pip installs."""
    directory = analytics_dir(ledger.settings)
    done = export(ledger.projections, directory)
    version = subprocess.run([str(CLI), "-version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0, version.stderr
    session = Session(directory / ANALYST_DB)
    try:
        assert session.ask("SELECT count(*) FROM events") == [str(len(FACTS))]
        assert session.ask("SELECT position FROM snapshot") == [str(done.position)]
        assert session.ask("SELECT count(*) FROM contacts") == ["0"]
        assert session.ask("SELECT data->>'$.channels[0]' FROM events WHERE type = 'objection.recorded'") == [
            "phone"]
        for table in done.rows:
            assert session.ask(f"SELECT count(*) FROM {table}") == [str(done.rows[table])], table
    finally:
        err = session.close()
    assert "Error" not in err, err
    # DuckDB 2 (the library the ledger runs on) reads the same file.
    with closing(duckdb.connect(str(directory / ANALYST_DB), read_only=True)) as con:
        assert con.execute("SELECT position FROM snapshot").fetchall() == [(done.position,)]


def test_json_columns_are_text_in_parquet_and_json_in_the_views(ledger: Journey) -> None:
    """Parquet readers other than DuckDB (Polars, pandas) get ``data`` as a string column."""
    done = export(ledger.projections, analytics_dir(ledger.settings))
    with closing(duckdb.connect()) as con:
        schema = dict(con.execute(
            "SELECT name, converted_type FROM parquet_schema(?)",
            [str(done.location / "events.parquet")]).fetchall())
    assert schema["data"] == "UTF8"
    con, _ = open_snapshot(analytics_dir(ledger.settings))
    with closing(con):
        types = dict(con.execute("SELECT column_name, data_type FROM information_schema.columns "
                                 "WHERE table_name = 'events'").fetchall())
        assert types["data"] == "JSON"
        (text,) = con.execute("SELECT data FROM events WHERE type = 'objection.recorded'").fetchone() or ("",)
    assert orjson.loads(text) == {"channels": ["phone"], "purpose": "commercial"}


def test_a_session_open_across_exports_reads_the_snapshot_it_reports(ledger: Journey) -> None:
    """The position a session reports is the position of the rows it reads, however many
    exports happen while it is open: the DuckDB command line on analyst.duckdb, and the
    in-memory views `journey sql` and `journey plot` use."""
    directory = analytics_dir(ledger.settings)
    first = export(ledger.projections, directory)
    cli = Session(directory / ANALYST_DB)
    con, pinned = open_snapshot(directory)
    try:
        assert cli.ask("SELECT position FROM snapshot") == [str(first.position)]
        for n in range(3):  # more than one export: not only the generation just superseded
            assert not ledger.record([_call(n)]).rejected
            later = export(ledger.projections, directory)
        assert later.position > first.position and later.rows["events"] == len(FACTS) + 3

        # The command line still reads the first export's rows and says so.
        assert cli.ask("SELECT position FROM snapshot") == [str(first.position)]
        assert cli.ask("SELECT count(*), max(position) FROM events") == [f"{len(FACTS)},{first.position}"]
        # And so do the in-memory views.
        assert pinned.position == first.position
        assert con.execute("SELECT (SELECT position FROM snapshot), count(*), max(position) "
                           "FROM events").fetchall() == [(first.position, len(FACTS), first.position)]
        # A session opened now reads the newest, and says so.
        fresh = Session(directory / ANALYST_DB)
        try:
            assert fresh.ask("SELECT (SELECT position FROM snapshot), count(*), max(position) FROM events") == [
                f"{later.position},{len(FACTS) + 3},{later.position}"]
        finally:
            fresh.close()
    finally:
        con.close()
        unpin(directory)
        err = cli.close()
    assert "Error" not in err, err


def test_generations_nobody_reads_are_deleted(ledger: Journey) -> None:
    """Kept: the current generation, the one before it, and those a session holds; after a
    forget, only the current one."""
    directory = analytics_dir(ledger.settings)
    held = export(ledger.projections, directory)
    session = Session(directory / ANALYST_DB)
    try:
        assert session.ask("SELECT position FROM snapshot") == [str(held.position)]
        names = [held.generation]
        for n in range(4):
            ledger.record([_call(n)])
            names.append(export(ledger.projections, directory).generation)
        assert sorted(p.name for p in (directory / GENERATIONS).iterdir()) == [names[0], *names[-2:]]
        assert session.ask("SELECT count(*) FROM events") == [str(held.rows["events"])]
    finally:
        session.close()
    # Closed: the next export lets it go.
    ledger.record([_call(9)])
    names.append(export(ledger.projections, directory).generation)
    assert sorted(p.name for p in (directory / GENERATIONS).iterdir()) == names[-2:]

    # `journey sql` and `plot` hold theirs the same way, and let it go when done.
    pinned = pin(directory)
    for n in range(2):
        ledger.record([_call(20 + n)])
        names.append(export(ledger.projections, directory).generation)
    assert pinned.location.is_dir()
    unpin(directory)
    ledger.record([_call(30)])
    names.append(export(ledger.projections, directory).generation)
    assert not pinned.location.exists()

    # The export after a forget keeps nothing else, whoever reads it.
    session = Session(directory / ANALYST_DB)
    try:
        ledger.record([_call(40)])
        done = export(ledger.projections, directory, purge=True)
        assert [p.name for p in (directory / GENERATIONS).iterdir()] == [done.generation]
    finally:
        session.close()
    current = read_manifest(directory)
    assert current is not None and current.generation == done.generation


def test_a_tool_holding_the_analyst_database_for_writing_locks_no_reader_out(ledger: Journey) -> None:
    """DBeaver opens a DuckDB file for writing unless told otherwise: `journey sql` still runs."""
    directory = analytics_dir(ledger.settings)
    done = export(ledger.projections, directory)
    session = Session(directory / ANALYST_DB, read_only=False)
    try:
        assert session.ask("SELECT position FROM snapshot") == [str(done.position)]
        columns, rows, snapshot = sandbox.answer(directory, "SELECT count(*) AS n FROM events")
        assert (columns, rows, snapshot.position) == (["n"], [(len(FACTS),)], done.position)
        ledger.record([_call(1)])
        later = export(ledger.projections, directory)  # and the export goes on
        assert sandbox.answer(directory, "SELECT position FROM snapshot")[1] == [(later.position,)]
    finally:
        session.close()


def test_files_of_a_directory_without_generations_are_replaced(ledger: Journey) -> None:
    """Parquet files directly in the analytics directory, under a manifest that names no
    generation, are no snapshot to read (they were replaced one by one), and the next export
    deletes them: they would keep a forgotten person."""
    directory = analytics_dir(ledger.settings)
    directory.mkdir(parents=True)
    (directory / "events.parquet").write_bytes(b"PAR1")
    (directory / "manifest.json").write_bytes(orjson.dumps({"position": 1, "tables": {}}))
    assert read_manifest(directory) is None
    done = export(ledger.projections, directory)
    assert not (directory / "events.parquet").exists()
    current = read_manifest(directory)
    assert current is not None and current.generation == done.generation


def test_a_data_directory_copied_without_its_links_exports_again(ledger: Journey, tmp_path: Path) -> None:
    """``cp -r`` or a backup tool turns the ``current`` link into a directory: the copy's next
    export replaces it with a link again instead of failing."""
    first = export(ledger.projections, analytics_dir(ledger.settings))
    ledger.close()
    copy = tmp_path / "copy"
    shutil.copytree(ledger.settings.data_dir, copy, symlinks=False)
    assert (copy / "analytics" / "current").is_dir()
    assert not (copy / "analytics" / "current").is_symlink()
    with closing(open_ledger(str(copy))) as again:
        assert not again.record([_call(1)]).rejected
        done = export(again.projections, analytics_dir(again.settings))
        assert done.position > first.position
        assert (copy / "analytics" / "current").is_symlink()
        assert read_manifest(analytics_dir(again.settings)).position == done.position  # type: ignore[union-attr]
