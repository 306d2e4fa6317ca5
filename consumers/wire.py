"""How a recorded event travels on Kafka (topic journey.events).

key      the customer id (UTF-8), so one customer's events stay in one partition, in order
value    orjson: position, event_id, customer_id, stream_id, stream_version, recorded_at, fact
headers  type, event_id, stream_id, customer_version (the stream version), position

``position`` is the store's notification id: a consumer that has applied position p for a
customer knows any message of that customer with position <= p is a redelivery.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import orjson

from ledger.application import StoredFact

Headers = list[tuple[str, bytes]]


def encode_event(sf: StoredFact) -> tuple[bytes, bytes, Headers]:
    # The relay's own work per event competes with kafka-python's sender thread for the GIL,
    # so every microsecond here is one the producer does not get: one str() of the stream id,
    # %-formatted bytes for the numbers.
    fact = sf.fact
    event_id = fact["event_id"]
    customer = fact["customer_uuid"]
    stream = str(sf.stream_id)
    value = {
        "position": sf.position,
        "event_id": event_id,
        "customer_id": customer,
        "stream_id": stream,
        "stream_version": sf.stream_version,
        "recorded_at": sf.recorded_at.isoformat(),
        "fact": fact,
    }
    headers = [
        ("type", fact["type"].encode()),
        ("event_id", event_id.encode()),
        ("stream_id", stream.encode()),
        ("customer_version", b"%d" % sf.stream_version),
        ("position", b"%d" % sf.position),
    ]
    return customer.encode(), orjson.dumps(value), headers


def decode_event(value: bytes) -> StoredFact:
    doc: dict[str, Any] = orjson.loads(value)
    return StoredFact(
        position=int(doc["position"]),
        stream_id=UUID(doc["stream_id"]),
        stream_version=int(doc["stream_version"]),
        recorded_at=datetime.fromisoformat(doc["recorded_at"]),
        fact=doc["fact"],
    )
