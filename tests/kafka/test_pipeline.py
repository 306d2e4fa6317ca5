"""10k raw touchpoints through the whole distributed path, each exactly once at every stage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer

from benchmarks.pipeline import run_pipeline
from consumers.kafka_projector import partition_path
from consumers.wire import decode_event
from domain import identity
from journey import demo_data
from journey.bootstrap import bootstrap
from ledger.application import decode_notification
from projections.duckdb_store import ProjectionStore

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
            projected += [r[0] for r in part.con.execute("SELECT event_id FROM events").fetchall()]
        finally:
            part.close()
    assert sorted(projected) == sorted(all_ids)  # the projections: once each
