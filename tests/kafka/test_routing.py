"""One writer per customer: touchpoints routed by customer, written by 1, 2 or 4 ingest workers.

The channels key facts by whatever identity they know; the router re-keys each by the record it
will be written to, and a fact that touches what an earlier fact on another partition touched
waits for it. The property: whatever the number of workers and routed partitions, the store ends
exactly as a single ``journey append`` of the same facts in the same order leaves it (same
streams and versions, same customers, same merges), no batch ever meets another writer's
changes, and every fact is stored once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumers import dlq
from consumers.kafka_ingest import IngestStats, KafkaIngest, tracking_name
from consumers.route_headers import parse_after
from consumers.routing import KafkaRouter, RouteStats
from domain import identity
from journey import demo_data
from journey.bootstrap import Journey
from tests.harness.conftest_kafka import KafkaEndpoint
from tests.kafka.test_ingest import ROOT, _wait_for, create_topic, oracle, produce, store_state
from tests.ledgers import open_journey
from tests.strategies import fact_lists

pytestmark = pytest.mark.kafka

Fact = dict[str, Any]


def channel_key(fact: Fact) -> bytes:
    """What a channel keys a touchpoint by: the identity it knows (not the ledger's customer)."""
    ref = fact["customer"]
    kind = next(k for k in ("phone", "twitter", "email", "loyalty_card", "national_id", "customer_id")
                if k in ref)
    return f"{kind}:{ref[kind]}".encode()


def route(journey: Journey, bootstrap: str, topic: str, routed: str, dlq_topic: str,
          partitions: int) -> RouteStats:
    dlq.ensure_topic(bootstrap, dlq_topic)
    dlq.ensure_topic(bootstrap, routed, partitions=partitions)
    recorder: Any = journey.app.recorder

    def written(partition: int) -> int | None:
        done: int | None = recorder.max_tracking_id(tracking_name(routed, partition))
        return done

    router = KafkaRouter(journey.app.index, written, bootstrap=bootstrap, topic=topic, routed_topic=routed,
                         dlq_topic=dlq_topic, group=f"{topic}-route", transactional_id=f"{topic}-route",
                         parse=journey.parse)
    try:
        return router.run(once=True)
    finally:
        router.close()


def write(journeys: Sequence[Journey], bootstrap: str, routed: str, dlq_topic: str) -> list[IngestStats]:
    """Ingest workers, one thread each, on one consumer group, until the routed topic is stored."""
    stats: list[IngestStats] = []
    errors: list[BaseException] = []

    def work(journey: Journey) -> None:
        loop = KafkaIngest(journey.ledger, bootstrap=bootstrap, topic=routed, dlq_topic=dlq_topic,
                           group=f"{routed}-ingest", max_records=50, poll_timeout_ms=100, parse=journey.parse)
        try:
            stats.append(loop.run(once=True))
        except BaseException as error:
            errors.append(error)
        finally:
            loop.close()

    threads = [threading.Thread(target=work, args=(j,)) for j in journeys]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    assert len(stats) == len(journeys)  # no worker lost
    return stats


def pipeline(tmp_path: Path, bootstrap: str, prefix: str, facts: Sequence[Fact], workers: int,
             partitions: int) -> tuple[dict[str, Any], RouteStats, list[IngestStats]]:
    topic, routed, dlq_topic = prefix + "tp", prefix + "routed", prefix + "dlq"
    create_topic(bootstrap, topic, 1)
    produce(bootstrap, topic, [(0, orjson.dumps(f), channel_key(f), []) for f in facts])
    data = tmp_path / prefix
    journeys = [open_journey(data) for _ in range(workers)]
    try:
        routed_stats = route(journeys[0], bootstrap, topic, routed, dlq_topic, partitions)
        written = write(journeys, bootstrap, routed, dlq_topic)
        return store_state(journeys[0]), routed_stats, written
    finally:
        for j in journeys:
            j.close()


def check(tmp_path: Path, kafka_broker: KafkaEndpoint, facts: Sequence[Fact],
          shapes: Sequence[tuple[int, int]]) -> None:
    expected = oracle(tmp_path, facts)
    for workers, partitions in shapes:
        prefix = f"route-{uuid.uuid4().hex[:8]}-"
        state, routed, written = pipeline(tmp_path, kafka_broker.bootstrap, prefix, facts, workers, partitions)
        assert routed.routed == len(facts) and routed.dead_lettered == 0
        assert sum(s.conflicts for s in written) == 0, (workers, partitions)
        assert sum(s.recorded for s in written) == len(facts)
        assert state == expected, (workers, partitions)


def test_demo_ledger_same_with_one_two_and_four_workers(kafka_broker: KafkaEndpoint, tmp_path: Path) -> None:
    facts = list(demo_data.generate(400, seed=5))
    merged = [f for f in facts if f["type"] in ("customer.registered", "identity.linked")]
    assert merged  # the demo links identities: merges and moves happen across channel keys
    check(tmp_path, kafka_broker, facts, [(1, 1), (2, 4), (4, 4)])


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(facts=fact_lists(max_size=30), workers=st.sampled_from([2, 4]))
def test_any_ledger_same_as_one_writer(kafka_broker: KafkaEndpoint, tmp_path_factory: pytest.TempPathFactory,
                                       facts: list[Fact], workers: int) -> None:
    check(tmp_path_factory.mktemp("routing"), kafka_broker, facts, [(workers, 4)])


def test_merge_across_partitions_waits_for_the_prospect(kafka_broker: KafkaEndpoint, tmp_path: Path) -> None:
    """A prospect's facts and the registration that claims its phone are routed to different
    records; the registration waits until the prospect's partition has stored its facts."""
    phone = "+34600111222"
    prospect = identity.prospect_uuid(identity.key("phone", phone))
    facts: list[Fact] = []
    for n in range(40):  # customers whose keys spread over the partitions
        number = f"C-{n}"
        facts.append({"type": "call.inbound", "id": f"c{n}", "source": "cc", "customer": {"customer_id": number},
                      "occurred_at": "2026-03-01T10:00:00+01:00", "data": {"reason": "x"}})
    facts.append({"type": "call.inbound", "id": "p1", "source": "cc", "customer": {"phone": phone},
                  "occurred_at": "2026-03-01T11:00:00+01:00", "data": {"reason": "who is this"}})
    number = next(f"C-{n}" for n in range(100, 200)
                  if _partition(identity.customer_uuid(f"C-{n}"), 4) != _partition(prospect, 4))
    facts.append({"type": "customer.registered", "id": "r1", "source": "crm", "customer": {"customer_id": number},
                  "occurred_at": "2026-03-01T12:00:00+01:00", "data": {"name": "Ana", "phone": phone}})
    facts.append({"type": "call.inbound", "id": "p2", "source": "cc", "customer": {"phone": phone},
                  "occurred_at": "2026-03-01T13:00:00+01:00", "data": {"reason": "again"}})
    expected = oracle(tmp_path, facts)
    # The registration, the merge of the prospect it claims, and the second call.
    assert expected["customers"][identity.customer_uuid(number).hex] == 3
    prefix = f"route-{uuid.uuid4().hex[:8]}-"
    state, routed, written = pipeline(tmp_path, kafka_broker.bootstrap, prefix, facts, 2, 4)
    assert routed.waiting >= 1
    assert sum(s.conflicts for s in written) == 0
    assert state == expected
    records = {fact_id: (after, offset) for fact_id, after, offset in _routed(kafka_broker.bootstrap,
                                                                               prefix + "routed")}
    assert records["r1"][0] == {_partition(prospect, 4): records["p1"][1]}


def _partition(record: uuid.UUID, partitions: int) -> int:
    from consumers.routing import partition_for

    return partition_for(str(record).encode(), partitions)


def _routed(bootstrap: str, routed: str) -> list[tuple[str, dict[int, int], int]]:
    """Every committed routed record: its fact id, its wait list and its offset."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed",
                             enable_auto_commit=False)
    try:
        tps = [TopicPartition(routed, p) for p in consumer.partitions_for_topic(routed)]
        consumer.assign(tps)
        consumer.seek_to_beginning()
        ends = consumer.end_offsets(tps)
        found: list[tuple[str, dict[int, int], int]] = []
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            for _, rs in consumer.poll(timeout_ms=1000).items():
                found.extend((orjson.loads(r.value)["id"], parse_after(r.headers), r.offset) for r in rs)
        return found
    finally:
        consumer.close()


def _cli(data_dir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "journey.cli", "--data-dir", str(data_dir), *args]


@pytest.mark.slow
def test_router_killed_mid_transaction_then_restarted_routes_each_fact_once(
        kafka_broker: KafkaEndpoint, tmp_path: Path) -> None:
    """A router killed with its transaction open leaves nothing of it; a router killed after
    some commits resumes where its committed offsets say, with its in-flight view read back
    from the routed topic; two ingest processes then store every fact once, with no conflict."""
    bootstrap = kafka_broker.bootstrap
    prefix = f"route-{uuid.uuid4().hex[:8]}-"
    topic, routed, dlq_topic = prefix + "tp", prefix + "routed", prefix + "dlq"
    facts = list(demo_data.generate(80, seed=3))
    create_topic(bootstrap, topic, 1)
    produce(bootstrap, topic, [(0, orjson.dumps(f), channel_key(f), []) for f in facts])
    data_dir = tmp_path / "ledger"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    route_cmd = _cli(data_dir, "route", "--bootstrap", bootstrap, "--topic", topic, "--routed-topic", routed,
                     "--dlq-topic", dlq_topic, "--group", prefix + "route", "--batch", "200", "--once")

    proc = subprocess.Popen(route_cmd, cwd=ROOT, env={**env, "JOURNEY_FAULT_PAUSE_ROUTE_BATCH": "3"},
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    try:
        _wait_for(proc, b"fault: paused before commit of route batch")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # Some of what was routed is stored before the router comes back: its view is then part
    # index, part routed topic.
    ingest_cmd = _cli(data_dir, "ingest", "--bootstrap", bootstrap, "--routed", "--dlq-topic", dlq_topic,
                      "--group", prefix + "ingest", "--once", "--json")
    renv = {**env, "JOURNEY_ROUTED_TOPIC": routed}
    first = subprocess.run(ingest_cmd, cwd=ROOT, env=renv, capture_output=True, timeout=300)
    assert first.returncode == 0, first.stderr.decode()[-3000:]
    assert 0 < orjson.loads(first.stdout)["recorded"] < len(facts)

    again = subprocess.run([*route_cmd, "--json"], cwd=ROOT, env=env, capture_output=True, timeout=300)
    assert again.returncode == 0, again.stderr.decode()[-3000:]
    workers = [subprocess.Popen(ingest_cmd, cwd=ROOT, env=renv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
               for _ in range(2)]
    outs = [w.communicate(timeout=300) for w in workers]
    assert all(w.returncode == 0 for w in workers), [e.decode()[-2000:] for _, e in outs]
    stats = [orjson.loads(o) for o, _ in outs]
    assert sum(s["conflicts"] for s in stats) == 0
    assert orjson.loads(first.stdout)["recorded"] + sum(s["recorded"] for s in stats) == len(facts)

    routed_ids = [fact_id for fact_id, _, _ in _routed(bootstrap, routed)]
    assert sorted(routed_ids) == sorted(f["id"] for f in facts)  # the killed transaction left nothing
    journey = open_journey(data_dir)
    try:
        assert store_state(journey) == oracle(tmp_path, facts)
    finally:
        journey.close()
