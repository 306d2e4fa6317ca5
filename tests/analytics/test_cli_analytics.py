"""``journey sql``, ``journey export`` and ``journey plot`` as analysts use them."""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from datetime import date, datetime
from pathlib import Path

import orjson
import pytest

from domain.identity import customer_uuid
from journey.cli.tables import cell, table
from tests.analytics.helpers import run

SVG = "{http://www.w3.org/2000/svg}"
QUERY = "SELECT type, count(*) AS n FROM events GROUP BY type ORDER BY n DESC, type LIMIT 3"


def test_sql_prints_an_aligned_table(demo_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, demo_home, "sql", QUERY)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["type", "n"]
    assert set(lines[1].replace(" ", "")) == {"-"}
    assert len(lines) == 6 and lines[-1] == "(3 rows)"
    # Numbers right-aligned: every count ends in the same column.
    assert len({len(line) for line in lines[2:5]}) == 1
    assert "snapshot at position" in err


def test_sql_csv_and_json(demo_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, demo_home, "sql", QUERY, "--format", "csv")
    assert code == 0
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["type", "n"] and len(rows) == 4 and int(rows[1][1]) >= int(rows[2][1])
    code, out, _ = run(capsys, demo_home, "sql", QUERY, "--json")
    assert code == 0
    docs = orjson.loads(out)
    assert [d["type"] for d in docs] == [r[0] for r in rows[1:]]
    assert all(isinstance(d["n"], int) for d in docs)
    code, again, _ = run(capsys, demo_home, "sql", QUERY, "--format", "json")
    assert code == 0 and again == out
    # JSON columns come back as structures, times as ISO strings.
    code, out, _ = run(capsys, demo_home, "sql",
                       "SELECT data, occurred_at FROM events WHERE type = 'objection.recorded' LIMIT 1", "--json")
    doc = orjson.loads(out)[0]
    assert isinstance(doc["data"], dict) and datetime.fromisoformat(doc["occurred_at"])


def test_sql_reads_stdin_and_files(demo_home: Path, capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    query = tmp_path / "q.sql"
    query.write_text("SELECT count(*) AS customers\nFROM customers;\n")
    code, out, _ = run(capsys, demo_home, "sql", "--file", str(query), "--format", "csv")
    assert code == 0 and out.splitlines()[0] == "customers"
    monkeypatch.setattr("sys.stdin", io.StringIO("SELECT 42 AS answer"))
    code, out, _ = run(capsys, demo_home, "sql", "-", "--format", "csv")
    assert code == 0 and out == "answer\n42\n"


def test_bad_sql_says_what_is_wrong(demo_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, demo_home, "sql", "SELEC 1")
    assert code == 2 and out == ""
    assert "journey sql: Parser Error" in err and "SELEC" in err
    code, _, err = run(capsys, demo_home, "sql", "SELECT * FROM calls")
    assert code == 2 and "calls does not exist" in err
    assert "the analyst views:" in err and "events" in err and "contacts" in err
    code, _, err = run(capsys, demo_home, "sql", "SELECT nope FROM events")
    assert code == 2 and "nope" in err
    code, _, err = run(capsys, demo_home, "sql")
    assert code == 2 and "give a query" in err


def test_no_snapshot_yet_says_to_run_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, tmp_path / "empty", "sql", "SELECT 1")
    assert code == 2 and out == ""
    assert "no analyst snapshot" in err and "run `journey export`" in err
    code, _, err = run(capsys, tmp_path / "empty", "plot", "base", "--out", str(tmp_path / "b.svg"))
    assert code == 2 and "run `journey export`" in err
    assert not (tmp_path / "empty").exists()  # no ledger made on the spot


def test_sql_never_opens_the_projections(demo_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """It lists the database files DuckDB has attached: only the in-memory one."""
    code, out, _ = run(capsys, demo_home, "sql", "SELECT database_name, path FROM duckdb_databases() "
                       "WHERE NOT internal", "--json")
    assert code == 0
    assert [d["path"] for d in orjson.loads(out)] == [None]


def test_export_prints_what_it_published(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        demo_home: Path) -> None:
    code, out, err = run(capsys, demo_home, "export")
    assert code == 0, err
    first = out.splitlines()[0]
    assert first.startswith("exported ") and " tables, " in first and "at position" in first
    assert "events" in out and "(left out: source_id, ref)" in out and "not exported: customer_views" in out
    code, out, _ = run(capsys, demo_home, "export", "--json")
    doc = orjson.loads(out)
    assert code == 0 and doc["via"] == "direct" and doc["tables"]["events"]["rows"] > 3000
    assert doc["directory"] == str(demo_home / "analytics")


def test_cell_formats() -> None:
    assert cell(None) == "" and cell(True) == "true" and cell(2.0) == "2" and cell(2.125) == "2.125"
    assert cell(1 / 3) == "0.333" and cell(["a", "b"]) == '["a","b"]' and cell(date(2026, 3, 9)) == "2026-03-09"
    assert table(["a"], []) == "a\n-\n(0 rows)\n"


# --------------------------------------------------------------------------- plots

def _svg(path: Path) -> ET.Element:
    root = ET.parse(path).getroot()
    assert root.tag == f"{SVG}svg"
    return root


def _classes(root: ET.Element, name: str) -> list[ET.Element]:
    return [g for g in root.iter(f"{SVG}g") if name in (g.get("class") or "").split()]


def test_plot_customer_draws_the_six_calls_after_the_objection(
        demo_home: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "ramon.svg"
    code, _, err = run(capsys, demo_home, "plot", "customer", "+34600900001", "--out", str(out))
    assert code == 0, err
    root = _svg(out)
    title = next(t for t in root.iter(f"{SVG}text") if t.get("class") == "title").text or ""
    assert "C-900001" in title and str(customer_uuid("C-900001")) in title
    events = _classes(root, "event")
    assert len(events) == 11  # registered, contract, a call, the "don't call me", objection, six calls
    after = _classes(root, "after_objection")
    assert len(after) == 6 and {g.get("data-type") for g in after} == {"call.outbound"}
    assert {g.get("data-row") for g in after} == {"sales", "outsourced_callcenter"}
    assert len(_classes(root, "objection")) == 1 and len(_classes(root, "inbound")) == 1
    rows = {t.text for t in root.iter(f"{SVG}text") if t.get("class") == "row"}
    assert rows == {"(no department)", "sales", "customer_care", "outsourced_callcenter"}
    assert all(g.find(f"{SVG}title") is not None for g in events)
    # The same person by customer number and by ledger id, to stdout.
    code, by_number, _ = run(capsys, demo_home, "plot", "customer", "C-900001", "--out", "-")
    assert code == 0 and by_number == out.read_text()
    code, by_id, _ = run(capsys, demo_home, "plot", "customer", str(customer_uuid("C-900001")), "--out", "-")
    assert code == 0 and len(_classes(ET.fromstring(by_id), "after_objection")) == 6


def test_plot_customer_highlights_a_complaint(demo_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, demo_home, "plot", "customer", "C-900004", "--out", "-")
    assert code == 0
    root = ET.fromstring(out)
    complaints = _classes(root, "complaint")
    assert [g.get("data-type") for g in complaints] == ["case.opened"]
    # Drawn after the promise made twelve minutes later, so it stays visible.
    events = _classes(root, "event")
    assert events.index(complaints[0]) > events.index(
        next(g for g in events if g.get("data-type") == "promise.made"))


def test_plot_refuses_strangers_and_png(demo_home: Path, capsys: pytest.CaptureFixture[str],
                                        tmp_path: Path) -> None:
    code, _, err = run(capsys, demo_home, "plot", "customer", "+34699999999", "--out", str(tmp_path / "x.svg"))
    assert code == 3 and "nobody known" in err
    code, _, err = run(capsys, demo_home, "plot", "customer", "C-900001", "--out", str(tmp_path / "x.png"))
    assert code == 2 and "only SVG" in err
    assert not (tmp_path / "x.svg").exists()


def test_plot_base_stacks_contacts_per_day_per_department(
        demo_home: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "base.svg"
    code, _, err = run(capsys, demo_home, "plot", "base", "--out", str(out), "--days", "30")
    assert code == 0, err
    root = _svg(out)
    series = {g.get("data-department"): g for g in _classes(root, "series")}
    code, text, _ = run(capsys, demo_home, "sql", """
        WITH last AS (SELECT max(CAST(occurred_at AT TIME ZONE 'UTC' AS DATE)) AS day FROM contacts)
        SELECT coalesce(department, '(no department)') AS department, count(*) AS n
        FROM contacts, last
        WHERE CAST(occurred_at AT TIME ZONE 'UTC' AS DATE) > last.day - 30
        GROUP BY ALL""", "--json")
    expected = {d["department"]: d["n"] for d in orjson.loads(text)}
    assert set(series) == set(expected) and len(expected) >= 5
    for department, group in series.items():
        bars = group.findall(f"{SVG}rect")
        assert len(bars) <= 30
        titles = [bar.findtext(f"{SVG}title") or "" for bar in bars]
        counted = sum(int(title.rsplit(": ", 1)[1]) for title in titles)
        assert counted == expected[department], department
    # --until picks the window; a day without contacts draws nothing.
    code, text, _ = run(capsys, demo_home, "plot", "base", "--out", "-", "--days", "7", "--until", "2001-01-01")
    assert code == 0 and _classes(ET.fromstring(text), "series") == []


def test_export_gives_up_when_the_holder_does_not_export(tmp_path: Path) -> None:
    """Something that is not journey serve holds the file (a long journey project, say)."""
    import subprocess
    import sys

    home = tmp_path / "ledger"
    home.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); "
         "print('held', flush=True); time.sleep(120)", str(home / "projections.duckdb")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        journey = [sys.executable, "-m", "journey.cli", "--data-dir", str(home)]
        done = subprocess.run([*journey, "export", "--timeout", "1.5"], capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 1
        assert "held by another process" in done.stderr and "did not export within 1.5 s" in done.stderr
        assert "waiting for it to export" in done.stderr  # the progress line
        (home / "analytics" / "export.request").unlink()
        done = subprocess.run([*journey, "export", "--no-wait"], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and (home / "analytics" / "export.request").exists()
    finally:
        holder.kill()
        holder.wait()
