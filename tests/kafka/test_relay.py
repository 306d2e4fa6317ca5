"""The relay against a real broker: end states checked exactly by reading the whole topic back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from consumers.relay import Relay, RelaySummary, published_position
from consumers.wire import decode_event, encode_event
from journey import demo_data
from journey.bootstrap import Journey
from ledger.application import StoredFact, decode_sealed
from tests.harness.conftest_kafka import KafkaEndpoint
from tests.ledgers import append, open_journey
from tests.processes import running, wait_for_line

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.kafka


# -- helpers ---------------------------------------------------------------------------------


def stored(journey: Journey) -> list[StoredFact]:
    """Everything in the store, in notification-log order."""
    app = journey.app
    out: list[StoredFact] = []
    position = 0
    while True:
        batch = app.recorder.select_notifications(position, 5000, inclusive_of_start=False)
        if not batch:
            return out
        out.extend(decode_sealed(app, n) for n in batch)  # what the relay publishes
        position = batch[-1].id


def read_topic(bootstrap: str, topic: str, timeout: float = 60.0) -> list[Any]:
    """Every record of every partition, up to the end offsets taken once the reader is assigned."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                             enable_auto_commit=False, client_id="journey-test-reader")
    try:
        partitions = consumer.partitions_for_topic(topic)
        assert partitions, f"topic {topic} does not exist"
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        records: list[Any] = []
        deadline = time.monotonic() + timeout
        while any(consumer.position(tp) < end[tp] for tp in tps):
            assert time.monotonic() < deadline, "timed out reading the topic back"
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


@dataclass
class Check:
    records: int
    duplicates: list[int]  # positions seen more than once (one entry per extra copy)
    partitions: int


def check_topic(bootstrap: str, topic: str, facts: Sequence[StoredFact]) -> Check:
    """The topic holds every stored event as wire.py encodes it, in per-customer order;
    redeliveries are droppable by position. Returns what was seen."""
    records = read_topic(bootstrap, topic)
    expected = {sf.position: encode_event(sf) for sf in facts}
    by_customer: dict[str, list[int]] = defaultdict(list)
    for sf in facts:
        by_customer[sf.fact["customer_uuid"]].append(sf.position)
    partition_of: dict[bytes, int] = {}
    seen: dict[bytes, list[int]] = defaultdict(list)  # key -> positions in offset order
    records.sort(key=lambda r: (r.partition, r.offset))
    for r in records:
        position = int(dict(r.headers)["position"])
        assert position in expected, f"position {position} is not in the store"
        key, value, headers, timestamp_ms = expected[position]
        assert r.key == key
        # The relay splices the stored bytes into the value (consumers/wire.py): the same
        # event as the decoded fact's message, not necessarily the same bytes.
        assert decode_event(r.value) == decode_event(value)
        assert list(r.headers) == headers
        assert r.timestamp == timestamp_ms
        assert decode_event(r.value).position == position
        assert partition_of.setdefault(r.key, r.partition) == r.partition, "a customer in two partitions"
        seen[r.key].append(position)
    assert {k.decode() for k in seen} == set(by_customer)
    duplicates: list[int] = []
    for customer, positions in by_customer.items():
        got = seen[customer.encode()]
        distinct = list(dict.fromkeys(got))
        assert distinct == positions, f"customer {customer}: order or content differs"
        applied: list[int] = []  # what a consumer that drops position <= last applied keeps
        for p in got:
            if not applied or p > applied[-1]:
                applied.append(p)
            else:
                duplicates.append(p)
        assert applied == positions, f"customer {customer}: dropping by position loses events"
    return Check(len(records), sorted(duplicates), len({r.partition for r in records}))


def topic_partitions(bootstrap: str, topic: str) -> int:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return len(admin.describe_topics([topic])[0]["partitions"])
    finally:
        admin.close()


def facts_for(customers: int, seed: int) -> list[dict[str, Any]]:
    return list(demo_data.generate(customers, seed=seed))


@pytest.fixture
def journey(tmp_path: Path) -> Any:
    j = open_journey(tmp_path / "ledger")
    yield j
    j.close()


def relay_for(journey: Journey, broker: KafkaEndpoint, topic: str, **kwargs: Any) -> Relay:
    return Relay(journey.app, bootstrap=broker.bootstrap, topic=topic, **kwargs)


def run_in_thread(relay: Relay, stop: threading.Event) -> tuple[threading.Thread, list[RelaySummary]]:
    result: list[RelaySummary] = []
    thread = threading.Thread(target=lambda: result.append(relay.run(follow=True, stop=stop)), daemon=True)
    thread.start()
    return thread, result


def wait_until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


# -- tests -----------------------------------------------------------------------------------


def test_publishes_every_event_in_customer_order_with_wire_headers(
        journey: Journey, kafka_broker: KafkaEndpoint, kafka_topic_prefix: str) -> None:
    summary = append(journey, facts_for(150, seed=21))
    assert not summary.rejected
    facts = stored(journey)
    topic = kafka_topic_prefix + "events"
    relay = relay_for(journey, kafka_broker, topic, partitions=3, batch_size=700)
    try:
        done = relay.run(follow=False)
    finally:
        relay.close()
    assert done.published == len(facts) and done.position == facts[-1].position
    assert done.batches == -(-len(facts) // 700) and done.send_failures == 0
    assert published_position(journey.app, topic) == facts[-1].position
    check = check_topic(kafka_broker.bootstrap, topic, facts)
    assert check.records == len(facts) and check.duplicates == []
    assert topic_partitions(kafka_broker.bootstrap, topic) == 3
    assert check.partitions == 3
    # Run again: nothing new, nothing sent.
    relay = relay_for(journey, kafka_broker, topic, partitions=3)
    try:
        again = relay.run(follow=False)
    finally:
        relay.close()
    assert again.published == 0
    assert check_topic(kafka_broker.bootstrap, topic, facts).records == len(facts)


def test_stop_and_restart_resume_without_duplicates(
        journey: Journey, kafka_broker: KafkaEndpoint, kafka_topic_prefix: str) -> None:
    facts = facts_for(200, seed=22)
    half = len(facts) // 2
    append(journey, facts[:half])
    topic = kafka_topic_prefix + "events"

    # Follow mode in a thread; a stop request finishes the batch in hand and returns.
    stop = threading.Event()
    relay = relay_for(journey, kafka_broker, topic, batch_size=300, poll_interval=0.05)
    thread, result = run_in_thread(relay, stop)
    first_head = journey.app.recorder.max_notification_id()
    wait_until(lambda: published_position(journey.app, topic) == first_head, 60, "the first half")
    stop.set()
    thread.join(30)
    assert not thread.is_alive() and result[0].stopped and result[0].unconfirmed == 0
    relay.close()
    assert result[0].position == first_head

    # More recorded while no relay runs; a new relay resumes where the last one recorded.
    append(journey, facts[half:])
    relay = relay_for(journey, kafka_broker, topic, batch_size=300)
    try:
        second = relay.run(follow=False)
    finally:
        relay.close()
    everything = stored(journey)
    assert second.start_position == first_head
    assert second.published == len(everything) - sum(1 for sf in everything if sf.position <= first_head)
    check = check_topic(kafka_broker.bootstrap, topic, everything)
    assert check.records == len(everything) and check.duplicates == []


def test_read_ahead_process_killed_mid_run_loses_and_doubles_nothing(
        journey: Journey, kafka_broker: KafkaEndpoint, kafka_topic_prefix: str,
        caplog: pytest.LogCaptureFixture) -> None:
    """The relay reads the store in a second process (consumers/relay_reader.py); when that
    process dies, the relay reads on by itself from the position it recorded."""
    append(journey, facts_for(150, seed=25))
    facts = stored(journey)
    topic = kafka_topic_prefix + "events"
    killed: list[int] = []

    def kill_reader(batch: int) -> None:
        reader = relay._reader
        if batch == 2 and reader is not None and reader.process.pid is not None:
            os.kill(reader.process.pid, signal.SIGKILL)
            reader.process.join(10)
            killed.append(reader.process.pid)

    assert len(facts) > 4 * 200  # batch 2 comes with more to read after it
    relay = relay_for(journey, kafka_broker, topic, batch_size=200, read_ahead=True,
                      after_flush=kill_reader)
    try:
        done = relay.run(follow=False)
    finally:
        relay.close()
    assert killed, "the read-ahead process was running at batch 2"
    assert "the read-ahead process is gone" in caplog.text
    assert done.published == len(facts) and done.position == facts[-1].position
    check = check_topic(kafka_broker.bootstrap, topic, facts)
    assert check.records == len(facts) and check.duplicates == []


def relay_process(home: Path, bootstrap: str, topic: str, *args: str,
                  env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "journey.cli", "--data-dir", str(home), "relay", "--bootstrap", bootstrap,
         "--topic", topic, *args],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **(env or {})})


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except FileNotFoundError:
        return []


@pytest.mark.slow
@pytest.mark.parametrize("read_ahead", ["--no-read-ahead", "--read-ahead"])
def test_sigkill_mid_run_then_restart_loses_nothing_and_redelivers_one_batch(
        tmp_path: Path, kafka_broker: KafkaEndpoint, kafka_topic_prefix: str, read_ahead: str) -> None:
    """With ``--read-ahead`` a second process reads the store: it must not outlive the relay."""
    home = tmp_path / "ledger"
    journey = open_journey(home)
    try:
        append(journey, facts_for(250, seed=23))
        facts = stored(journey)
    finally:
        journey.close()
    batch = 400
    assert len(facts) > 5 * batch
    topic = kafka_topic_prefix + "events"

    # The worst moment: batch 3 is flushed to the broker, its position not yet recorded.
    relay = relay_process(home, kafka_broker.bootstrap, topic, "--batch", str(batch), read_ahead,
                          env={"JOURNEY_FAULT_RELAY_PAUSE_AFTER_FLUSH": "3"})
    try:
        wait_for_line(relay, "fault: relay paused after flush of batch 3")
        readers = children(relay.pid)
    finally:
        relay.send_signal(signal.SIGKILL)
        relay.communicate()
    # The read-ahead process, and multiprocessing's resource tracker that spawning started.
    assert bool(readers) == (read_ahead == "--read-ahead")
    wait_until(lambda: not any(running(pid) for pid in readers), 30, "the relay's children to exit")
    journey = open_journey(home)
    try:
        tracked = published_position(journey.app, topic)
    finally:
        journey.close()
    assert tracked == facts[2 * batch - 1].position  # two batches recorded, the third not

    # The restarted relay (follow mode, stopped with SIGTERM once at the head) sends batch 3 again.
    relay = relay_process(home, kafka_broker.bootstrap, topic, "--batch", str(batch), "--json", read_ahead)
    journey = open_journey(home)
    try:
        wait_until(lambda: published_position(journey.app, topic) == facts[-1].position, 120,
                   "the restarted relay to reach the head")
    finally:
        journey.close()
        relay.send_signal(signal.SIGTERM)
        out, err = relay.communicate(timeout=60)
    assert relay.returncode == 0, err
    summary = orjson.loads(out)
    assert summary["start_position"] == tracked and summary["position"] == facts[-1].position
    assert summary["stopped"] is True and summary["unconfirmed"] == 0

    check = check_topic(kafka_broker.bootstrap, topic, facts)
    third_batch = [sf.position for sf in facts[2 * batch:3 * batch]]
    assert check.duplicates == third_batch  # redelivered exactly one batch, droppable by position
    assert check.records == len(facts) + batch


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["stop", "kill", "expire"])
def test_broker_restart_while_relaying_ends_exact(
        journey: Journey, kafka_broker: KafkaEndpoint, kafka_topic_prefix: str, mode: str) -> None:
    """stop: graceful broker stop; kill: SIGKILL; expire: SIGKILL with a producer delivery timeout
    shorter than the outage, so sends fail and the relay re-sends the batch with a new producer."""
    hard = mode != "stop"
    producer_config = {"delivery_timeout_ms": 2500, "request_timeout_ms": 1000} if mode == "expire" else {}
    if kafka_broker.external:
        pytest.skip("needs a harness-owned broker")
    facts = facts_for(300, seed=24)
    third = len(facts) // 3
    append(journey, facts[:third])
    topic = kafka_topic_prefix + "events"
    stop = threading.Event()
    relay = relay_for(journey, kafka_broker, topic, batch_size=250, poll_interval=0.05,
                      producer_config=producer_config)
    thread, result = run_in_thread(relay, stop)
    try:
        head = journey.app.recorder.max_notification_id()
        wait_until(lambda: published_position(journey.app, topic) == head, 60, "the first third")
        # Record more while the broker goes away and comes back: the relay must wait, not skip.
        outage_done = threading.Event()

        def outage() -> None:
            kafka_broker.kill() if hard else kafka_broker.stop()
            time.sleep(6.0 if mode == "expire" else 2.0)
            outage_done.set()

        # stop()/kill() from a helper thread; start() from this (the main) thread, as the
        # harness wants, so the broker dies with the test process.
        helper = threading.Thread(target=outage)
        helper.start()
        append(journey, facts[third:2 * third])
        helper.join(60)
        assert outage_done.is_set() and not kafka_broker.running
        before = published_position(journey.app, topic)
        kafka_broker.start()
        append(journey, facts[2 * third:])
        head = journey.app.recorder.max_notification_id()
        wait_until(lambda: published_position(journey.app, topic) == head, 180,
                   "the relay to catch up after the broker came back")
    finally:
        stop.set()
        thread.join(60)
        relay.close()
    assert not thread.is_alive()
    assert result and result[0].position == head
    assert before < head
    check = check_topic(kafka_broker.bootstrap, topic, stored(journey))
    # Duplicates only from batches the producer re-sent after an error, all droppable by position.
    assert len(check.duplicates) <= result[0].send_failures * 250
    if mode == "expire":
        assert result[0].send_failures > 0
