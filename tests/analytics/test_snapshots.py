"""Parquet snapshots: complete, atomic, without personal data, and without forgotten people."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

from consumers.jsonl_ingest import ingest
from journey import open_ledger
from journey.analytics import snapshots
from journey.analytics.snapshots import (
    ANALYST_DB,
    CURRENT,
    DEFAULT_INTERVAL,
    GENERATIONS,
    MANIFEST,
    NOT_EXPORTED,
    PURGE,
    REQUEST,
    ExportFailed,
    analytics_dir,
    export,
    exported_since,
    is_personal,
    open_snapshot,
    read_manifest,
    request_export,
    tick,
)
from journey.bootstrap import Journey
from tests.analytics.helpers import run

PERSON = {"type": "customer.registered", "id": "r1", "source": "crm",
          "customer": {"customer_id": "C-5"}, "occurred_at": "2026-01-03T10:00:00+01:00",
          "data": {"name": "Iker Goikoetxea", "phone": "+34622333444", "email": "iker@example.org",
                   "address": {"street": "Calle Uría", "number": "3", "postal_code": "48001",
                               "city": "Bilbao"}}}
FACTS = [
    PERSON,
    {"type": "purchase.recorded", "id": "p1", "source": "pos", "customer": {"customer_id": "C-5"},
     "occurred_at": "2026-01-04T10:00:00+01:00", "department": "stores",
     "data": {"product": "Router X200", "serial": "X200-5581-AB", "store": "BIO01", "price": 89.9}},
    {"type": "case.opened", "id": "k1", "source": "ticketing", "customer": {"phone": "622333444"},
     "occurred_at": "2026-01-05T10:00:00+01:00", "department": "customer_care",
     "data": {"case_id": "K-5", "kind": "complaint", "subject": "Iker's router"}},
    {"type": "identity.linked", "id": "i1", "source": "crm", "customer": {"customer_id": "C-5"},
     "occurred_at": "2026-01-06T10:00:00+01:00",
     "data": {"kind": "national_id", "value": "12345678Z", "iban": "ES9121000418450200051332"}},
    {"type": "customer.registered", "id": "r2", "source": "crm", "customer": {"customer_id": "C-6"},
     "occurred_at": "2026-01-03T11:00:00+01:00", "data": {"name": "Ane Zubiri", "phone": "+34622333555"}},
    {"type": "call.inbound", "id": "c2", "source": "cc", "customer": {"phone": "+34622333555"},
     "occurred_at": "2026-01-07T10:00:00+01:00", "department": "billing", "data": {"reason": "invoice"}},
]
SECRETS = ("Goikoetxea", "622333444", "iker@example.org", "Uría", "48001", "12345678Z",
           "ES9121000418450200051332", "Iker's router", "C-5", "Zubiri", "invoice")


def _call(n: int) -> dict[str, Any]:
    return {"type": "call.outbound", "id": f"o{n}", "source": "cc", "customer": {"phone": "+34622333555"},
            "occurred_at": f"2026-02-01T10:{n % 60:02d}:00+01:00", "department": "sales",
            "data": {"purpose": "service", "outcome": "answered"}}


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Journey]:
    with closing(open_ledger(str(tmp_path / "ledger"))) as journey:
        summary = journey.record(FACTS)
        assert not summary.rejected
        yield journey


def _rows(home: Path, table: str, where: str = "", generation: Path | None = None) -> list[tuple[Any, ...]]:
    """Rows of one Parquet file of the current generation (or of ``generation``)."""
    if generation is None:
        current = read_manifest(analytics_dir_of(home))
        assert current is not None
        generation = current.location
    path = generation / f"{table}.parquet"
    with closing(duckdb.connect()) as con:
        return con.execute(f"SELECT * FROM read_parquet('{path}') {where}").fetchall()


def _generations(directory: Path) -> list[str]:
    return sorted(p.name for p in (directory / GENERATIONS).iterdir())


def analytics_dir_of(home: Path) -> Path:
    return home / "analytics"


def test_export_publishes_every_analyst_table_with_its_rows(ledger: Journey) -> None:
    directory = analytics_dir(ledger.settings)
    done = export(ledger.projections, directory)
    con = ledger.projections.con
    for table, rows in done.rows.items():
        assert (done.location / f"{table}.parquet").is_file()
        assert (directory / CURRENT / f"{table}.parquet").is_file()
        assert rows == con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
    assert {"events", "customers", "cases", "products", "mentions", "promises",
            "warranty_claims"} <= set(done.rows)
    assert not set(NOT_EXPORTED) & set(done.rows)
    assert done.position == ledger.projections.position() > 0
    manifest = orjson.loads((directory / MANIFEST).read_bytes())
    assert manifest["position"] == done.position
    assert manifest["tables"]["events"]["rows"] == done.rows["events"] == len(FACTS)
    assert "ref" in manifest["tables"]["events"]["personal_columns_left_out"]
    # The position is stored next to the rows it describes, and the pointers name that place.
    assert manifest["generation"] == f"{GENERATIONS}/{done.generation}"
    assert orjson.loads((done.location / MANIFEST).read_bytes()) == manifest
    assert (directory / CURRENT).resolve() == done.location.resolve()
    assert (directory / ANALYST_DB).samefile(done.location / ANALYST_DB)
    # The manifest comes last: no file it describes is newer.
    newest = max((done.location / f"{t}.parquet").stat().st_mtime_ns for t in done.rows)
    assert (directory / MANIFEST).stat().st_mtime_ns >= newest
    assert (directory / "analyst.duckdb").stat().st_mtime_ns >= newest
    for place in (directory, done.location, directory / GENERATIONS):
        assert not [p for p in place.iterdir() if p.name.startswith(".")], "temporary files left"


def test_the_analyst_database_holds_only_views(ledger: Journey) -> None:
    directory = analytics_dir(ledger.settings)
    done = export(ledger.projections, directory)
    with closing(duckdb.connect(str(directory / "analyst.duckdb"), read_only=True)) as con:
        assert con.execute("SELECT count(*) FROM duckdb_tables()").fetchall() == [(0,)]
        views = {r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
        assert views == {*done.rows, "contacts", "snapshot"}
        assert con.execute("SELECT count(*) FROM events").fetchall() == [(len(FACTS),)]
        assert con.execute("SELECT position FROM snapshot").fetchall() == [(done.position,)]
        assert con.execute("SELECT direction, count(*) FROM contacts GROUP BY ALL").fetchall() == [("inbound", 1)]
    # Two readers at once, while the projections stay open for writing in this process.
    with closing(duckdb.connect(str(directory / "analyst.duckdb"), read_only=True)) as a, \
            closing(duckdb.connect(str(directory / "analyst.duckdb"), read_only=True)) as b:
        assert a.execute("SELECT count(*) FROM customers").fetchall() == b.execute(
            "SELECT count(*) FROM customers").fetchall() == [(2,)]


def test_no_personal_data_reaches_the_snapshot(ledger: Journey) -> None:
    directory = analytics_dir(ledger.settings)
    export(ledger.projections, directory)
    con, snapshot = open_snapshot(directory)
    with closing(con):
        for table in snapshot.rows:
            cursor = con.execute(f"SELECT * FROM {table}")
            columns = [d[0] for d in cursor.description]
            assert not [c for c in columns if is_personal(c)], table
            text = repr(cursor.fetchall())
            for secret in SECRETS:
                assert secret not in text, (table, secret)
        keys = {k for (doc,) in con.execute("SELECT data FROM events WHERE data IS NOT NULL").fetchall()
                for k in orjson.loads(doc)}
        assert keys and not [k for k in keys if is_personal(k)]
        # What analysts count on is still there.
        assert con.execute("SELECT data->>'kind' FROM events WHERE type = 'identity.linked'").fetchall() == [
            ("national_id",)]
        assert con.execute("SELECT serial, price FROM products").fetchall() == [("X200-5581-AB", 89.9)]
        assert con.execute("SELECT kind, owner_department FROM cases").fetchall() == [("complaint", "customer_care")]


UNDECLARED = {"type": "call.inbound", "id": "c9", "source": "cc", "customer": {"phone": "+34622333555"},
              "occurred_at": "2026-01-08T10:00:00+01:00", "department": "billing",
              "data": {"duration_s": 61, "notes": "rang from Zubiri's mother's flat",
                       "account_holder": "Ane Zubiri Etxeberria", "Email": "ane.z@example.org",
                       "contact": {"mobile": "+34699111222"}, "payload": ["ES7620770024003102575766"]}}


def test_fields_the_catalogue_does_not_declare_never_reach_the_snapshot(ledger: Journey) -> None:
    """Whatever a source names a field, only the catalogue's non-personal ones are exported."""
    assert not ledger.record([UNDECLARED]).rejected
    export(ledger.projections, analytics_dir(ledger.settings))
    con, _ = open_snapshot(analytics_dir(ledger.settings))
    with closing(con):
        (data,) = con.execute("SELECT data FROM events WHERE type = 'call.inbound' "
                              "AND data->>'duration_s' = '61'").fetchone() or (None,)
        text = repr(con.execute("SELECT * FROM events").fetchall())
    assert data is not None and orjson.loads(data) == {"duration_s": 61}
    for secret in ("Etxeberria", "ane.z@example.org", "699111222", "ES7620770024003102575766", "mother"):
        assert secret not in text, secret


def test_a_forgotten_customer_is_gone_from_the_next_snapshot(
        ledger: Journey, capsys: pytest.CaptureFixture[str]) -> None:
    directory = analytics_dir(ledger.settings)
    home = ledger.settings.data_dir
    export(ledger.projections, directory)
    customer_id = ledger.projections.resolve("phone:+34622333444")
    assert customer_id is not None
    where = f"WHERE customer_id = '{customer_id}'"
    assert _rows(home, "products", where) and _rows(home, "cases", where)
    assert any(row[-1] is not None for row in _rows(home, "events", where))
    ledger.close()  # journey forget is another process's work: it needs the files

    code, _, err = run(capsys, home, "forget", "+34622333444", "--reason", "art. 17 request", "--yes")
    assert code == 0, err
    code, out, err = run(capsys, home, "export", "--json")
    assert code == 0, err
    assert orjson.loads(out)["via"] == "direct"
    assert _rows(home, "products", where) == [] and _rows(home, "cases", where) == []
    events = _rows(home, "events", where)
    assert len(events) == 5  # kept for the counts (4 facts + customer.forgotten) ...
    assert all(row[-1] is None for row in events)  # ... without their data
    assert _rows(home, "customers", where)[0][1] == "customer"
    # The other customer is untouched.
    assert len(_rows(home, "events", "WHERE type = 'call.inbound'")) == 1
    # No earlier generation is kept to hold them: the export after the forget deleted the rest.
    kept = _generations(analytics_dir_of(home))
    assert kept and orjson.loads(out)["generation"].split("/")[-1] in kept
    for name in kept:
        generation = analytics_dir_of(home) / GENERATIONS / name
        assert _rows(home, "products", where, generation) == [] == _rows(home, "cases", where, generation)
        assert all(row[-1] is None for row in _rows(home, "events", where, generation))


def test_files_are_replaced_atomically_in_their_own_directory(
        ledger: Journey, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = analytics_dir(ledger.settings)
    moves: list[tuple[Path, Path]] = []
    real = os.replace

    def spy(src: Any, dst: Any) -> None:
        moves.append((Path(src), Path(dst)))
        real(src, dst)

    before = export(ledger.projections, directory)
    monkeypatch.setattr(os, "replace", spy)
    ledger.record([_call(1)])
    done = export(ledger.projections, directory)
    # The files are written once, in a new directory; the pointers move to it.
    assert done.location != before.location and before.location.is_dir()
    finals = {dst.name for _, dst in moves}
    assert finals == {CURRENT, "analyst.duckdb", MANIFEST}
    for src, dst in moves:
        assert src.parent == dst.parent == directory  # a rename inside one directory
        assert src.name.startswith(".") and src.name != dst.name
    assert moves[-1][1].name == MANIFEST


def test_a_reader_during_exports_sees_the_old_or_the_new_file(ledger: Journey) -> None:
    directory = analytics_dir(ledger.settings)
    export(ledger.projections, directory)
    target = directory / CURRENT / "events.parquet"
    seen: set[int] = set()
    errors: list[BaseException] = []
    stop = threading.Event()

    def read() -> None:
        with closing(duckdb.connect()) as con:
            while not stop.is_set():
                try:
                    seen.add(con.execute(f"SELECT count(*) FROM read_parquet('{target}')").fetchall()[0][0])
                except BaseException as error:  # any failure is the finding
                    errors.append(error)
                    return

    reader = threading.Thread(target=read)
    reader.start()
    published = {len(FACTS)}
    try:
        for n in range(12):
            ledger.record([_call(n)])
            published.add(export(ledger.projections, directory).rows["events"])
            time.sleep(0.01)
    finally:
        stop.set()
        reader.join(timeout=30)
    assert not errors, errors[0]
    assert seen and seen <= published


def test_tick_exports_on_request_and_when_the_interval_passed_and_the_position_moved(
        ledger: Journey, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = analytics_dir(ledger.settings)
    assert tick(ledger, 0) is None and read_manifest(directory) is None  # 0: never on its own

    asked = request_export(directory)
    done = tick(ledger, 0)
    assert done is not None and not (directory / REQUEST).exists()
    assert exported_since(directory, asked) is not None
    assert tick(ledger, 0) is None

    monkeypatch.setattr(snapshots, "_LAST", {})
    ledger.record([_call(1)])
    assert tick(ledger, 3600) is None  # the interval has not passed since the manifest's export

    time.sleep(0.1)
    again = tick(ledger, 0.05)
    assert again is not None and again.position > done.position
    time.sleep(0.1)
    assert tick(ledger, 0.05) is None  # the interval passed, but nothing new was projected
    ledger.record([_call(2)])
    assert tick(ledger, 0.05) is not None


def test_tick_brings_the_projections_up_to_date_before_a_requested_export(ledger: Journey) -> None:
    directory = analytics_dir(ledger.settings)
    ingest(ledger.ledger, [orjson.dumps(_call(4))])  # recorded, not projected
    head = int(ledger.app.recorder.max_notification_id() or 0)
    assert ledger.projections.position() < head
    request_export(directory)
    done = tick(ledger, 0)
    assert done is not None and done.position == head


def test_a_requested_export_after_a_forget_keeps_no_other_generation(ledger: Journey) -> None:
    """`journey forget` while a server holds the projections asks for an export that deletes
    every earlier generation; a plain request written after it does not cancel that."""
    directory = analytics_dir(ledger.settings)
    first = export(ledger.projections, directory)
    ledger.record([_call(5)])
    second = export(ledger.projections, directory)
    assert _generations(directory) == [first.generation, second.generation]
    request_export(directory, purge=True)
    request_export(directory)  # e.g. an analyst's `journey export` in between
    done = tick(ledger, 0)
    assert done is not None and _generations(directory) == [done.generation]
    assert not (directory / PURGE).exists() and not (directory / REQUEST).exists()
    ledger.record([_call(6)])
    request_export(directory)
    again = tick(ledger, 0)
    assert again is not None and _generations(directory) == [done.generation, again.generation]


def test_a_failed_export_is_reported_to_whoever_waits(ledger: Journey,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    directory = analytics_dir(ledger.settings)

    def broken(*_: Any, **__: Any) -> Any:
        raise OSError("disk full")

    monkeypatch.setattr(snapshots, "export", broken)
    asked = request_export(directory)
    assert tick(ledger, DEFAULT_INTERVAL) is None  # never raises into the server
    with pytest.raises(ExportFailed, match="disk full"):
        exported_since(directory, asked)


def test_the_export_duty_is_registered_with_the_server() -> None:
    from journey.api.duties import DUTIES

    assert snapshots.duty in DUTIES


def test_the_server_exports_first_then_waits_the_interval(ledger: Journey) -> None:
    assert tick(ledger, DEFAULT_INTERVAL) is not None  # no snapshot yet: the first tick exports
    ledger.record([_call(3)])
    assert tick(ledger, DEFAULT_INTERVAL) is None  # then not before 60 s
