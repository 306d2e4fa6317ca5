"""Round-trip tests against the real broker provided by tests/harness/conftest_kafka.py."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer

from tests.harness.conftest_kafka import KafkaEndpoint

Message = tuple[bytes, bytes, tuple[tuple[str, bytes], ...]]

pytestmark = pytest.mark.kafka


def _message(i: int, batch: str = "a") -> Message:
    key = f"customer-{i % 17}".encode()
    value = f'{{"batch":"{batch}","seq":{i},"payload":"{"x" * (i % 50)}"}}'.encode()
    headers = (
        ("seq", str(i).encode()),
        ("batch", batch.encode()),
        ("event-type", b"touchpoint.recorded"),
        ("binary", bytes([i % 256, 0, 255])),
    )
    return key, value, headers


def _producer(bootstrap: str) -> KafkaProducer:
    return KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=5,
        client_id="journey-test-producer",
    )


def _produce(producer: KafkaProducer, topic: str, messages: list[Message]) -> None:
    """Send everything, flush once at the end, then check every send succeeded."""
    errors: list[BaseException] = []
    futures: list[Any] = []
    for key, value, headers in messages:
        future = producer.send(topic, key=key, value=value, headers=list(headers))
        future.add_errback(errors.append)
        futures.append(future)
    producer.flush(timeout=60)
    assert not errors, f"{len(errors)} sends failed, first: {errors[0]!r}"
    assert all(f.succeeded() for f in futures), "flush() returned with unfinished sends"


def _consume(bootstrap: str, topic: str, group: str, expected: int, timeout: float = 60.0) -> list[Any]:
    """Poll from the earliest offset until ``expected`` records arrived (or time out)."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        client_id="journey-test-consumer",
    )
    records: list[Any] = []
    try:
        deadline = time.monotonic() + timeout
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        # A short extra poll: nothing beyond what was produced may show up.
        for batch in consumer.poll(timeout_ms=300).values():
            records.extend(batch)
    finally:
        consumer.close()
    return records


def _as_messages(records: list[Any]) -> list[Message]:
    return [(r.key, r.value, tuple((k, v) for k, v in r.headers)) for r in records]


def _assert_per_key_order(records: list[Any]) -> None:
    """Records with the same key share a partition, so their order must be preserved."""
    by_key: dict[bytes, list[int]] = defaultdict(list)
    for r in records:
        by_key[r.key].append(int(dict(r.headers)["seq"]))
    for key, seqs in by_key.items():
        assert seqs == sorted(seqs), f"order broken for key {key!r}: {seqs}"


def test_produce_and_consume_roundtrip(kafka_broker: KafkaEndpoint, kafka_topic_prefix: str) -> None:
    topic = f"{kafka_topic_prefix}touchpoints"
    sent = [_message(i) for i in range(500)]

    producer = _producer(kafka_broker.bootstrap)
    try:
        _produce(producer, topic, sent)
        partitions = producer.partitions_for(topic)
    finally:
        producer.close()

    assert len(partitions) == 4, "auto-created topics should get num.partitions=4"

    records = _consume(kafka_broker.bootstrap, topic, f"{kafka_topic_prefix}g", len(sent))
    got = _as_messages(records)
    assert len(got) == len(sent)
    assert sorted(got) == sorted(sent)
    assert {r.partition for r in records} == set(range(4))
    _assert_per_key_order(records)


@pytest.mark.slow
def test_restart_keeps_data_and_accepts_new_messages(
    kafka_broker: KafkaEndpoint, kafka_topic_prefix: str
) -> None:
    if kafka_broker.external:
        pytest.skip("restart() needs a harness-owned broker (KAFKA_BOOTSTRAP is set)")
    topic = f"{kafka_topic_prefix}touchpoints"
    before = [_message(i, "before") for i in range(200)]
    after = [_message(i, "after") for i in range(200, 300)]
    group = f"{kafka_topic_prefix}g"

    # The same producer lives across the restart: it must reconnect on its own.
    producer = _producer(kafka_broker.bootstrap)
    try:
        _produce(producer, topic, before)

        # A consumer group reads and commits the first batch before the restart.
        consumer = KafkaConsumer(
            topic,
            bootstrap_servers=kafka_broker.bootstrap,
            group_id=group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        try:
            seen: list[Any] = []
            deadline = time.monotonic() + 60
            while len(seen) < len(before) and time.monotonic() < deadline:
                for batch in consumer.poll(timeout_ms=500).values():
                    seen.extend(batch)
            assert sorted(_as_messages(seen)) == sorted(before)
            consumer.commit()
        finally:
            consumer.close()

        started = time.monotonic()
        kafka_broker.restart()
        restart_seconds = time.monotonic() - started

        _produce(producer, topic, after)
    finally:
        producer.close()

    # Everything produced before the restart is still there, plus the new messages.
    everything = _consume(
        kafka_broker.bootstrap, topic, f"{kafka_topic_prefix}g-fresh", len(before) + len(after)
    )
    assert sorted(_as_messages(everything)) == sorted(before + after)
    _assert_per_key_order(everything)

    # The committed offsets survived too: the old group only gets the post-restart batch.
    resumed = _consume(kafka_broker.bootstrap, topic, group, len(after))
    assert sorted(_as_messages(resumed)) == sorted(after)

    assert restart_seconds < 60, f"restart took {restart_seconds:.1f}s"


@pytest.mark.slow
def test_crash_kill_then_start_keeps_acknowledged_data(
    kafka_broker: KafkaEndpoint, kafka_topic_prefix: str
) -> None:
    if kafka_broker.external:
        pytest.skip("kill() needs a harness-owned broker (KAFKA_BOOTSTRAP is set)")
    topic = f"{kafka_topic_prefix}touchpoints"
    before = [_message(i, "pre-crash") for i in range(100)]
    after = [_message(i, "post-crash") for i in range(100, 150)]

    producer = _producer(kafka_broker.bootstrap)
    try:
        _produce(producer, topic, before)
        kafka_broker.kill()  # SIGKILL: no controlled shutdown, no final flush
        assert not kafka_broker.running
        kafka_broker.start()
        _produce(producer, topic, after)
    finally:
        producer.close()

    everything = _consume(kafka_broker.bootstrap, topic, f"{kafka_topic_prefix}g", len(before) + len(after))
    assert sorted(_as_messages(everything)) == sorted(before + after)
