"""The hash chain on journey.events: a relay with ``chain=True`` carries each event's link and
stored bytes, so a copy of the topic can be checked without the store (ledger.chain.verify_messages)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from consumers.relay import Relay
from journey import demo_data
from ledger import chain
from tests.harness.conftest_kafka import KafkaEndpoint
from tests.kafka.test_relay import read_topic
from tests.ledgers import append, open_journey

pytestmark = pytest.mark.kafka

Message = tuple[bytes, bytes, list[tuple[str, bytes]]]


def test_a_flipped_byte_in_a_copied_topic_is_found(kafka_broker: KafkaEndpoint, kafka_topic_prefix: str,
                                                   tmp_path: Path) -> None:
    journey = open_journey(tmp_path / "ledger")
    try:
        assert not append(journey, list(demo_data.generate(20, seed=4)), batch_size=100).rejected
        topic = kafka_topic_prefix + "events"
        relay = Relay(journey.app, bootstrap=kafka_broker.bootstrap, topic=topic, partitions=2,
                      batch_size=150, chain=True)
        try:
            relay.run(follow=False)
        finally:
            relay.close()
        report = chain.verify_store(journey.app.recorder)
        assert report.intact
        checkpoint = chain.checkpoint_of(report)
    finally:
        journey.close()

    records: Any = read_topic(kafka_broker.bootstrap, topic)
    messages: list[Message] = [(r.key, r.value, list(r.headers)) for r in records]
    assert len(messages) == report.events
    intact = chain.verify_messages(messages, checkpoint)
    assert intact.intact, intact.as_dict()
    assert intact.chained == report.events

    def position(m: Message) -> int:
        return int(dict(m[2])["position"])

    for i in (0, len(messages) // 2, len(messages) - 1):
        key, value, headers = messages[i]
        for at in (3, len(value) // 2, len(value) - 2):
            flipped = bytearray(value)
            flipped[at] ^= 0x01
            copy = [*messages[:i], (key, bytes(flipped), headers), *messages[i + 1:]]
            found = chain.verify_messages(copy, checkpoint)
            assert not found.intact, (i, at)
            assert found.first is not None and found.first.position == position(messages[i])
        # the stored bytes travelling in the header are covered by the hash
        state = dict(headers)["chain_state"]
        bent = bytearray(state)
        bent[len(bent) // 3] ^= 0x20
        copy = [*messages[:i], (key, value, [(k, bytes(bent) if k == "chain_state" else v)
                                             for k, v in headers]), *messages[i + 1:]]
        found = chain.verify_messages(copy, checkpoint)
        assert found.first is not None and found.first.position == position(messages[i])

    # a message removed from the copy: the customer's next link, or the checkpoint, says so
    dropped = chain.verify_messages(messages[:5] + messages[6:], checkpoint)
    assert not dropped.intact
