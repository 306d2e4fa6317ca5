"""``journey replay rebuild --source kafka`` builds the same projections as a rebuild from the store."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from consumers.relay import Relay
from journey import demo_data
from journey.cli import main
from replay import diff
from tests.harness.conftest_kafka import KafkaEndpoint
from tests.ledgers import append, open_journey

pytestmark = pytest.mark.kafka


def test_a_rebuild_from_kafka_equals_a_rebuild_from_the_store(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, kafka_broker: KafkaEndpoint,
        kafka_topic_prefix: str) -> None:
    home = tmp_path / "ledger"
    topic = kafka_topic_prefix + "events"
    journey = open_journey(home)
    try:
        summary = append(journey, list(demo_data.generate(120, seed=23)), batch_size=500)
        assert not summary.rejected
        relay = Relay(journey.app, bootstrap=kafka_broker.bootstrap, topic=topic, partitions=3,
                      batch_size=700)
        try:
            done = relay.run(follow=False)
        finally:
            relay.close()
        head = journey.app.recorder.max_notification_id()
        assert done.position == head
    finally:
        journey.close()

    code = main(["--data-dir", str(home), "replay", "rebuild", "--source", "kafka", "--bootstrap",
                 kafka_broker.bootstrap, "--topic", topic, "--into", str(tmp_path / "from-kafka"),
                 "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    from_kafka = orjson.loads(out)
    assert (from_kafka["source"], from_kafka["partitions"]) == ("kafka", 3)
    assert from_kafka["events"] == from_kafka["position"] == head
    assert from_kafka["records"] >= head

    code = main(["--data-dir", str(home), "replay", "rebuild", "--into", str(tmp_path / "from-store")])
    capsys.readouterr()
    assert code == 0

    result = diff.diff(tmp_path / "from-store" / "projections.duckdb",
                       tmp_path / "from-kafka" / "projections.duckdb")
    assert result.same, [t.to_json() for t in result.tables if not t.same]
    assert result.live_position == result.other_position == head
