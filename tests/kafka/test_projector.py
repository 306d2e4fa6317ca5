"""Projections fed from journey.events by a consumer group, against a real broker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from consumers import kafka_projector
from consumers.kafka_projector import partition_path, run_projector
from consumers.wire import encode_event
from journey import demo_data
from journey.bootstrap import Journey
from ledger.application import decode_sealed
from projections.duckdb_store import ProjectionStore
from projections.preparing import Parallel
from tests.ledgers import append, open_journey
from tests.processes import wait_for_line

ROOT = Path(__file__).resolve().parents[2]
PARTITIONS = 3
pytestmark = pytest.mark.kafka


def make_topic(bootstrap: str, topic: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        admin.close()


def publish(journey: Journey, bootstrap: str, topic: str, start: int = 0, stop: int | None = None) -> int:
    """What the relay does, minimally: every stored event, keyed by customer, in log order."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    recorder = journey.app.recorder
    head = recorder.max_notification_id() or 0
    sent = 0
    for n in recorder.select_notifications(start, head + 1, stop=stop, inclusive_of_start=False):
        key, value, headers, timestamp_ms = encode_event(decode_sealed(journey.app, n))
        producer.send(topic, key=key, value=value, headers=headers, timestamp_ms=timestamp_ms)
        sent += 1
    producer.flush()
    producer.close()
    return sent


def ledger_with(tmp_path: Path, customers: int, seed: int = 21) -> Journey:
    journey = open_journey(tmp_path / "ledger")
    summary = append(journey, list(demo_data.generate(customers, seed=seed)), batch_size=2000)
    assert not summary.rejected
    journey.project()
    return journey


def union(directory: Path, topic: str) -> dict[str, Any]:
    """Every partition file's events, views and cursors."""
    events: list[tuple[Any, ...]] = []
    views: dict[str, Any] = {}
    cursors: dict[str, int] = {}
    for p in range(PARTITIONS):
        path = partition_path(directory, topic, p)
        if not path.exists():
            continue
        store = ProjectionStore(path, name=f"kafka:{topic}:{p}", start=-1)
        try:
            # A row copied for a record merged across partitions: its own partition has it.
            events += store.con.execute(
                "SELECT event_id, position FROM events WHERE copied IS NOT TRUE").fetchall()
            ids = [cid for (cid,) in store.con.execute("SELECT customer_id FROM customer_views").fetchall()]
            for cid, view in store.load_views(ids).items():
                assert cid not in views, "a customer projected in two partitions"
                views[cid] = view
            cursors.update(store.cursors())
        finally:
            store.close()
    return {"events": events, "views": views, "cursors": cursors}


def check_exact(journey: Journey, got: dict[str, Any]) -> None:
    """Every stored event once, and every customer's view equal to the embedded projection's."""
    head = journey.app.recorder.max_notification_id()
    ids = [e[0] for e in got["events"]]
    assert len(ids) == len(set(ids)) == head
    embedded = journey.projections
    ids = [cid for (cid,) in embedded.con.execute("SELECT customer_id FROM customer_views").fetchall()]
    merged_away = set(embedded.aliases)
    for cid, view in embedded.load_views(ids).items():
        assert got["views"][cid] == view, cid
    # Prospects merged into a customer of another partition keep an orphan view there.
    assert set(got["views"]) - set(ids) <= merged_away


def test_projects_every_event_once_into_per_partition_files(
        kafka_broker: Any, kafka_topic_prefix: str, tmp_path: Path) -> None:
    topic = kafka_topic_prefix + "events"
    make_topic(kafka_broker.bootstrap, topic)
    journey = ledger_with(tmp_path, 150)
    try:
        publish(journey, kafka_broker.bootstrap, topic)
        out = tmp_path / "partitions"
        stats = run_projector(journey.app, bootstrap=kafka_broker.bootstrap, topic=topic,
                              directory=out, group=topic + "-g", once=True)
        assert stats.applied == journey.app.recorder.max_notification_id()
        check_exact(journey, union(out, topic))
        # The same events delivered again (a relay that crashed before recording its
        # position) change nothing: same positions, skipped per customer.
        publish(journey, kafka_broker.bootstrap, topic)
        again = run_projector(journey.app, bootstrap=kafka_broker.bootstrap, topic=topic,
                              directory=out, group=topic + "-g", once=True)
        assert again.applied == 0 and again.records > 0
        check_exact(journey, union(out, topic))
    finally:
        journey.close()


def test_worker_processes_prepare_the_records_and_change_nothing(
        kafka_broker: Any, kafka_topic_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A catch-up's records decoded and checked in worker processes (from the first record
    here), each partition's next chunks prepared while one is written: the same files."""
    monkeypatch.setattr(kafka_projector, "APPLY_CHUNK", 97)
    workers = Parallel(workers=1, from_facts=0)
    here: list[int] = []
    fact_chunks = kafka_projector._fact_chunks
    monkeypatch.setattr(kafka_projector, "_fact_chunks",
                        lambda app, taken, size=None: here.append(len(taken)) or fact_chunks(app, taken, size))
    topic = kafka_topic_prefix + "events"
    make_topic(kafka_broker.bootstrap, topic)
    journey = ledger_with(tmp_path, 150)
    try:
        publish(journey, kafka_broker.bootstrap, topic)
        out = tmp_path / "partitions"
        stats = run_projector(journey.app, bootstrap=kafka_broker.bootstrap, topic=topic,
                              directory=out, group=topic + "-g", once=True, parallel=workers)
        assert stats.applied == journey.app.recorder.max_notification_id()
        assert here == []  # every chunk was the workers'
        check_exact(journey, union(out, topic))
        publish(journey, kafka_broker.bootstrap, topic)  # redelivered: nothing changes
        again = run_projector(journey.app, bootstrap=kafka_broker.bootstrap, topic=topic,
                              directory=out, group=topic + "-g", once=True, parallel=workers)
        assert again.applied == 0 and again.records > 0
        check_exact(journey, union(out, topic))
    finally:
        journey.close()


def projector_process(home: Path, bootstrap: str, topic: str, env: dict[str, str] | None = None,
                      once: bool = True) -> subprocess.Popen[str]:
    args = [sys.executable, "-m", "journey.cli", "--data-dir", str(home), "project", "--source", "kafka",
            "--bootstrap", bootstrap, "--topic", topic, "--group", topic + "-g"]
    return subprocess.Popen(args + (["--once"] if once else []), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})


@pytest.mark.slow
def test_sigkill_mid_stream_then_restart_loses_and_doubles_nothing(
        kafka_broker: Any, kafka_topic_prefix: str, tmp_path: Path) -> None:
    topic = kafka_topic_prefix + "events"
    make_topic(kafka_broker.bootstrap, topic)
    journey = ledger_with(tmp_path, 600)
    home = tmp_path / "ledger"
    try:
        publish(journey, kafka_broker.bootstrap, topic)
        runner = projector_process(home, kafka_broker.bootstrap, topic,
                                   env={"JOURNEY_FAULT_PAUSE_BEFORE_COMMIT": "2"})
        out = home / "partitions"
        wait_for_line(runner, "fault: paused before commit of batch 2")  # one committed, one mid-way
        runner.send_signal(signal.SIGKILL)
        runner.wait()
        partial = union(out, topic)
        assert len(partial["events"]) < journey.app.recorder.max_notification_id()
        done = projector_process(home, kafka_broker.bootstrap, topic)
        _, err = done.communicate(timeout=180)
        assert done.returncode == 0, err
        check_exact(journey, union(out, topic))
    finally:
        journey.close()


@pytest.mark.slow
def test_two_consumers_rebalancing_mid_stream_apply_each_event_once(
        kafka_broker: Any, kafka_topic_prefix: str, tmp_path: Path) -> None:
    topic = kafka_topic_prefix + "events"
    make_topic(kafka_broker.bootstrap, topic)
    journey = ledger_with(tmp_path, 400)
    home = tmp_path / "ledger"
    try:
        head = journey.app.recorder.max_notification_id()
        publish(journey, kafka_broker.bootstrap, topic, 0, head // 2)
        first = projector_process(home, kafka_broker.bootstrap, topic, once=False)
        time.sleep(3)
        second = projector_process(home, kafka_broker.bootstrap, topic, once=False)
        publish(journey, kafka_broker.bootstrap, topic, head // 2)  # the rest, during the rebalance
        out = home / "partitions"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            time.sleep(2)
            first.send_signal(signal.SIGSTOP)
            second.send_signal(signal.SIGSTOP)
            try:
                total = _cursor_total(out, topic)
            finally:
                first.send_signal(signal.SIGCONT)
                second.send_signal(signal.SIGCONT)
            if total >= head:
                break
        for process in (first, second):
            process.send_signal(signal.SIGTERM)
            process.communicate(timeout=60)
            assert process.returncode == 0
        check_exact(journey, union(out, topic))
    finally:
        journey.close()


def _cursor_total(directory: Path, topic: str) -> int:
    """How many records the partition files have applied (offsets are 0-based)."""
    total = 0
    for p in range(PARTITIONS):
        path = partition_path(directory, topic, p)
        if not path.exists():
            continue
        try:
            store = ProjectionStore(path, name=f"kafka:{topic}:{p}", read_only=True)
        except Exception:  # held by a projector: not readable right now
            return -1
        try:
            total += store.position(f"kafka:{topic}:{p}") + 1
        finally:
            store.close()
    return total

