"""Several `journey` processes writing one store at once: every one of them finishes, and every
fact is stored exactly once. Real processes, a real SQLite data directory and a real PostgreSQL
server; the files share customers, so the writers keep touching the same streams."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest

from ledger.writer import event_id
from tests.harness.conftest_postgres import PostgresTarget
from tests.harness.postgres import PostgresParams

ROOT = Path(__file__).resolve().parents[2]

#: Customers every file's facts are spread over.
CUSTOMERS = 300


def phone(c: int) -> str:
    return f"+346{c:08d}"


def facts(source: str, n: int, stride: int, registers: bool) -> list[dict[str, Any]]:
    """``n`` facts of ``source`` over the shared customers (every ``stride``-th in turn); with
    ``registers``, the first ones register half of them (merging the prospects other writers
    may have opened for their phones meanwhile)."""
    out: list[dict[str, Any]] = []
    if registers:
        out += [{"type": "customer.registered", "id": f"reg-{c}", "source": source,
                 "customer": {"customer_id": f"C-{c}"}, "occurred_at": "2026-01-01T09:00:00+00:00",
                 "data": {"name": f"Customer {c}", "phone": phone(c)}} for c in range(0, CUSTOMERS, 2)]
    i = 0
    while len(out) < n:
        c = (i * stride) % CUSTOMERS
        out.append({"type": "call.outbound", "id": f"call-{i}", "source": source,
                    "customer": {"phone": phone(c)}, "occurred_at": f"2026-01-02T10:{i % 60:02d}:00+00:00",
                    "data": {"purpose": "service", "outcome": "answered"}})
        i += 1
    return out


def write(path: Path, lines: Iterable[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(f) + b"\n" for f in lines))
    return path


def start(home: Path, source: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "journey.cli", "--data-dir", str(home), "append", str(source),
         "--batch", "500", "--no-project"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **(env or {})})


def finish(processes: Sequence[subprocess.Popen[str]], sent: Sequence[int]) -> None:
    for process, n in zip(processes, sent, strict=True):
        out, err = process.communicate(timeout=600)
        assert process.returncode == 0, err[-3000:]
        assert "Traceback" not in err, err[-3000:]
        assert out.strip() == f"recorded {n}, duplicates 0, rejected 0"


def assert_each_once(states: Iterable[bytes], indexed: int, expected: set[tuple[str, str]]) -> None:
    """Every fact sent is stored in exactly one event, and every event is in the index once."""
    stored = [orjson.loads(s)["fact"] for s in states]
    # The source's own id is sealed (it may carry a phone); its event id is public.
    counts = Counter(f["event_id"] for f in stored if f["source"] != "ledger")
    assert set(counts) == {event_id(source, fid) for source, fid in expected}
    assert [k for k, n in counts.items() if n != 1] == []
    assert len(stored) == indexed


def test_two_appends_on_one_data_directory_at_once_both_finish_and_record_everything_once(
        tmp_path: Path) -> None:
    home = tmp_path / "ledger"
    a = facts("a", 6000, 1, registers=True)
    b = facts("b", 6000, 7, registers=False)
    processes = [start(home, write(tmp_path / "a.jsonl", a)), start(home, write(tmp_path / "b.jsonl", b))]
    finish(processes, [len(a), len(b)])
    with closing(sqlite3.connect(home / "ledger.sqlite")) as con:
        states = [r[0] for r in con.execute("SELECT state FROM stored_events")]
        [(indexed,)] = con.execute("SELECT count(event_id) FROM journey_log").fetchall()
    assert_each_once(states, indexed, {("a", f["id"]) for f in a} | {("b", f["id"]) for f in b})


def opening_together(target: str) -> None:
    """Six processes open the ledger's store at ``target`` at once (the store is new)."""
    opener = ("import sys\nfrom ledger.application import open_application, sqlite_env\n"
              "from ledger.postgres_recorder import postgres_env\n"
              "url = sys.argv[1]\n"
              "env = postgres_env(url) if url.startswith('postgresql:') else sqlite_env(url)\n"
              "open_application(env).close()\nprint('opened')\n")
    processes = [subprocess.Popen([sys.executable, "-c", opener, target], cwd=ROOT, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(6)]
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert (process.returncode, out.strip()) == (0, "opened"), err[-3000:]


def test_processes_opening_a_new_sqlite_store_together_all_succeed(tmp_path: Path) -> None:
    for i in range(3):  # new stores: the race is narrow (unguarded, 2 rounds in 3 failed)
        opening_together(str(tmp_path / f"ledger-{i}.sqlite"))


def test_processes_opening_a_store_of_the_older_schema_together_all_succeed_and_it_is_moved_once(
        tmp_path: Path) -> None:
    """The first to take the write lock moves the rows into journey_log; the others wait for it
    and find the store set up."""
    from journey import demo_data
    from ledger import chain
    from tests.ledgers import append, open_journey
    from tests.legacy_store import legacy_journey

    with legacy_journey(tmp_path) as old:
        append(old, list(demo_data.generate(6, seed=2)), batch_size=50)
        events = old.app.recorder.max_notification_id()
    opening_together(str(tmp_path / "ledger.sqlite"))
    with closing(sqlite3.connect(tmp_path / "ledger.sqlite")) as con:
        names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        [(rows, facts)] = con.execute("SELECT count(*), count(event_id) FROM journey_log").fetchall()
    assert "journey_log" in names and not {"journey_facts", "journey_chain"} & names
    assert rows == facts == events
    journey = open_journey(tmp_path)
    try:
        assert chain.verify_store(journey.app.recorder).intact
    finally:
        journey.close()


def postgres_env(params: PostgresParams) -> dict[str, str]:
    return {"JOURNEY_STORE": "postgres", "JOURNEY_POSTGRES_URL": params.url}


@pytest.mark.postgres
def test_processes_opening_a_new_postgres_database_together_all_succeed(
        postgres_server: PostgresTarget) -> None:
    for _ in range(3):  # new databases: the race is narrow (unguarded, 7 rounds in 10 failed)
        name = f"test_{uuid.uuid4().hex[:16]}"
        params = postgres_server.create_database(name)
        try:
            opening_together(params.url)
        finally:
            postgres_server.drop_database(name)


@pytest.mark.postgres
def test_four_writers_of_the_same_customers_on_a_new_postgres_database_record_everything_once(
        postgres_db: PostgresParams, tmp_path: Path) -> None:
    files = [facts(s, 3000, stride, registers=s == "a") for s, stride in
             (("a", 1), ("b", 7), ("c", 11), ("d", 13))]
    processes = [start(tmp_path / f"home-{i}", write(tmp_path / f"{i}.jsonl", f), postgres_env(postgres_db))
                 for i, f in enumerate(files)]
    finish(processes, [len(f) for f in files])
    with psycopg.connect(postgres_db.dsn) as conn:
        states = [bytes(r[0]) for r in conn.execute("SELECT state FROM journey_events")]
        row = conn.execute("SELECT count(*) FROM journey_facts").fetchone()
    assert row is not None
    assert_each_once(states, row[0], {(f["source"], f["id"]) for fs in files for f in fs})
