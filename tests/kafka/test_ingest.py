"""The ingest consumer against a real broker: end states checked exactly against a JSON Lines oracle.

Facts are spread over the topic's partitions by *identity component* (facts that share any
identity, claimed identity or case land in the same partition, in input order). Components do
not interact, so the ledger's end state does not depend on how the consumer interleaves the
partitions, and a ledger fed the same good facts from JSON Lines is an exact oracle.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic

from consumers import dlq
from consumers.kafka_ingest import KafkaIngest, tracking_name
from domain import catalogue, identity
from journey import demo_data
from journey.bootstrap import Journey
from journey.cli import main
from tests.harness.conftest_kafka import KafkaEndpoint
from tests.ledgers import append, open_journey

ROOT = Path(__file__).resolve().parents[2]
PARTITIONS = 4
pytestmark = pytest.mark.kafka

Fact = dict[str, Any]


# -- helpers ---------------------------------------------------------------------------------


def create_topic(bootstrap: str, topic: str, partitions: int = PARTITIONS) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="journey-test-admin")
    try:
        admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        admin.close()


def partition_of(facts: Sequence[Fact], partitions: int = PARTITIONS) -> list[int]:
    """A partition per fact such that facts sharing an identity or a case share a partition."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    firsts = []
    for f in facts:
        v = catalogue.validate(orjson.loads(orjson.dumps(f)))
        keys = identity.reference_keys(v["customer"]) + catalogue.claimed_identities(v)
        if "case_id" in v["data"]:
            keys.append("case:" + v["data"]["case_id"])
        for k in keys[1:]:
            parent[find(k)] = find(keys[0])
        firsts.append(keys[0])
    return [zlib.crc32(find(k).encode()) % partitions for k in firsts]


Message = tuple[int, bytes, bytes | None, list[tuple[str, bytes]]]  # partition, value, key, headers


def produce(bootstrap: str, topic: str, messages: Sequence[Message]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20)
    try:
        futures = [producer.send(topic, value=v, key=k, headers=h, partition=p) for p, v, k, h in messages]
        producer.flush()
        for f in futures:
            f.get(timeout=30)
    finally:
        producer.close()


def good_messages(facts: Sequence[Fact]) -> list[Message]:
    return [(p, orjson.dumps(f), None, []) for f, p in zip(facts, partition_of(facts), strict=True)]


def store_state(journey: Journey) -> dict[str, Any]:
    """Per-stream event counts and versions, per-customer counts, and every fact's placement."""
    datastore = journey.app.recorder.datastore  # type: ignore[attr-defined]
    with datastore.transaction(commit=False) as c:
        c.execute("SELECT originator_id, COUNT(*), MIN(originator_version), MAX(originator_version) "
                  "FROM stored_events GROUP BY originator_id")
        streams = {r[0]: tuple(r[1:]) for r in c.fetchall()}
        c.execute("SELECT lower(hex(customer_id)), COUNT(*) FROM journey_log WHERE event_id IS NOT NULL "
                  "GROUP BY customer_id")
        customers = {r[0]: r[1] for r in c.fetchall()}
        c.execute("SELECT event_id, customer_id, stream_id FROM journey_log WHERE event_id IS NOT NULL")
        facts = {str(uuid.UUID(bytes=r[0])): (uuid.UUID(bytes=r[1]).hex, uuid.UUID(bytes=r[2]).hex)
                 for r in c.fetchall()}
        c.execute("SELECT COUNT(*) FROM stored_events")
        events = c.fetchone()[0]
    # Every stream's versions are 1..n without gaps, and each fact is one event.
    assert all(n == hi and lo == 1 for n, lo, hi in streams.values())
    assert events == len(facts)
    return {"streams": streams, "customers": customers, "facts": facts}


def oracle(tmp_path: Path, facts: Sequence[Fact]) -> dict[str, Any]:
    journey = open_journey(tmp_path / "oracle")
    try:
        summary = append(journey, facts)
        assert not summary.rejected
        return store_state(journey)
    finally:
        journey.close()


def run_ingest(journey: Journey, bootstrap: str, topic: str, dlq_topic: str, **kw: Any) -> Any:
    dlq.ensure_topic(bootstrap, dlq_topic)
    ingest = KafkaIngest(journey.ledger, bootstrap=bootstrap, topic=topic, dlq_topic=dlq_topic,
                         group=kw.pop("group", f"{topic}-ingest"), **kw)
    try:
        return ingest.run(once=True)
    finally:
        ingest.close()


def tracked(journey: Journey, topic: str) -> dict[int, int | None]:
    recorder: Any = journey.app.recorder
    return {p: recorder.max_tracking_id(tracking_name(topic, p)) for p in range(PARTITIONS)}


def ends(messages: Sequence[Message]) -> dict[int, int | None]:
    """The last offset of each partition after producing ``messages`` to an empty topic."""
    counts = [0] * PARTITIONS
    for p, *_ in messages:
        counts[p] += 1
    return {p: (n - 1 if n else None) for p, n in enumerate(counts)}


def poison() -> list[tuple[bytes, str]]:
    """Bad messages with the reason keyword expected: contract breaks, and one the ledger refuses."""
    bad = [(line.encode(), why) for line, why in demo_data.bad_lines()]
    bad.append((b"\xff\xfe not even utf-8", "json"))
    refused = {"type": "call.inbound", "id": "refused-1", "source": "test",
               "customer": {"customer_id": str(uuid.UUID(int=42))},
               "occurred_at": "2026-03-09T10:00:00+01:00", "data": {"reason": "x"}}
    bad.append((orjson.dumps(refused), "no customer with ledger id"))
    return bad


def mixed(facts: Sequence[Fact]) -> tuple[list[Message], dict[tuple[int, int], tuple[bytes, str]]]:
    """Good messages with poison ones spliced in; the poison's (partition, offset) -> (bytes, why)."""
    messages = good_messages(facts)
    bad = poison()
    step = len(messages) // (len(bad) + 1)
    for i, (value, _) in enumerate(bad):
        at = step * (i + 1)
        headers = [("channel", b"test"), ("trace", str(i).encode())]
        messages.insert(at, (i % PARTITIONS, value, f"k{i}".encode(), headers))
    expected: dict[tuple[int, int], tuple[bytes, str]] = {}
    next_offset = [0] * PARTITIONS
    poison_values = {v: why for v, why in bad}
    for p, value, key, _ in messages:
        if key is not None and value in poison_values:
            expected[(p, next_offset[p])] = (value, poison_values[value])
        next_offset[p] += 1
    assert len(expected) == len(bad)
    return messages, expected


def check_dlq(bootstrap: str, dlq_topic: str, topic: str,
              expected: dict[tuple[int, int], tuple[bytes, str]]) -> list[dlq.DeadLetter]:
    entries = dlq.read_dead_letters(bootstrap, dlq_topic)
    assert {(e.source_partition, e.source_offset) for e in entries} == set(expected)
    for e in entries:
        value, why = expected[(e.source_partition, e.source_offset)]
        assert e.source_topic == topic
        assert e.value == value  # the original bytes
        assert why.lower() in e.reason.lower(), (why, e.reason)
        assert e.key is not None and e.key.startswith(b"k")
        assert [k for k, _ in e.headers] == ["channel", "trace"]
    return entries


# -- tests -----------------------------------------------------------------------------------


def test_good_recorded_once_and_poison_dead_lettered(
        kafka_broker: KafkaEndpoint, kafka_topic_prefix: str, tmp_path: Path) -> None:
    bootstrap, topic, dlq_topic = kafka_broker.bootstrap, kafka_topic_prefix + "tp", kafka_topic_prefix + "dlq"
    facts = list(demo_data.generate(150, seed=11))
    messages, expected = mixed(facts)
    create_topic(bootstrap, topic)
    produce(bootstrap, topic, messages)

    journey = open_journey(tmp_path / "ledger")
    try:
        stats = run_ingest(journey, bootstrap, topic, dlq_topic, max_records=300)
        assert stats.messages == len(messages)
        assert stats.recorded == len(facts)
        assert stats.dead_lettered == len(expected)
        assert stats.duplicates == 0
        assert store_state(journey) == oracle(tmp_path, facts)
        assert tracked(journey, topic) == ends(messages)
    finally:
        journey.close()
    check_dlq(bootstrap, dlq_topic, topic, expected)


def test_broker_errors_mid_run_are_waited_out_and_lose_nothing(
        kafka_broker: KafkaEndpoint, kafka_topic_prefix: str, tmp_path: Path) -> None:
    """What a broker restart does to a running ingest, injected at the worst points: a poll that
    fails before handing anything over, one that fails after the fetcher moved past a batch, and a
    DLQ flush that fails after its dead letters were sent. The loop waits and rewinds to the store."""
    from kafka.errors import KafkaConnectionError, KafkaTimeoutError

    bootstrap, topic, dlq_topic = kafka_broker.bootstrap, kafka_topic_prefix + "tp", kafka_topic_prefix + "dlq"
    facts = list(demo_data.generate(150, seed=13))
    messages, expected = mixed(facts)
    create_topic(bootstrap, topic)
    produce(bootstrap, topic, messages)
    dlq.ensure_topic(bootstrap, dlq_topic)

    journey = open_journey(tmp_path / "ledger")
    ingest = KafkaIngest(journey.ledger, bootstrap=bootstrap, topic=topic, dlq_topic=dlq_topic,
                         group=f"{topic}-ingest", max_records=60)
    polls = flushes = 0
    real_poll, real_flush = ingest.consumer.poll, ingest.dlq.flush

    def poll(**kw: Any) -> Any:
        nonlocal polls
        polls += 1
        if polls == 2:
            raise KafkaConnectionError("111 ECONNREFUSED (injected)")
        polled = real_poll(**kw)
        if polls == 4 and polled:
            raise KafkaConnectionError("111 ECONNREFUSED (injected, after the fetch)")
        return polled

    def flush() -> None:
        nonlocal flushes
        had = bool(ingest.dlq._pending)
        real_flush()
        if had:
            flushes += 1
            if flushes == 1:
                raise KafkaTimeoutError("injected: the acks arrived, the caller did not see them")

    ingest.consumer.poll = poll  # type: ignore[method-assign]
    ingest.dlq.flush = flush  # type: ignore[method-assign]
    try:
        stats = ingest.run(once=True)
        assert ingest.outage.failed_attempts == 3
        assert stats.recorded == len(facts)
        assert stats.dead_lettered == len(expected)
        assert store_state(journey) == oracle(tmp_path, facts)
        assert tracked(journey, topic) == ends(messages)
    finally:
        ingest.close()
        journey.close()
    check_dlq(bootstrap, dlq_topic, topic, expected)  # the re-sent copies are hidden as duplicates
    assert len(dlq.read_dead_letters(bootstrap, dlq_topic, unique=False)) > len(expected)


def test_same_message_twice_is_recorded_once_and_redelivery_records_nothing(
        kafka_broker: KafkaEndpoint, kafka_topic_prefix: str, tmp_path: Path) -> None:
    bootstrap, topic, dlq_topic = kafka_broker.bootstrap, kafka_topic_prefix + "tp", kafka_topic_prefix + "dlq"
    facts = list(demo_data.generate(40, seed=5))
    messages = good_messages(facts)
    doubled = messages + messages[::7]  # the same raw bytes again, later, same partition
    create_topic(bootstrap, topic)
    produce(bootstrap, topic, doubled)

    journey = open_journey(tmp_path / "ledger")
    try:
        stats = run_ingest(journey, bootstrap, topic, dlq_topic, max_records=100)
        assert (stats.recorded, stats.duplicates, stats.dead_lettered) == (len(facts), len(messages[::7]), 0)
        before = store_state(journey)
        assert before == oracle(tmp_path, facts)
        head = journey.app.recorder.max_notification_id()

        # A new consumer group has no Kafka offsets: it still starts at the store's positions,
        # so of the whole topic only the one new message is read.
        late = {"type": "call.inbound", "id": "late-1", "source": "test",
                "customer": {"phone": "+34600777002"}, "occurred_at": "2026-03-09T10:00:00+01:00",
                "data": {"reason": "late"}}
        produce(bootstrap, topic, [(messages[0][0], orjson.dumps(late), None, [])])
        again = run_ingest(journey, bootstrap, topic, dlq_topic, group=topic + "-other")
        assert (again.messages, again.recorded, again.redelivered) == (1, 1, 0)
        assert store_state(journey) == oracle(tmp_path / "2", [*facts, late])
        before = store_state(journey)
        head = journey.app.recorder.max_notification_id()
        # A batch handed to the ledger again (a redelivery the consumer did not filter) is
        # refused as a whole by the store's tracking row.
        p = messages[0][0]
        last = tracked(journey, topic)[p]
        assert last is not None
        from eventsourcing.persistence import Tracking

        from consumers.jsonl_ingest import parse_line
        result = journey.ledger.append([(0, parse_line(messages[0][1]))],
                                       tracking=Tracking(tracking_name(topic, p), last))
        assert (result.recorded, result.rejected) == (0, [])
        assert journey.app.recorder.max_notification_id() == head
        assert store_state(journey) == before
    finally:
        journey.close()
    assert dlq.read_dead_letters(bootstrap, dlq_topic) == []


def _ingest_cmd(data_dir: Path, bootstrap: str, topic: str, dlq_topic: str, *extra: str,
                group: str = "-ingest") -> list[str]:
    return [sys.executable, "-m", "journey.cli", "--data-dir", str(data_dir), "ingest",
            "--bootstrap", bootstrap, "--topic", topic, "--dlq-topic", dlq_topic,
            "--group", topic + group, "--batch", "200", *extra]


def _wait_for(proc: subprocess.Popen[bytes], text: bytes, timeout: float = 120.0) -> None:
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout
    seen = b""
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line and proc.poll() is not None:
            break
        seen += line
        if text in line:
            return
    raise AssertionError(f"never saw {text!r}; stderr:\n{seen.decode(errors='replace')[-3000:]}")


@pytest.mark.slow
def test_sigkill_mid_run_then_restart_gives_the_exact_end_state(
        kafka_broker: KafkaEndpoint, kafka_topic_prefix: str, tmp_path: Path) -> None:
    bootstrap, topic, dlq_topic = kafka_broker.bootstrap, kafka_topic_prefix + "tp", kafka_topic_prefix + "dlq"
    facts = list(demo_data.generate(1500, seed=13))
    messages, expected = mixed(facts)
    create_topic(bootstrap, topic)
    produce(bootstrap, topic, messages)
    data_dir = tmp_path / "ledger"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    # 1. Killed between a batch's DLQ flush and its store commit (the duplicating window).
    proc = subprocess.Popen(_ingest_cmd(data_dir, bootstrap, topic, dlq_topic, "--once"), cwd=ROOT,
                            env={**env, "JOURNEY_FAULT_PAUSE_INGEST_BATCH": "9"},
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    try:
        _wait_for(proc, b"fault: paused before commit")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # 2. Killed at whatever point it has reached after some progress.
    proc = subprocess.Popen(_ingest_cmd(data_dir, bootstrap, topic, dlq_topic, "--once"), cwd=ROOT,
                            env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    try:
        _wait_for(proc, b"ingest: ")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    journey = open_journey(data_dir)
    try:
        partial = store_state(journey)
    finally:
        journey.close()
    assert 0 < len(partial["facts"]) < len(facts)

    # 3. Restart to the end.
    done = subprocess.run(_ingest_cmd(data_dir, bootstrap, topic, dlq_topic, "--once", "--json"),
                          cwd=ROOT, env=env, capture_output=True, timeout=300)
    assert done.returncode in (0, 1), done.stderr.decode()[-3000:]
    journey = open_journey(data_dir)
    try:
        assert store_state(journey) == oracle(tmp_path, facts)
        assert tracked(journey, topic) == ends(messages)
    finally:
        journey.close()
    entries = check_dlq(bootstrap, dlq_topic, topic, expected)
    copies = dlq.read_dead_letters(bootstrap, dlq_topic, unique=False)
    assert len(copies) >= len(entries)

    # 4. Redelivery after the restart (another group, no Kafka offsets) records nothing.
    again = subprocess.run(_ingest_cmd(data_dir, bootstrap, topic, dlq_topic, "--once", "--json",
                                       group="-again"), cwd=ROOT, env=env, capture_output=True, timeout=300)
    assert again.returncode == 0, again.stderr.decode()[-3000:]
    out = orjson.loads(again.stdout)
    assert (out["messages"], out["recorded"], out["dead_lettered"]) == (0, 0, 0)
    assert len(dlq.read_dead_letters(bootstrap, dlq_topic, unique=False)) == len(copies)


def test_dlq_list_and_replay_of_a_corrected_file(
        kafka_broker: KafkaEndpoint, kafka_topic_prefix: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    bootstrap, topic, dlq_topic = kafka_broker.bootstrap, kafka_topic_prefix + "tp", kafka_topic_prefix + "dlq"
    facts = list(demo_data.generate(20, seed=2))
    broken = {"type": "call.inbound", "id": "fix-me-1", "source": "test",
              "customer": {"phone": "+34600777001"}, "occurred_at": "2026-03-09T10:00:00",
              "data": {"reason": "where is my router"}}
    create_topic(bootstrap, topic)
    produce(bootstrap, topic, [*good_messages(facts), (1, orjson.dumps(broken), b"k", [])])
    data_dir = tmp_path / "ledger"
    base = ["--data-dir", str(data_dir)]
    kafka = ["--bootstrap", bootstrap, "--dlq-topic", dlq_topic]

    assert main([*base, "ingest", *kafka, "--topic", topic, "--once", "--json"]) == 1
    ingested = orjson.loads(capsys.readouterr().out)
    assert (ingested["recorded"], ingested["dead_lettered"]) == (len(facts), 1)

    assert main([*base, "dlq", "list", *kafka, "--json"]) == 0
    [entry] = orjson.loads(capsys.readouterr().out)
    assert entry["dlq_offset"] == 0 and entry["source_topic"] == topic
    assert entry["source_partition"] == 1 and "offset" in entry["reason"]
    assert orjson.loads(entry["text"]) == broken

    corrected = tmp_path / "corrected.jsonl"
    fixed = {**orjson.loads(entry["text"]), "occurred_at": "2026-03-09T10:00:00+01:00"}
    corrected.write_bytes(orjson.dumps(fixed) + b"\n")
    assert main([*base, "dlq", "replay", *kafka, "--topic", topic, "--file", str(corrected)]) == 0
    capsys.readouterr()
    # As-is replay of the entry: still broken, so it comes back to the DLQ from its new offset.
    assert main([*base, "dlq", "replay", *kafka, "--topic", topic, "--offsets", "0"]) == 0
    capsys.readouterr()

    assert main([*base, "ingest", *kafka, "--topic", topic, "--once", "--json"]) == 1
    again = orjson.loads(capsys.readouterr().out)
    assert (again["messages"], again["recorded"], again["dead_lettered"]) == (2, 1, 1)
    journey = open_journey(data_dir)
    try:
        event_id = str(identity.event_uuid("test", "fix-me-1"))
        assert event_id in store_state(journey)["facts"]
        assert store_state(journey) == oracle(tmp_path, [*facts, fixed])
    finally:
        journey.close()
    entries = dlq.read_dead_letters(bootstrap, dlq_topic)
    assert len(entries) == 2 and entries[1].value == orjson.dumps(broken)
    assert any(k == dlq.H_REPLAYED_FROM for k, _ in entries[1].headers)
