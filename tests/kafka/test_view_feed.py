"""The customer-views change feed against a real broker.

The end state is checked exactly: the topic is read from the beginning, the last value per
key kept (a tombstone deletes the key), and that copy must equal the ledger's current,
not-forgotten customer views. Positions in the documents (``as_of_position``) are left out of
the comparison: a republished view may carry a later one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from consumers.view_feed import (
    TOPIC_CONFIG,
    FeedSummary,
    ViewFeedTopicError,
    ensure_topic,
    published_position,
)
from journey import demo_data
from journey.bootstrap import Journey, bootstrap
from journey.config import Settings
from journey.references import reference_key
from journey.usecases.feed import ViewFeedDuty, kafka_feed
from tests.harness.conftest_kafka import KafkaEndpoint
from tests.kafka.test_relay import read_topic
from tests.ledgers import append, open_journey, record, strip
from tests.processes import wait_for_line
from tests.unit.test_view_feed import call, current_views, fold, merge, reg, uid, without_position

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.kafka


def topic_copy(bootstrap: str, topic: str) -> dict[str, dict[str, Any]]:
    """What a downstream service holds after reading the whole topic."""
    records = sorted(read_topic(bootstrap, topic), key=lambda r: (r.partition, r.offset))
    return without_position(fold((r.key.decode(), r.value) for r in records))


def topic_exists(bootstrap: str, topic: str) -> bool:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return topic in admin.list_topics()
    finally:
        admin.close()


def publish(journey: Journey, broker: KafkaEndpoint, topic: str, **kwargs: Any) -> tuple[int, int]:
    """One `journey feed` run in this process: (views, tombstones) it published."""
    feed = kafka_feed(journey, bootstrap=broker.bootstrap, topic=topic, **kwargs)
    try:
        summary = feed.run(follow=False, before_pass=journey.project)
    finally:
        feed.close()
    assert summary.unconfirmed == 0 and summary.failures == 0
    assert summary.position == journey.projections.position()
    return summary.views, summary.tombstones


def topic_settings(bootstrap: str, topic: str) -> dict[str, str]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)],
                                           config_filter="all")
        partitions = len(admin.describe_topics([topic])[0]["partitions"])
    finally:
        admin.close()
    return {**{k: str(v["value"]) for k, v in described["topic"][topic].items()},
            "partitions": str(partitions)}


@pytest.fixture
def journey(tmp_path: Path) -> Any:
    j = open_journey(tmp_path / "ledger")
    yield j
    j.close()


def test_topic_is_compacted_and_a_delete_policy_topic_is_refused(
        kafka_broker: KafkaEndpoint, kafka_topic_prefix: str) -> None:
    topic = kafka_topic_prefix + "views"
    assert ensure_topic(kafka_broker.bootstrap, topic, partitions=3) is True
    described = topic_settings(kafka_broker.bootstrap, topic)
    assert described["partitions"] == "3"
    for name, value in TOPIC_CONFIG.items():
        assert described[name] == value, name
    assert ensure_topic(kafka_broker.bootstrap, topic, partitions=3) is False  # exists: checked, kept

    plain = kafka_topic_prefix + "plain"
    admin = KafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap)
    try:
        admin.create_topics({plain: {"num_partitions": 1, "replication_factor": -1,
                                     "configs": {"cleanup.policy": "compact,delete"}}})
    finally:
        admin.close()
    with pytest.raises(ViewFeedTopicError, match=r"cleanup\.policy=compact,delete"):
        ensure_topic(kafka_broker.bootstrap, plain, partitions=1)


def test_the_topic_holds_the_current_views_and_a_second_run_only_the_changed_ones(
        journey: Journey, kafka_broker: KafkaEndpoint, kafka_topic_prefix: str) -> None:
    topic = kafka_topic_prefix + "views"
    assert not append(journey, list(demo_data.generate(60, seed=31))).rejected
    journey.project()
    expected = current_views(journey)
    aliases = {r[0] for r in journey.projections.con.execute("SELECT alias FROM customer_aliases").fetchall()}
    views, tombstones = publish(journey, kafka_broker, topic, chunk=25)
    assert (views, tombstones) == (len(expected), len(aliases))
    assert topic_copy(kafka_broker.bootstrap, topic) == expected
    records = read_topic(kafka_broker.bootstrap, topic)
    assert {r.partition for r in records} == set(range(journey.settings.partitions))
    for r in records:  # key = customer id; a tombstone says why
        headers = dict(r.headers)
        if r.value is None:
            assert r.key.decode() in aliases and headers["journey.change"] == b"merged"
        else:
            assert orjson.loads(r.value)["customer_id"] == r.key.decode()
            assert headers["journey.change"] == b"view"
    first = Counter(r.key.decode() for r in records)

    # Nothing new: nothing sent. Then two customers change: only they are sent (by the
    # server's duty this time, with the feed enabled in the settings).
    assert publish(journey, kafka_broker, topic) == (0, 0)
    touched = sorted(expected)[:2]
    record(journey, call(9001, {"customer_id": touched[0]}), call(9002, {"customer_id": touched[1]}))
    settings = Settings(data_dir=journey.settings.data_dir, kafka_bootstrap=kafka_broker.bootstrap,
                        views_topic=topic, view_feed=True)
    server = bootstrap(settings)
    journey.close()
    tick = ViewFeedDuty()
    try:
        server.project()
        deadline = time.monotonic() + 60
        while published_position(server.projections, topic) < server.projections.position():
            assert time.monotonic() < deadline, "the duty never caught up"
            tick(server)
            time.sleep(0.05)
        now = Counter(r.key.decode() for r in read_topic(kafka_broker.bootstrap, topic))
        assert sorted((now - first).elements()) == touched
        assert topic_copy(kafka_broker.bootstrap, topic) == current_views(server)
        tick(server)  # up to date: nothing more
        assert len(read_topic(kafka_broker.bootstrap, topic)) == sum(first.values()) + 2
    finally:
        tick.close()
        server.close()


def test_tick_is_a_no_op_when_the_feed_is_not_enabled(journey: Journey, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOURNEY_VIEW_FEED", raising=False)
    record(journey, reg("C-1", "Ana", "+34600000001"))
    journey.project()
    ViewFeedDuty()(journey)  # no broker configured at all: it must not even try
    assert published_position(journey.projections, journey.settings.views_topic) == 0


def test_merge_tombstones_the_alias_and_forget_leaves_no_personal_data(
        journey: Journey, kafka_broker: KafkaEndpoint, kafka_topic_prefix: str) -> None:
    topic = kafka_topic_prefix + "views"
    name, phone = "Zuriñe Etxeberria", "+34611222333"
    record(journey, reg("C-1", name, phone, address={"street": "Calle Mayor", "number": "7",
                                                     "postal_code": "28013", "city": "Madrid"}),
           reg("C-2", "Zuriñe E.", "+34611222444"), reg("C-3", "Bea", "+34600000003"),
           call(1, {"phone": phone}))
    publish(journey, kafka_broker, topic)
    copy = topic_copy(kafka_broker.bootstrap, topic)
    assert set(copy) == {uid("C-1"), uid("C-2"), uid("C-3")} and copy[uid("C-1")]["name"] == name

    record(journey, merge(1, "C-1", "C-2"))
    assert publish(journey, kafka_broker, topic) == (1, 1)
    records = read_topic(kafka_broker.bootstrap, topic)
    tombstone = next(r for r in reversed(records) if r.key == uid("C-2").encode())
    assert tombstone.value is None and dict(tombstone.headers) == {
        "journey.change": b"merged", "journey.merged_into": uid("C-1").encode()}
    copy = topic_copy(kafka_broker.bootstrap, topic)
    assert set(copy) == {uid("C-1"), uid("C-3")} and copy[uid("C-1")]["merged_from"] == [uid("C-2")]

    record(journey, merge(2, "C-1", "C-2", "customer.unmerged"))
    assert publish(journey, kafka_broker, topic) == (2, 0)  # the survivor and the split record
    assert topic_copy(kafka_broker.bootstrap, topic) == current_views(journey)
    assert set(topic_copy(kafka_broker.bootstrap, topic)) == {uid("C-1"), uid("C-2"), uid("C-3")}

    before = len(records) + 2
    assert journey.ledger.forget(reference_key("C-1"), "asked") is not None
    assert publish(journey, kafka_broker, topic) == (0, 1)
    records = read_topic(kafka_broker.bootstrap, topic)
    latest = {r.key: r for r in sorted(records, key=lambda r: (r.partition, r.offset))}
    assert latest[uid("C-1").encode()].value is None
    assert dict(latest[uid("C-1").encode()].headers) == {"journey.change": b"forgotten"}
    for r in records[before:]:  # nothing published since the forget names the person
        for secret in (name.encode(), b"611222333", b"Calle Mayor", b"C-1"):
            assert secret not in (r.value or b"") and secret not in r.key
    assert topic_copy(kafka_broker.bootstrap, topic) == current_views(journey)
    assert set(topic_copy(kafka_broker.bootstrap, topic)) == {uid("C-2"), uid("C-3")}


def feed_process(home: Path, bootstrap: str, topic: str, *args: str,
                 env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "journey.cli", "--data-dir", str(home), "feed", "--bootstrap", bootstrap,
         "--topic", topic, *args],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **(env or {})})


def test_sigkill_after_flush_republishes_on_restart_and_loses_nothing(
        tmp_path: Path, kafka_broker: KafkaEndpoint, kafka_topic_prefix: str) -> None:
    home = tmp_path / "ledger"
    journey = open_journey(home)
    try:
        append(journey, list(demo_data.generate(80, seed=32)))
        journey.project()
        ordered = [r[0] for r in journey.projections.con.execute(
            "SELECT customer_id FROM customer_views ORDER BY position").fetchall()]
    finally:
        journey.close()
    chunk = 20
    assert len(ordered) > 4 * chunk
    topic = kafka_topic_prefix + "views"

    # The worst moment: attempt 3 is confirmed by the broker, the feed position not yet committed.
    feed = feed_process(home, kafka_broker.bootstrap, topic, "--chunk", str(chunk),
                        env={"JOURNEY_FAULT_FEED_PAUSE_AFTER_FLUSH": "3"})
    try:
        wait_for_line(feed, "fault: feed paused after flush of attempt 3")
    finally:
        feed.send_signal(signal.SIGKILL)
        feed.communicate()
    killed = read_topic(kafka_broker.bootstrap, topic)
    sent = [r.key.decode() for r in killed if r.value is not None]
    assert sorted(sent) == sorted(ordered[:3 * chunk])  # three attempts, in view-position order
    third = ordered[2 * chunk:3 * chunk]
    journey = open_journey(home)
    try:
        stored = journey.projections.con.execute(
            "SELECT max(position) FROM customer_views WHERE customer_id IN "
            "(SELECT unnest(?::VARCHAR[]))", [ordered[:2 * chunk]]).fetchall()[0][0]
        assert published_position(journey.projections, topic) == stored  # two attempts committed
    finally:
        journey.close()

    # Restarted in follow mode: it sends attempt 3 again and the rest, then follows new facts
    # recorded by another process (SQLite only: the feed process owns the DuckDB file).
    feed = feed_process(home, kafka_broker.bootstrap, topic, "--follow", "--poll", "0.2", "--json")
    try:
        newcomers = [reg(f"C-77{n}", f"Nueva {n}", f"+3469900077{n}") for n in range(3)]
        writer = open_journey(home)
        try:
            assert not append(writer, newcomers, batch_size=100).rejected
        finally:
            writer.close()
        wanted = {uid(f"C-77{n}") for n in range(3)}
        deadline = time.monotonic() + 120
        while not wanted <= {r.key.decode() for r in read_topic(kafka_broker.bootstrap, topic)}:
            assert feed.poll() is None, feed.communicate()[1]
            assert time.monotonic() < deadline, "the following feed never published the newcomers"
            time.sleep(0.3)
    finally:
        feed.send_signal(signal.SIGTERM)
        out, err = feed.communicate(timeout=60)
    assert feed.returncode == 0, err
    summary = orjson.loads(out)
    assert summary["stopped"] is True and summary["unconfirmed"] == 0 and summary["failures"] == 0

    records = read_topic(kafka_broker.bootstrap, topic)
    seen = Counter(r.key.decode() for r in records if r.value is not None)
    assert all(seen[key] >= 2 for key in third)  # republished, harmless on a compacted topic
    journey = open_journey(home)
    try:
        journey.project()
        assert published_position(journey.projections, topic) == journey.projections.position()
        assert topic_copy(kafka_broker.bootstrap, topic) == current_views(journey)
    finally:
        journey.close()


@pytest.mark.slow
def test_broker_killed_while_following_ends_with_every_change(
        tmp_path: Path, kafka_broker: KafkaEndpoint, kafka_topic_prefix: str) -> None:
    """The broker dies (longer than the producer's delivery timeout) while facts are recorded:
    the following feed waits, keeps its position, and converges once the broker is back."""
    if kafka_broker.external:
        pytest.skip("needs a harness-owned broker")
    facts = list(demo_data.generate(60, seed=33))
    reference = open_journey(tmp_path / "reference")  # what the copy must end up holding
    try:
        append(reference, facts)
        reference.project()
        expected = strip(current_views(reference))
    finally:
        reference.close()
    home = tmp_path / "ledger"
    owner = open_journey(home)  # owns projections.duckdb, like `journey feed`
    writer = open_journey(home)  # another connection, to the store only
    topic = kafka_topic_prefix + "views"
    third = len(facts) // 3
    append(writer, facts[:third])
    stop = threading.Event()
    feed = kafka_feed(owner, bootstrap=kafka_broker.bootstrap, topic=topic, chunk=50,
                      producer_config={"delivery_timeout_ms": 4000, "request_timeout_ms": 1500})
    result: list[FeedSummary] = []
    thread = threading.Thread(target=lambda: result.append(
        feed.run(follow=True, stop=stop, before_pass=owner.project, poll_interval=0.1)), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not topic_exists(kafka_broker.bootstrap, topic) or not topic_copy(kafka_broker.bootstrap, topic):
            assert time.monotonic() < deadline, "nothing published before the outage"
            time.sleep(0.2)
        kafka_broker.kill()
        append(writer, facts[third:2 * third])
        time.sleep(6.0)  # longer than the delivery timeout: sends fail and are selected again
        kafka_broker.start()
        append(writer, facts[2 * third:])
        deadline = time.monotonic() + 180
        while strip(topic_copy(kafka_broker.bootstrap, topic)) != expected:
            assert thread.is_alive(), "the feed stopped"
            assert time.monotonic() < deadline, "the feed never caught up after the outage"
            time.sleep(0.5)
    finally:
        stop.set()
        thread.join(90)
        feed.close()
        writer.close()
    try:
        assert not thread.is_alive() and result and result[0].stopped and result[0].unconfirmed == 0
        assert result[0].position == owner.projections.position()
        assert topic_copy(kafka_broker.bootstrap, topic) == current_views(owner)
    finally:
        owner.close()
