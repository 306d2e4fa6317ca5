"""Crashes lose and double nothing: real processes, killed with SIGKILL mid-batch."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from consumers.log_follower import READ_CHUNK, catch_up
from journey import demo_data
from ledger.application import decode_notification, history_of
from projections.duckdb_store import ProjectionStore
from tests.ledgers import open_journey, tables
from tests.processes import wait_for_line

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def journey_process(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "journey.cli", "--data-dir", str(home), *args],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **(env or {})})


def write_input(path: Path, customers: int) -> int:
    return demo_data.write_jsonl(path, demo_data.generate(customers, seed=5))


def recorded_ledger(tmp_path: Path, customers: int) -> tuple[Path, int]:
    """A ledger of generated facts, appended by ``journey append --no-project``; its head."""
    source = tmp_path / "in.jsonl"
    write_input(source, customers)
    home = tmp_path / "ledger"
    subprocess.run([sys.executable, "-m", "journey.cli", "--data-dir", str(home), "append",
                    str(source), "--no-project"], cwd=ROOT, check=True, capture_output=True)
    journey = open_journey(home)
    head = int(journey.app.recorder.max_notification_id() or 0)
    journey.close()
    return home, head


def committed(home: Path) -> tuple[int, dict[str, int]]:
    """What the projections file holds after a crash: its position and its row counts."""
    store = ProjectionStore(home / "projections.duckdb")
    try:
        return store.position(), store.table_counts()
    finally:
        store.close()


def project_to_the_head(home: Path) -> int:
    """``journey project`` run to its end: the position it reports."""
    done = subprocess.run([sys.executable, "-m", "journey.cli", "--data-dir", str(home), "project",
                           "--json"], cwd=ROOT, capture_output=True, text=True, check=True)
    return int(orjson.loads(done.stdout)["position"])


def test_projection_runner_killed_mid_batch_resumes_without_loss_or_doubles(tmp_path: Path) -> None:
    home, head = recorded_ledger(tmp_path, 200)
    assert head > 1500

    runner = journey_process(home, "project", "--batch", "500",
                             env={"JOURNEY_FAULT_PAUSE_BEFORE_COMMIT": "3"})
    wait_for_line(runner, "fault: paused before commit of batch 3")
    runner.send_signal(signal.SIGKILL)
    runner.wait()

    # Two batches committed; the third (its rows and its position) is gone.
    position, counts = committed(home)
    assert position == 1000 and counts["events"] == 1000

    assert project_to_the_head(home) == head

    journey = open_journey(home)
    try:
        resumed = tables(journey)
        event_ids = [row[1] for row in resumed["events"]]
        assert len(event_ids) == len(set(event_ids)) == head
        journey.projections.close()
        journey._projections = ProjectionStore(tmp_path / "rebuilt.duckdb")
        journey.project()
        assert tables(journey) == resumed
    finally:
        journey.close()


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "stat").read_text().rsplit(")", 1)[1].split()[1] == str(pid):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("workers", ["1", "0"])
def test_a_long_catch_up_killed_after_writing_several_chunks_keeps_nothing_of_them(
        tmp_path: Path, workers: str) -> None:
    """A long catch-up writes the rows of each chunk inside its (1M-position) transaction as
    it goes, its facts decoded by worker processes (or by itself). Killed before that
    transaction commits, the file holds none of them and no worker outlives it; the rerun
    gives the projection that a catch-up a fact at a time gives."""
    home, head = recorded_ledger(tmp_path, 2500)
    assert head > READ_CHUNK + READ_CHUNK // 4  # more than one chunk, in one transaction

    runner = journey_process(home, "project", env={"JOURNEY_FAULT_PAUSE_BEFORE_COMMIT": "1",
                                                   "JOURNEY_PROJECTION_WORKERS": workers,
                                                   "JOURNEY_PARALLEL_FROM": "0"})
    wait_for_line(runner, "fault: paused before commit of batch 1")
    helpers = children(runner.pid)
    assert len(helpers) == int(workers)
    runner.send_signal(signal.SIGKILL)
    runner.wait()
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in helpers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(pid) for pid in helpers)  # a worker reads the end of its pipe and exits

    assert committed(home) == (0, {"events": 0, "customers": 0, "customer_views": 0, "identities": 0})

    assert project_to_the_head(home) == head

    journey = open_journey(home)
    try:
        resumed = tables(journey)
        assert len({row[1] for row in resumed["events"]}) == len(resumed["events"]) == head
        journey.projections.close()
        journey._projections = ProjectionStore(tmp_path / "one-by-one.duckdb")
        journey._projections.history = history_of(journey.app)
        catch_up(journey.app, journey._projections, batch_size=1000)
        assert tables(journey) == resumed
    finally:
        journey.close()


def test_append_killed_mid_file_then_rerun_records_each_fact_once(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    total = write_input(source, 1500)
    home = tmp_path / "ledger"
    writer = journey_process(home, "append", str(source), "--batch", "500", "--no-project")
    wait_for_line(writer, "lines read")
    writer.send_signal(signal.SIGKILL)
    writer.wait()

    journey = open_journey(home)
    partial = journey.app.recorder.fact_count()  # type: ignore[attr-defined]
    journey.close()
    assert 0 < partial < total

    done = subprocess.run([sys.executable, "-m", "journey.cli", "--data-dir", str(home), "append",
                           str(source), "--json"], cwd=ROOT, capture_output=True, text=True, check=False)
    summary = orjson.loads(done.stdout)
    assert done.returncode == 0, done.stderr
    assert summary["duplicates"] > 0
    assert summary["recorded"] + summary["duplicates"] == total

    journey = open_journey(home)
    try:
        recorder = journey.app.recorder
        head = recorder.max_notification_id()
        stored = [decode_notification(journey.app, n).fact
                  for n in recorder.select_notifications(1, head + 1)]
        from_input = [f for f in stored if f["source"] != "ledger"]
        assert len(from_input) == total  # every line once, none twice
        assert len({f["event_id"] for f in stored}) == len(stored) == head
        assert recorder.fact_count() == head  # type: ignore[attr-defined]
        journey.project()
        assert journey.projections.table_counts()["events"] == head
    finally:
        journey.close()
