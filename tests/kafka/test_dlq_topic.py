"""The dead-letter topic is replicated the way the cluster replicates its topics.

A dead letter is a fact nobody has recorded yet: a topic with one replica on a cluster that
keeps three would lose it with that one broker.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaAdminClient
from kafka.errors import InvalidReplicationFactorError

from consumers import dlq
from tests.harness.conftest_kafka import KafkaEndpoint
from tests.harness.kafka import KafkaBroker

pytestmark = pytest.mark.kafka


def _replicas(bootstrap: str, topic: str) -> tuple[list[int], int]:
    """(replicas of each partition, the broker's default.replication.factor)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="journey-test-admin")
    try:
        [described] = admin.describe_topics([topic])
        return [len(p["replica_nodes"]) for p in described["partitions"]], dlq.default_replication(admin)
    finally:
        admin.close()


def test_the_dead_letter_topic_has_one_partition_and_the_clusters_replication(
        kafka_broker: KafkaEndpoint, kafka_topic_prefix: str) -> None:
    topic = kafka_topic_prefix + "dlq"
    assert dlq.ensure_topic(kafka_broker.bootstrap, topic) is True
    assert dlq.ensure_topic(kafka_broker.bootstrap, topic) is False  # there already: left alone
    replicas, default = _replicas(kafka_broker.bootstrap, topic)
    assert replicas == [default]


@pytest.fixture(scope="module")
def replicating_broker(kafka_broker: KafkaEndpoint) -> Iterator[KafkaBroker]:
    """One broker whose cluster wants two replicas of every topic (it can hold only one)."""
    if kafka_broker.external:
        pytest.skip("needs a harness broker with its own configuration")
    broker = KafkaBroker(extra_config={"default.replication.factor": "2"})
    try:
        broker.start()
        yield broker
    finally:
        broker.close()


def test_the_clusters_replication_is_never_lowered_to_one(replicating_broker: KafkaBroker) -> None:
    """Asked for two replicas on one broker, the cluster refuses: the dead-letter topic is not
    quietly created with a single copy."""
    with pytest.raises(InvalidReplicationFactorError):
        dlq.ensure_topic(replicating_broker.bootstrap, "journey-dlq")
    admin = KafkaAdminClient(bootstrap_servers=replicating_broker.bootstrap)
    try:
        assert "journey-dlq" not in admin.list_topics()
    finally:
        admin.close()


def test_ingest_says_why_it_cannot_start_instead_of_a_traceback(replicating_broker: KafkaBroker,
                                                               tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "journey.cli", "--data-dir", str(tmp_path / "ledger"), "ingest",
         "--bootstrap", replicating_broker.bootstrap, "--topic", "touchpoints", "--dlq-topic",
         "touchpoints-dlq", "--once"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert "cannot create the dead-letter topic touchpoints-dlq" in done.stderr
    assert "Traceback" not in done.stderr
