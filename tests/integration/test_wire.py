"""The relay's messages (consumers/wire.py) say what the store holds, whichever way they are made.

The relay splices a stored state into the message value and reads the key and the headers'
fields from the bytes; a consumer must get exactly the fact it would have got from the
decoded event. Facts whose public data holds keys named like the ones the relay looks for
(a ``type`` of their own, a quoted ``"customer_uuid":"...`` in a note) must still travel right.
Format 1 values, which older relays published to a topic kept forever, must still decode.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import UUID

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka.partitioner.default import DefaultPartitioner

from consumers.relay import Relay, partition_for
from consumers.wire import decode_event, encode_event, encode_stored
from journey import demo_data
from journey.bootstrap import Journey
from ledger.application import decode_sealed
from tests.ledgers import append, open_journey
from tests.legacy_sealing import sealed_by_old_rule

DECOYS: list[dict[str, Any]] = [
    {"type": "a public field named type"},
    {"event_id": "not the fact's"},
    {"note": '"customer_uuid":"00000000-0000-0000-0000-000000000000"'},
    {"note": 'an escaped quote \\" and "type":"x" inside a string'},
]


@pytest.fixture(scope="module")
def journey(tmp_path_factory: pytest.TempPathFactory) -> Journey:
    journey = open_journey(tmp_path_factory.mktemp("wire") / "ledger")
    facts = list(demo_data.generate(25, seed=5))
    decoys = 0
    for n, fact in enumerate(facts):
        if n % 7 == 3 and fact["type"] not in ("customer.registered", "customer.merged",
                                                 "customer.unmerged", "customer.forgotten"):
            fact["data"] = {**fact.get("data", {}), **DECOYS[decoys % len(DECOYS)]}
            decoys += 1
    # Today's rule seals every undeclared data field: only a ledger recorded by the earlier
    # rule holds such keys in its public part, and the relay still reads those.
    with sealed_by_old_rule():
        summary = append(journey, facts)
    assert not summary.rejected, summary.rejected[:3]
    return journey


def test_every_message_carries_the_stored_fact_as_the_decoded_event_would(journey: Journey) -> None:
    recorder = journey.app.recorder
    notifications = recorder.select_notifications(0, 1 << 30)
    relay = Relay(app=journey.app, bootstrap="unused:9092", batch_size=1 << 30)
    outgoing = relay._outgoing(relay._read(0, None))  # the SQLite store's rows as they are
    assert [o.position for o in outgoing] == [n.id for n in notifications]
    # The recorder's notifications (any other store) give the same messages.
    assert relay._outgoing(notifications) == outgoing
    spliced = 0
    for n, item in zip(notifications, outgoing, strict=True):
        sf = decode_sealed(journey.app, n)
        key, value, headers, timestamp_ms = item.message
        assert decode_event(value) == sf, f"position {n.id}"
        assert key == sf.fact["customer_uuid"].encode()
        assert headers == encode_event(sf)[2]
        assert timestamp_ms == int(sf.recorded_at.timestamp() * 1000)
        if orjson.loads(value)["state"] == orjson.loads(n.state):
            assert n.state in value, "a spliced value holds the stored bytes as they are"
            spliced += 1
    assert spliced > len(notifications) // 2, "most states travel without being decoded"


def test_a_state_whose_bytes_are_ambiguous_is_decoded_instead(journey: Journey) -> None:
    notifications = journey.app.recorder.select_notifications(0, 1 << 30)
    ambiguous = [n for n in notifications
                 if b'"type":"a public field' in n.state or b'"event_id":"not the' in n.state]
    assert ambiguous, "the decoys were recorded"
    for n in ambiguous:
        assert encode_stored(n.id, str(n.originator_id), n.originator_version, n.state) is None
    # A quoted key inside a string value is no decoy: the state is read from its bytes.
    quoted = [n for n in notifications if b'\\"customer_uuid\\":\\"0000' in n.state]
    assert quoted
    for n in quoted:
        message = encode_stored(n.id, str(n.originator_id), n.originator_version, n.state)
        assert message is not None
        assert message[0] == decode_sealed(journey.app, n).fact["customer_uuid"].encode()


def test_a_format_1_value_still_decodes(journey: Journey) -> None:
    n = journey.app.recorder.select_notifications(0, 1)[0]
    sf = decode_sealed(journey.app, n)
    legacy = orjson.dumps({"position": sf.position, "event_id": sf.fact["event_id"],
                           "customer_id": sf.fact["customer_uuid"], "stream_id": str(sf.stream_id),
                           "stream_version": sf.stream_version,
                           "recorded_at": sf.recorded_at.isoformat(), "fact": sf.fact})
    assert decode_event(legacy) == sf
    assert decode_event(encode_event(sf)[1]) == sf


class _Cluster:
    """The three questions DefaultPartitioner asks a producer's metadata."""

    def __init__(self, count: int) -> None:
        self.partitions = set(range(count))

    def topics(self) -> set[str]:
        return {"t"}

    def partitions_for_topic(self, topic: str) -> set[int]:
        return self.partitions

    def available_partitions_for_topic(self, topic: str) -> set[int]:
        return self.partitions


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.binary(min_size=1, max_size=40), count=st.integers(1, 12))
def test_partition_for_is_the_default_partitioner(key: bytes, count: int) -> None:
    expected = DefaultPartitioner().partition("t", None, key, None, None, _Cluster(count))
    assert partition_for(key, list(range(count))) == expected


def test_a_customer_key_is_its_uuid(tmp_path: Path) -> None:
    """Keys are what consumers partition and deduplicate by: the canonical UUID text."""
    journey = open_journey(tmp_path / "ledger")
    try:
        append(journey, list(demo_data.generate(2, seed=1)))
        for n in journey.app.recorder.select_notifications(0, 100):
            message = encode_stored(n.id, str(n.originator_id), n.originator_version, n.state)
            assert message is not None
            assert str(UUID(message[0].decode())) == message[0].decode()
    finally:
        journey.close()
