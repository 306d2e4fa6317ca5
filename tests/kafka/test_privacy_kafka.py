"""Personal data on Kafka: journey.events carries it encrypted, so forgetting a person reaches
the topic too (the key is destroyed in the store; the messages stay as they are)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from consumers.kafka_projector import partition_path, run_projector
from consumers.relay import Relay
from projections.duckdb_store import ProjectionStore
from tests.kafka.test_projector import PARTITIONS, make_topic
from tests.kafka.test_relay import read_topic
from tests.ledgers import open_journey, record

pytestmark = pytest.mark.kafka

NAME, PHONE, STREET = "Zoe Quintanilla-Unique", "+34611222333", "Calle Inventada"
FACTS = [
    {"type": "customer.registered", "id": "r1", "source": "crm", "customer": {"customer_id": "C-77"},
     "occurred_at": "2026-01-03T10:00:00+01:00",
     "data": {"name": NAME, "phone": PHONE,
              "address": {"street": STREET, "number": "9", "postal_code": "28013", "city": "Madrid"}}},
    {"type": "call.inbound", "id": "c1", "source": "cc", "customer": {"phone": PHONE},
     "occurred_at": "2026-01-04T10:00:00+01:00", "department": "care", "data": {"reason": "billing"}},
]


def views(directory: Path, topic: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for p in range(PARTITIONS):
        path = partition_path(directory, topic, p)
        if path.exists():
            store = ProjectionStore(path, name=f"kafka:{topic}:{p}", start=-1)
            try:
                found.update(store.load_views(
                    [r[0] for r in store.con.execute("SELECT customer_id FROM customer_views").fetchall()]))
            finally:
                store.close()
    return found


def test_the_topic_holds_no_plaintext_personal_data_and_forgetting_reaches_kafka_readers(
        kafka_broker: Any, kafka_topic_prefix: str, tmp_path: Path) -> None:
    topic = kafka_topic_prefix + "events"
    make_topic(kafka_broker.bootstrap, topic)
    journey = open_journey(tmp_path / "ledger")
    try:
        assert not record(journey, *FACTS).rejected
        Relay(journey.app, bootstrap=kafka_broker.bootstrap, topic=topic).run(follow=False)
        raw = b"".join(m.value + b"".join(v for _, v in m.headers or []) for m in read_topic(kafka_broker.bootstrap, topic))
        for secret in (NAME, PHONE, PHONE[3:], STREET, "C-77"):
            assert secret.encode() not in raw, secret

        # A Kafka reader with the store's keys sees the person.
        out = tmp_path / "partitions"
        run_projector(journey.app, bootstrap=kafka_broker.bootstrap, topic=topic, directory=out,
                      group=topic + "-g", once=True)
        (view,) = views(out, topic).values()
        assert view["sections"]["profile"][0]["data"]["name"] == NAME

        result = journey.ledger.forget("customer_id:C-77", "art. 17 request")
        assert result is not None
        Relay(journey.app, bootstrap=kafka_broker.bootstrap, topic=topic).run(follow=False)
        # The old messages are still on the topic, unchanged; nobody can read them any more.
        rebuilt = tmp_path / "after"
        run_projector(journey.app, bootstrap=kafka_broker.bootstrap, topic=topic, directory=rebuilt,
                      group=topic + "-g2", once=True)
        (after,) = views(rebuilt, topic).values()
        assert NAME not in str(after) and PHONE not in str(after)
        assert after.get("forgotten") is True
    finally:
        journey.close()
