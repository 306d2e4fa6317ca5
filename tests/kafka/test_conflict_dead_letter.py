"""A touchpoint resent on Kafka under a recorded (source, id) with other content is dead-lettered
with the conflict's reason; the same content again is a duplicate. Against a real broker."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from consumers import dlq
from tests.harness.conftest_kafka import KafkaEndpoint
from tests.kafka.test_ingest import create_topic, produce, run_ingest
from tests.ledgers import open_journey

pytestmark = pytest.mark.kafka

CALL = {"type": "call.outbound", "id": "c1", "source": "cc", "customer": {"phone": "+34600000001"},
        "occurred_at": "2026-01-02T10:00:00+01:00", "data": {"purpose": "commercial", "outcome": "answered"}}


def test_a_conflicting_resend_is_dead_lettered_naming_the_field(
        kafka_broker: KafkaEndpoint, kafka_topic_prefix: str, tmp_path: Path) -> None:
    bootstrap, topic, dlq_topic = kafka_broker.bootstrap, kafka_topic_prefix + "tp", kafka_topic_prefix + "dlq"
    conflicting = orjson.dumps({**CALL, "data": {**CALL["data"], "outcome": "no_answer"}})
    create_topic(bootstrap, topic, partitions=1)
    # In one poll: the fact, the same again, and the conflicting one (offsets 0, 1, 2).
    produce(bootstrap, topic, [(0, orjson.dumps(CALL), b"k0", []), (0, orjson.dumps(CALL), b"k1", []),
                               (0, conflicting, b"k2", [])])
    journey = open_journey(tmp_path / "ledger")
    try:
        stats = run_ingest(journey, bootstrap, topic, dlq_topic, max_records=10)
        assert (stats.recorded, stats.duplicates, stats.dead_lettered) == (1, 1, 1)
        # In a later poll, against the recorded fact.
        produce(bootstrap, topic, [(0, orjson.dumps(CALL), b"k3", []), (0, conflicting, b"k4", [])])
        stats = run_ingest(journey, bootstrap, topic, dlq_topic, max_records=10)
        assert (stats.recorded, stats.duplicates, stats.dead_lettered) == (0, 1, 1)
    finally:
        journey.close()
    first, second = sorted(dlq.read_dead_letters(bootstrap, dlq_topic), key=lambda e: e.source_offset)
    assert [(e.source_offset, e.value) for e in (first, second)] == [(2, conflicting), (4, conflicting)]
    assert "came earlier in this batch (line or offset 0)" in first.reason
    assert first.reason.endswith('data.outcome: earlier "answered", this one "no_answer"')
    assert second.reason.startswith("conflict: a different fact was recorded with this source and id")
    assert 'data.outcome: recorded "answered", sent "no_answer"' in second.reason
