"""10k raw touchpoints through the whole distributed path, each exactly once at every stage."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaConsumer

from benchmarks.pipeline import create_topics, produce, run_pipeline, touchpoint_key
from consumers.kafka_projector import partition_path
from consumers.relay import published_position
from consumers.wire import decode_event
from domain import identity
from journey import demo_data
from journey.bootstrap import bootstrap
from journey.config import Settings
from ledger.application import decode_notification
from projections.duckdb_store import ProjectionStore
from tests.harness.kafka import KafkaBroker

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def read_topic(bootstrap_servers: str, topic: str) -> list[Any]:
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap_servers, auto_offset_reset="earliest",
                             enable_auto_commit=False, group_id=None, consumer_timeout_ms=5000)
    messages = list(consumer)
    consumer.close()
    return messages


@pytest.mark.parametrize("store", [pytest.param("sqlite"), pytest.param("postgres", marks=pytest.mark.postgres)])
def test_ten_thousand_touchpoints_exactly_once_in_store_topic_and_projections(
        store: str, kafka_broker: Any, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("postgres_db").url if store == "postgres" else None
    result = run_pipeline(10_000, kafka_broker.bootstrap, tmp_path, url, seed=17)
    n = result["touchpoints"]
    facts = list(demo_data.generate(max(1, 10_000 // 12), seed=17))[:10_000]
    expected = {str(identity.event_uuid(f["source"], f["id"])) for f in facts}
    assert len(expected) == n and result["dead_lettered"] == 0

    journey = bootstrap(result["settings"])
    try:
        head = journey.app.recorder.max_notification_id()
        stored = [decode_notification(journey.app, x) for x in journey.app.recorder.select_notifications(1, head + 1)]
    finally:
        journey.close()
    from_input = [sf.fact["event_id"] for sf in stored if sf.fact["source"] != "ledger"]
    assert sorted(from_input) == sorted(expected)  # the store: every touchpoint once
    all_ids = {sf.fact["event_id"] for sf in stored}
    assert len(all_ids) == len(stored)

    on_topic = [decode_event(m.value) for m in read_topic(kafka_broker.bootstrap, result["topics"]["events"])]
    assert sorted(sf.fact["event_id"] for sf in on_topic) == sorted(all_ids)  # the topic: once each
    per_customer: dict[str, list[int]] = {}
    for sf in on_topic:
        per_customer.setdefault(sf.fact["customer_uuid"], []).append(sf.position)
    assert all(p == sorted(p) for p in per_customer.values())  # per-customer order

    projected: list[str] = []
    settings = result["settings"]
    for p in range(4):
        path = partition_path(settings.partitions_dir, result["topics"]["events"], p)
        part = ProjectionStore(path, name=f"kafka:{result['topics']['events']}:{p}", start=-1)
        try:
            # A row copied in for a merge across partitions: its own partition holds the fact.
            projected += [r[0] for r in part.con.execute(
                "SELECT event_id FROM events WHERE copied IS NOT TRUE").fetchall()]
        finally:
            part.close()
    assert sorted(projected) == sorted(all_ids)  # the projections: once each


def _worker(home: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "journey.cli", "--data-dir", str(home), *args],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **env})


def _wait(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def private_broker(kafka_broker: Any) -> Iterator[KafkaBroker]:
    """A broker of this test's own: the session broker has accumulated every other test's
    topics and groups by now, which makes its restart (log recovery, coordinator loading)
    slow and variable under CI load; a fresh one restarts in seconds."""
    if not hasattr(kafka_broker, "restart"):
        pytest.skip("external broker: cannot restart it")
    broker = KafkaBroker()
    broker.start()
    try:
        yield broker
    finally:
        broker.close()


@pytest.mark.parametrize("store", [pytest.param("sqlite"), pytest.param("postgres", marks=pytest.mark.postgres)])
def test_broker_restarted_while_ingest_relay_and_projector_run(
        store: str, private_broker: KafkaBroker, kafka_topic_prefix: str, tmp_path: Path,
        request: pytest.FixtureRequest) -> None:
    """Three long-running workers; the broker goes down and comes back mid-stream."""
    url = request.getfixturevalue("postgres_db").url if store == "postgres" else None
    env = {"JOURNEY_STORE": store, **({"JOURNEY_POSTGRES_URL": url} if url else {})}
    settings = Settings(data_dir=tmp_path / "ledger", store=store, postgres_url=url)
    kafka_broker = private_broker
    servers = kafka_broker.bootstrap
    touchpoints, events = kafka_topic_prefix + "tp", kafka_topic_prefix + "ev"
    create_topics(servers, touchpoints, events)
    facts = list(demo_data.generate(500, seed=23))
    payloads = [(touchpoint_key(f), orjson.dumps(f)) for f in facts]
    half = len(payloads) // 2
    produce(servers, touchpoints, payloads[:half])
    home = tmp_path / "ledger"
    bootstrap(settings).close()  # create the store before three processes open it
    common = ["--bootstrap", servers]
    workers = [
        _worker(home, env, "ingest", *common, "--topic", touchpoints, "--dlq-topic", kafka_topic_prefix + "dlq",
                "--group", kafka_topic_prefix + "ingest"),
        _worker(home, env, "relay", *common, "--topic", events),
        _worker(home, env, "project", "--source", "kafka", *common, "--topic", events,
                "--group", kafka_topic_prefix + "proj"),
    ]
    journey = bootstrap(settings)
    try:
        _wait(lambda: (journey.app.recorder.max_notification_id() or 0) > half // 2, 120, "ingest to start")
        kafka_broker.stop()
        # Down long enough that every worker's next poll meets a refused connection (the outage
        # that once killed the ingest worker); they must wait for the broker, not exit.
        time.sleep(8)
        assert [w.args[5] for w in workers if w.poll() is not None] == [], "a worker exited while the broker was down"
        kafka_broker.start()
        produce(servers, touchpoints, payloads[half:])
        expected = {str(identity.event_uuid(f["source"], f["id"])) for f in facts}

        def recorded() -> set[str]:
            head = journey.app.recorder.max_notification_id() or 0
            return {decode_notification(journey.app, x).fact["event_id"]
                    for x in journey.app.recorder.select_notifications(1, head + 1)}

        _wait(lambda: expected <= recorded(), 240, "every touchpoint in the store")
        head = journey.app.recorder.max_notification_id()
        _wait(lambda: published_position(journey.app, events) >= head, 240, "the relay to reach the head")
        assert [w.args[5] for w in workers if w.poll() is not None] == [], "a worker exited"
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            try:
                _, err = worker.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                worker.send_signal(signal.SIGUSR1)  # where it is stuck, on its stderr
                time.sleep(2)
                worker.kill()
                _, err = worker.communicate(timeout=30)
                raise AssertionError(f"{worker.args[5]} did not stop within 120 s of SIGTERM:\n"
                                     f"{err[-6000:]}") from None
            assert worker.returncode in (0, 1), err[-2000:]  # 1: ingest dead-lettered nothing here
        stored = [decode_notification(journey.app, x)
                  for x in journey.app.recorder.select_notifications(1, head + 1)]
    except AssertionError:
        for worker in workers:  # say what each worker went through, then fail
            if worker.poll() is None:
                worker.kill()
            _, err = worker.communicate(timeout=30)
            print(f"--- {worker.args[5:7]} exit {worker.returncode}:\n{err[-3000:]}")
        raise
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
        journey.close()
    from_input = sorted(sf.fact["event_id"] for sf in stored if sf.fact["source"] != "ledger")
    assert from_input == sorted(expected)
    on_topic = [decode_event(m.value) for m in read_topic(servers, events)]
    assert {sf.fact["event_id"] for sf in on_topic} == {sf.fact["event_id"] for sf in stored}
    # Finish whatever the projector had not applied when stopped, then check it exactly.
    done = subprocess.run([sys.executable, "-m", "journey.cli", "--data-dir", str(home), "project", "--source",
                           "kafka", *common, "--topic", events, "--group", kafka_topic_prefix + "proj", "--once"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, **env})
    assert done.returncode == 0, done.stderr[-2000:]
    projected: list[str] = []
    for p in range(4):
        part = ProjectionStore(partition_path(home / "partitions", events, p), name=f"kafka:{events}:{p}", start=-1)
        try:
            # A row copied in for a merge across partitions: its own partition holds the fact.
            projected += [r[0] for r in part.con.execute(
                "SELECT event_id FROM events WHERE copied IS NOT TRUE").fetchall()]
        finally:
            part.close()
    assert sorted(projected) == sorted(sf.fact["event_id"] for sf in stored)
