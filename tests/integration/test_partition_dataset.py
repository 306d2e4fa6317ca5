"""The Kafka projectors' partition files as the analysts' dataset, without a broker.

Each partition file is exported into ``DATA_DIR/analytics/partitions/<topic>-<partition>/``
(journey.analytics.snapshots.PartitionPublisher) and the partitions are read as one dataset:
every fact once (a partition's copies of another partition's facts, made for a merge across
partitions, are left out) and every customer once (a record absorbed in another partition keeps
an orphan view in its own partition's file, which is left out). So the dataset holds what the
embedded projection's snapshot of the same ledger holds.
"""

from __future__ import annotations

import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

from consumers.kafka_projector import PartitionStores
from journey import demo_data
from journey.analytics import snapshots
from journey.bootstrap import Journey
from journey.cli import main
from ledger.application import StoredFact, decode_notifications, history_of
from tests.ledgers import append, open_journey

PARTITIONS = 3
TOPIC = "t"


@pytest.fixture(scope="module")
def journey(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Journey]:
    opened = open_journey(tmp_path_factory.mktemp("partition-dataset") / "ledger")
    summary = append(opened, list(demo_data.generate(150, seed=21)), batch_size=2000)
    assert not summary.rejected
    opened.project()
    try:
        yield opened
    finally:
        opened.close()


def by_partition(journey: Journey) -> dict[int, list[tuple[int, StoredFact]]]:
    """The log as the relay publishes it: keyed by customer, each partition's offsets from 0."""
    app = journey.app
    head = app.recorder.max_notification_id() or 0
    facts = decode_notifications(app, app.recorder.select_notifications(0, head + 1, inclusive_of_start=False))
    out: dict[int, list[tuple[int, StoredFact]]] = {p: [] for p in range(PARTITIONS)}
    for sf in facts:
        records = out[zlib.crc32(sf.fact["customer_uuid"].encode()) % PARTITIONS]
        records.append((len(records), sf))
    return out


def rows(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return sorted(map(repr, con.execute(f'SELECT * FROM "{table}"').fetchall()))


def check_dataset(journey: Journey, dataset: Path) -> None:
    """The partitioned dataset holds each stored fact once and the same rows as the embedded
    projection's analyst snapshot, table by table; and the partitions' own snapshots do hold
    copies and orphans (which the dataset must leave out)."""
    embedded_dir = snapshots.analytics_dir(journey.settings) / "embedded"
    snapshots.export(journey.projections, embedded_dir)
    head = journey.app.recorder.max_notification_id()
    embedded, reference = snapshots.open_snapshot(embedded_dir)
    con, pinned = snapshots.open_snapshot(dataset, partitioned=True)
    try:
        assert isinstance(pinned, snapshots.Dataset) and len(pinned.parts) >= 2
        [(count, distinct)] = con.execute("SELECT count(*), count(DISTINCT event_id) FROM events").fetchall()
        assert count == distinct == head
        copies = sum(part.rows["events"] for part in pinned.parts.values()) - head
        assert copies > 0, "no merge across partitions: the ledger does not test the dataset"
        orphans = sum(part.rows["customers"] for part in pinned.parts.values()) - reference.rows["customers"]
        assert orphans > 0
        assert set(pinned.tables) == set(reference.rows)
        for table in reference.rows:
            if table == "quarantine":  # the reader named differs (the projector, the embedded)
                assert con.execute("SELECT count(*) FROM quarantine").fetchall() == \
                    embedded.execute("SELECT count(*) FROM quarantine").fetchall()
                continue
            assert rows(con, table) == rows(embedded, table), table
        assert rows(con, "contacts") == rows(embedded, "contacts")
        assert {r[0] for r in con.execute("SELECT partition FROM snapshot").fetchall()} == set(pinned.parts)
    finally:
        con.close()
        embedded.close()
        snapshots.release(pinned)
        snapshots.release(reference)


def test_partition_snapshots_read_as_one_dataset_equal_the_embedded_snapshot(
        journey: Journey, capsys: pytest.CaptureFixture[str]) -> None:
    settings = journey.settings
    dataset = snapshots.dataset_dir(snapshots.analytics_dir(settings))
    publisher = snapshots.PartitionPublisher(dataset, interval=3600)
    stores = PartitionStores(settings.partitions_dir, TOPIC, publisher=publisher)
    history = history_of(journey.app)
    parts = by_partition(journey)
    try:
        for p in range(PARTITIONS):
            stores.acquire(p)
        first = {p: records[: len(records) // 2] for p, records in parts.items()}
        for p, records in first.items():
            stores.apply(p, [records], len(records), history)
        # Never exported yet: due at once; then not again until the interval has passed.
        stores.publish()
        assert {path.name for path in dataset.iterdir() if path.is_dir()} == \
            {f"{TOPIC}-{p}" for p in range(PARTITIONS)}
        for p, records in parts.items():
            rest = records[len(records) // 2:]
            stores.apply(p, [rest], len(rest), history)
        assert not any(publisher.due(store) for store in stores.open.values())
        before = {p: snapshots.read_manifest(dataset / f"{TOPIC}-{p}") for p in range(PARTITIONS)}
        assert all(m is not None and m.position == len(first[p]) - 1 for p, m in before.items())
        # An interval later, each moved partition is due (the clock moved back, not waited for).
        for name, (at, position) in list(publisher.last.items()):
            publisher.last[name] = (at - 3600, position)
        assert all(publisher.due(store) for store in stores.open.values())
        stores.publish()
        assert not any(publisher.due(store, final=True) for store in stores.open.values())
    finally:
        stores.release_all()
    check_dataset(journey, dataset)

    # `journey sql --partitions` answers from the dataset; without the flag, the embedded one.
    code = main(["--data-dir", str(settings.data_dir), "sql", "--partitions", "--json",
                 "SELECT count(*) AS n FROM events"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert orjson.loads(out) == [{"n": journey.app.recorder.max_notification_id()}]
    code = main(["--data-dir", str(settings.data_dir), "sql", "--partitions", "SELECT * FROM snapshot"])
    out, err = capsys.readouterr()
    assert code == 0 and "3 partition snapshots" in err, err

    # The dataset's analyst.duckdb, for the analysts' own DuckDB clients, reads the same.
    con = duckdb.connect(str(dataset / snapshots.ANALYST_DB), read_only=True)
    try:
        assert con.execute("SELECT count(*), count(DISTINCT event_id) FROM events").fetchall() == \
            [(journey.app.recorder.max_notification_id(),) * 2]
        assert con.execute("SELECT count(*) FROM customers").fetchall() == \
            journey.projections.con.execute("SELECT count(*) FROM customers").fetchall()
        assert len(con.execute("SELECT * FROM snapshot").fetchall()) == PARTITIONS
    finally:
        con.close()


def test_export_partitions_publishes_the_files_no_projector_holds(
        journey: Journey, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "ledger"
    other = open_journey(home)
    other.close()
    code = main(["--data-dir", str(home), "export", "--partitions"])
    out, err = capsys.readouterr()
    assert code == 2 and "no partition file" in err, err
    code = main(["--data-dir", str(home), "sql", "--partitions", "SELECT 1"])
    out, err = capsys.readouterr()
    assert code == 2 and "no partition snapshot" in err and "Traceback" not in err, err

    parts = by_partition(journey)
    stores = PartitionStores(home / "partitions", TOPIC)  # no publisher: nothing exported
    history = history_of(journey.app)
    try:
        for p, records in parts.items():
            stores.acquire(p)
            stores.apply(p, [records], len(records), history)
        stores.release(1)
        # Files 0 and 2 are held (by "a projector", this process): only file 1 is exported.
        done = subprocess.run([sys.executable, "-m", "journey.cli", "--data-dir", str(home), "export",
                               "--partitions", "--json"], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        doc = orjson.loads(done.stdout)
        assert sorted(doc["held"]) == [f"{TOPIC}-0", f"{TOPIC}-2"]
        assert list(doc["partitions"]) == [f"{TOPIC}-1"]
        assert doc["partitions"][f"{TOPIC}-1"]["position"] == len(parts[1]) - 1
    finally:
        stores.release_all()
    code = main(["--data-dir", str(home), "export", "--partitions"])
    out, err = capsys.readouterr()
    assert code == 0 and out.count("exported ") == PARTITIONS, err
    code = main(["--data-dir", str(home), "sql", "--partitions", "--json",
                 "SELECT count(*) AS n FROM events"])
    out, err = capsys.readouterr()
    assert code == 0 and orjson.loads(out) == [{"n": journey.app.recorder.max_notification_id()}], err


PERSON = {"type": "customer.registered", "id": "r1", "source": "crm",
          "customer": {"customer_id": "C-5"}, "occurred_at": "2026-01-03T10:00:00+01:00",
          "data": {"name": "Iker Goikoetxea", "phone": "+34622333444"}}
OTHER = {"type": "customer.registered", "id": "r2", "source": "crm", "customer": {"customer_id": "C-6"},
         "occurred_at": "2026-01-03T11:00:00+01:00", "data": {"name": "Ane Zubiri", "phone": "+34622333555"}}


def _call(n: int) -> dict[str, Any]:
    return {"type": "call.inbound", "id": f"c{n}", "source": "cc", "customer": {"phone": "+34622333555"},
            "occurred_at": f"2026-01-07T10:{n:02d}:00+01:00", "department": "billing",
            "data": {"purpose": "service"}}


def _log(journey: Journey) -> list[tuple[int, StoredFact]]:
    """The whole log as one partition's records (offset = position - 1)."""
    app = journey.app
    head = app.recorder.max_notification_id() or 0
    facts = decode_notifications(app, app.recorder.select_notifications(0, head + 1, inclusive_of_start=False))
    return [(sf.position - 1, sf) for sf in facts]


def test_a_forget_in_a_partition_is_exported_at_once_without_older_generations(tmp_path: Path) -> None:
    journey = open_journey(tmp_path / "ledger")
    try:
        assert not journey.record([PERSON, OTHER, _call(1)]).rejected
        dataset = snapshots.dataset_dir(snapshots.analytics_dir(journey.settings))
        publisher = snapshots.PartitionPublisher(dataset, interval=3600)
        stores = PartitionStores(journey.settings.partitions_dir, TOPIC, publisher=publisher)
        history = history_of(journey.app)
        store = stores.acquire(0)
        try:
            stores.apply(0, [_log(journey)], 3, history)
            stores.publish()
            name = f"{TOPIC}-0"
            generations = dataset / name / snapshots.GENERATIONS
            assert len(list(generations.iterdir())) == 1
            assert not journey.record([_call(2)]).rejected
            stores.apply(0, [_log(journey)], 1, history)
            assert not publisher.due(store)  # the interval has not passed
            at, position = publisher.last[name]
            publisher.last[name] = (at - 3600, position)
            stores.publish()
            assert len(list(generations.iterdir())) == 2  # the previous one is kept for its readers

            assert journey.ledger.forget("phone:+34622333444", "art. 17", lambda records: None) is not None
            stores.apply(0, [_log(journey)], 1, history)
            assert publisher.due(store)  # at once, whatever the interval
            stores.publish()
            assert [p.name for p in generations.iterdir()] == [snapshots.read_manifest(dataset / name).generation]
        finally:
            stores.release_all()
        con, pinned = snapshots.open_snapshot(dataset, partitioned=True)
        try:
            # The forgotten customer's tombstone keeps its counts.
            [(events,)] = con.execute(
                "SELECT events FROM customers WHERE customer_id IN "
                "(SELECT customer_id FROM events WHERE type = 'customer.forgotten')").fetchall()
            assert events == 2
            assert con.execute("SELECT count(*) FROM events WHERE type = 'customer.forgotten' "
                               "AND data IS NOT NULL").fetchall() == [(0,)]
        finally:
            con.close()
            snapshots.release(pinned)
    finally:
        journey.close()
