"""The relay's read-ahead process (consumers/relay_reader.py) hands the relay the very batches it
would have read and built itself; when the process dies the relay reads on by itself from its
own position, and when the relay dies the process does not outlive it."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from consumers.relay import READ_AHEAD_MIN, Outgoing, Relay
from consumers.relay_reader import stored_message
from journey import demo_data
from journey.bootstrap import Journey
from ledger.sqlite_recorder import JourneySQLiteRecorder
from tests.integration.test_wire import DECOYS
from tests.ledgers import append, open_journey
from tests.legacy_sealing import sealed_by_old_rule
from tests.processes import running

ROOT = Path(__file__).resolve().parents[2]
BATCH = 97  # not a divisor of the store's size: the last batch is short


@pytest.fixture(scope="module")
def journey(tmp_path_factory: pytest.TempPathFactory) -> Journey:
    journey = open_journey(tmp_path_factory.mktemp("reader") / "ledger")
    facts = list(demo_data.generate(60, seed=8))
    for n, fact in enumerate(facts):  # some states the relay must decode (see test_wire.py)
        if n % 11 == 5 and fact["type"].startswith(("contact.", "case.")):
            fact["data"] = {**fact.get("data", {}), **DECOYS[n % len(DECOYS)]}
    with sealed_by_old_rule():  # only the earlier rule left such keys public
        summary = append(journey, facts)
    assert not summary.rejected, summary.rejected[:3]
    return journey


def relay_for(journey: Journey) -> Relay:
    return Relay(app=journey.app, bootstrap="unused:9092", batch_size=BATCH, read_ahead=True)


def read_all(relay: Relay, stop_at: int | None, kill_after: int | None = None) -> list[list[Outgoing]]:
    """Every batch the relay would publish, taken as its loop takes them."""
    relay._start_reader(0, head=0, stop_at=stop_at)
    assert relay._reader is not None, "a SQLite store in a file is read in a second process"
    batches: list[list[Outgoing]] = []
    position = 0
    try:
        while True:
            if kill_after is not None and len(batches) == kill_after:
                assert relay._reader is not None and relay._reader.process.pid is not None
                os.kill(relay._reader.process.pid, signal.SIGKILL)
                relay._reader.process.join(10)
            batch = relay._next_batch(position, stop_at)
            if not batch:
                return batches
            batches.append(batch)
            position = batch[-1].position
    finally:
        relay._stop_reader()


def inline(journey: Journey, stop_at: int | None = None) -> list[Outgoing]:
    relay = Relay(app=journey.app, bootstrap="unused:9092", batch_size=1 << 30)
    return relay._outgoing(relay._read(0, stop_at))


def test_the_read_ahead_process_gives_the_batches_the_relay_would_build(journey: Journey) -> None:
    expected = inline(journey)
    rows = Relay(app=journey.app, bootstrap="unused:9092", batch_size=1 << 30)._read(0, None)
    assert any(isinstance(row, tuple) and stored_message(row) is None for row in rows), "some states need decoding by the relay"
    batches = read_all(relay_for(journey), stop_at=None)
    assert [o for b in batches for o in b] == expected
    assert all(len(b) == BATCH for b in batches[:-1]) and 0 < len(batches[-1]) <= BATCH


def test_it_stops_at_the_position_it_was_given(journey: Journey) -> None:
    everything = inline(journey)
    stop_at = everything[len(everything) // 2].position
    batches = read_all(relay_for(journey), stop_at=stop_at)
    assert [o for b in batches for o in b] == inline(journey, stop_at)
    assert batches[-1][-1].position == stop_at


def test_when_the_process_is_killed_the_relay_reads_on_from_its_own_position(
        journey: Journey, caplog: pytest.LogCaptureFixture) -> None:
    batches = read_all(relay_for(journey), stop_at=None, kill_after=2)
    assert [o for b in batches for o in b] == inline(journey), "nothing lost, nothing doubled"
    assert "the read-ahead process is gone" in caplog.text


def test_a_batch_out_of_step_with_the_relay_is_not_used(
        journey: Journey, caplog: pytest.LogCaptureFixture) -> None:
    relay = relay_for(journey)
    relay._start_reader(0, head=0, stop_at=None)
    try:
        first = inline(journey)[:BATCH]
        # The relay claims a position the process did not start from: the process is dropped
        # and the relay reads the batch after that position itself.
        batch = relay._next_batch(first[10].position, None)
        assert batch == inline(journey)[11:11 + BATCH]
        assert relay._reader is None
        assert "reading the store in the relay" in caplog.text
    finally:
        relay._stop_reader()


def test_the_process_exits_when_the_relay_is_killed(journey: Journey) -> None:
    """The relay holds the process's first batch unread, so the process waits in ``send``; the
    relay's SIGKILL closes the pipe and the process must exit, not linger as an orphan."""
    recorder = journey.app.recorder
    assert isinstance(recorder, JourneySQLiteRecorder)
    store, table = recorder.datastore.pool.db_name, recorder.events_table_name
    script = (
        "import sys, time\n"
        "from consumers.relay_reader import ReadAhead\n"
        f"r = ReadAhead({store!r}, {table!r}, 0, None, 20)\n"
        "print(r.process.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        time.sleep(1.0)  # the child has read a batch and waits in send
        assert running(child)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.communicate()
    deadline = time.monotonic() + 30
    while running(child):
        assert time.monotonic() < deadline, "the read-ahead process outlived the relay"
        time.sleep(0.1)


def test_by_default_only_a_long_backlog_is_read_ahead(journey: Journey) -> None:
    relay = Relay(app=journey.app, bootstrap="unused:9092")
    try:
        relay._start_reader(0, head=READ_AHEAD_MIN - 1, stop_at=None)
        assert relay._reader is None, "a short backlog is read by the relay itself"
        relay._start_reader(0, head=READ_AHEAD_MIN, stop_at=None)
        assert relay._reader is not None
    finally:
        relay._stop_reader()
    forced = Relay(app=journey.app, bootstrap="unused:9092", read_ahead=False)
    forced._start_reader(0, head=10 * READ_AHEAD_MIN, stop_at=None)
    assert forced._reader is None, "read_ahead=False is obeyed whatever the backlog"


def _relay_in_daemon(home: str, out: Any) -> None:
    journey = open_journey(Path(home))
    try:
        relay = Relay(app=journey.app, bootstrap="unused:9092", batch_size=BATCH, read_ahead=True)
        relay._start_reader(0, head=0, stop_at=None)
        out.put((relay._reader is None, [o.position for o in relay._next_batch(0, None)]))
    finally:
        journey.close()


def test_a_relay_that_cannot_start_the_process_reads_the_store_itself(journey: Journey) -> None:
    """A daemonic process may not have children: the relay in one reads the store itself."""
    home = Path(journey.app.recorder.datastore.pool.db_name).parent  # type: ignore[attr-defined]
    expected = [o.position for o in inline(journey)[:BATCH]]
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    daemon = context.Process(target=_relay_in_daemon, args=(str(home), out), daemon=True)
    daemon.start()
    try:
        without_process, positions = out.get(timeout=60)
    finally:
        daemon.join(30)
    assert without_process and positions == expected
