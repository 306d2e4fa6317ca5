"""The Kafka projectors' partition files as the analysts' dataset, against a real broker.

``journey project --source kafka`` exports each partition file it holds into
``DATA_DIR/analytics/partitions/``; ``journey sql --partitions`` reads them as one dataset, which
holds what the embedded projection's snapshot of the same ledger holds: every stored fact once,
every customer once, however the merges fell across partitions.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from journey.analytics import snapshots
from tests.integration.test_partition_dataset import check_dataset
from tests.kafka.test_projector import ROOT, ledger_with, make_topic, projector_process, publish

pytestmark = pytest.mark.kafka


def journey_cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "journey.cli", "--data-dir", str(home), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=180)


def test_projectors_export_a_dataset_equal_to_the_embedded_snapshot(
        kafka_broker: Any, kafka_topic_prefix: str, tmp_path: Path) -> None:
    topic = kafka_topic_prefix + "events"
    make_topic(kafka_broker.bootstrap, topic)
    journey = ledger_with(tmp_path, 150)
    home = tmp_path / "ledger"
    try:
        head = journey.app.recorder.max_notification_id()
        publish(journey, kafka_broker.bootstrap, topic)
        runner = projector_process(home, kafka_broker.bootstrap, topic)
        _, err = runner.communicate(timeout=180)
        assert runner.returncode == 0, err
        dataset = snapshots.dataset_dir(snapshots.analytics_dir(journey.settings))
        exported = sorted(path.name for path in dataset.iterdir() if path.is_dir())
        assert len(exported) >= 2 and all(name.startswith(topic + "-") for name in exported)
        check_dataset(journey, dataset)

        done = journey_cli(home, "sql", "--partitions", "--json", "SELECT count(*) AS n FROM events")
        assert done.returncode == 0, done.stderr
        assert orjson.loads(done.stdout) == [{"n": head}]
        done = journey_cli(home, "sql", "--partitions", "--json",
                           "SELECT count(*) AS n FROM customers")
        assert done.returncode == 0, done.stderr
        assert orjson.loads(done.stdout) == [{"n": journey.projections.table_counts()["customers"]}]
    finally:
        journey.close()
