"""``journey customer REF --as-of T --source kafka``: the relay stamps messages with recorded_at,
so seeking by time on journey.events gives exactly what the store gives."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from consumers.relay import Relay
from journey.cli import main
from tests.kafka.test_projector import make_topic
from tests.ledgers import open_journey, record

pytestmark = pytest.mark.kafka


def call(n: int, day: int) -> dict[str, Any]:
    return {"type": "call.inbound", "id": f"c{n}", "source": "cc", "customer": {"phone": "+34600555111"},
            "occurred_at": f"2026-03-{day:02d}T10:00:00+01:00", "department": "care", "data": {"reason": f"r{n}"}}


def test_as_of_from_kafka_equals_as_of_from_the_store(
        kafka_broker: Any, kafka_topic_prefix: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    topic = kafka_topic_prefix + "events"
    make_topic(kafka_broker.bootstrap, topic)
    home = tmp_path / "ledger"
    journey = open_journey(home)
    try:
        record(journey, {"type": "customer.registered", "id": "r1", "source": "crm",
                         "customer": {"customer_id": "C-55"}, "occurred_at": "2026-03-01T10:00:00+01:00",
                         "data": {"name": "Eva", "phone": "+34600555111"}}, call(1, 2))
        time.sleep(1.1)
        at = datetime.now(UTC)
        time.sleep(1.1)
        record(journey, call(2, 3), call(3, 20))  # call 2 is a late upload: it happened before T
        Relay(journey.app, bootstrap=kafka_broker.bootstrap, topic=topic).run(follow=False)
    finally:
        journey.close()

    def view(*flags: str) -> dict[str, Any]:
        assert main(["--data-dir", str(home), "customer", "C-55", *flags, "--json"]) == 0
        doc: dict[str, Any] = orjson.loads(capsys.readouterr().out)
        return doc

    kafka = ["--source", "kafka", "--bootstrap", kafka_broker.bootstrap, "--topic", topic]
    known = view("--as-of", at.isoformat())
    assert view(*kafka, "--as-of", at.isoformat()) == known
    assert [e["source_id"] for e in known["timeline"]] == ["r1", "c1"]
    by = "2026-03-10T00:00:00+01:00"  # after calls 1 and 2 happened, before call 3
    happened = view("--occurred-by", by)
    assert view(*kafka, "--occurred-by", by) == happened
    assert [e["source_id"] for e in happened["timeline"]] == ["r1", "c1", "c2"]
    assert len(happened["recorded_late"]) == 3  # all were recorded in the ledger after March
