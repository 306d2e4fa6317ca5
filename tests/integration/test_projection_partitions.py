"""The Kafka projector's partition files, without a broker (consumers.kafka_projector).

An instance owning several partitions applies them one at a time, and lends one DuckDB working
budget to the one it is applying: after a catch-up's transaction a file is parked at a small
memory limit. Before, each file kept up to its own working limit (~250 MB of a 1M-event,
four-partition projector's peak), and its packed views are dropped. And a partition's
transaction may come in chunks, decoded as they are folded. Neither may change what the files hold, or apply a record twice.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from consumers import kafka_projector
from consumers.kafka_projector import PartitionStores
from journey import demo_data
from journey.bootstrap import Journey
from ledger.application import StoredFact, decode_notifications, history_of
from projections import derived
from projections.duckdb_store import ProjectionStore
from tests.ledgers import append, open_journey

PARTITIONS = 3
TOPIC = "t"

Records = list[tuple[int, StoredFact]]


@pytest.fixture(scope="module")
def journey(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Journey]:
    opened = open_journey(tmp_path_factory.mktemp("ledger"))
    summary = append(opened, list(demo_data.generate(80, seed=5)), batch_size=2000)
    assert not summary.rejected
    try:
        yield opened
    finally:
        opened.close()


def by_partition(journey: Journey) -> dict[int, Records]:
    """The log as the relay publishes it: keyed by customer, so one customer's facts are in one
    partition, in order; each partition's offsets from 0."""
    app = journey.app
    head = app.recorder.max_notification_id() or 0
    facts = decode_notifications(app, app.recorder.select_notifications(0, head + 1, inclusive_of_start=False))
    assert len(facts) == head
    out: dict[int, Records] = {p: [] for p in range(PARTITIONS)}
    for sf in facts:
        records = out[zlib.crc32(sf.fact["customer_uuid"].encode()) % PARTITIONS]
        records.append((len(records), sf))
    return out


def limit(store: ProjectionStore) -> str:
    return str(store.con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0])


def shown(value: str) -> str:
    """A memory limit as DuckDB shows it back (``100MB`` is ``95.3 MiB``)."""
    con = duckdb.connect()
    try:
        con.execute(f"SET memory_limit = '{value}'")
        return str(con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0])
    finally:
        con.close()


def held(store: ProjectionStore) -> int:
    """The bytes DuckDB holds in memory for this file."""
    return int(store.con.execute("SELECT sum(memory_usage_bytes) FROM duckdb_memory()").fetchall()[0][0])


def contents(store: ProjectionStore) -> dict[str, list[tuple[Any, ...]]]:
    names = ("events", "customers", "customer_views", "identities", "customer_aliases",
             "projection_position", *(t.name for t in derived.tables()))
    columns = {"projection_position": "name, position"}
    return {name: sorted(store.con.execute(f"SELECT {columns.get(name, '*')} FROM {name}").fetchall(),
                         key=repr)
            for name in names}


def limits_into(seen: dict[int, str], stores: PartitionStores) -> Callable[[], None]:
    """A ``before_commit`` that notes every open file's memory limit."""
    def note() -> None:
        seen.update({p: limit(store) for p, store in stores.open.items()})
    return note


def chunked(records: Records, size: int) -> list[Records]:
    return [records[i:i + size] for i in range(0, len(records), size)]


def test_idle_partition_files_are_parked_and_hold_the_same_rows(
        journey: Journey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parts = by_partition(journey)
    history = history_of(journey.app)
    # The reference: each partition in one chunk, never parked (what the projector did before).
    monkeypatch.setattr(kafka_projector, "PARK_AFTER", 10**9)
    plain = PartitionStores(tmp_path / "plain", TOPIC)
    for p in range(PARTITIONS):
        plain.acquire(p)
    for p, records in parts.items():
        plain.apply(p, [records], len(records), history)
    assert not plain.parked

    monkeypatch.setattr(kafka_projector, "PARK_AFTER", 1)  # every transaction is a catch-up's
    stores = PartitionStores(tmp_path / "parked", TOPIC)
    try:
        for p in range(PARTITIONS):
            stores.acquire(p)
        working, idle = shown(kafka_projector.PARTITION_MEMORY_LIMIT), shown(kafka_projector.IDLE_MEMORY_LIMIT)
        for p, records in parts.items():
            during: dict[int, str] = {}
            stores.apply(p, chunked(records, 40), len(records), history, limits_into(during, stores))
            # The partition being applied has the working budget; those applied before are parked.
            assert during[p] == working
            assert all(during[q] == idle for q in range(p)), during
        for p, store in stores.open.items():
            assert limit(store) == idle
            assert held(store) <= 8 * 1000 * 1000  # IDLE_MEMORY_LIMIT ("8MB")
            assert store.position(stores.cursor(p)) == len(parts[p]) - 1
            assert contents(store) == contents(plain.open[p]), p
        # Delivered again (a rebalance, a restart): nothing is applied twice.
        for p, records in parts.items():
            assert stores.apply(p, chunked(records, 40), len(records), history) == 0
            assert contents(stores.open[p]) == contents(plain.open[p]), p
            # A parked file gets the working budget back for its next transaction.
            assert limit(stores.open[p]) == idle
            applying: dict[int, str] = {}
            # A new offset, whose fact the file already holds (the relay redelivered it).
            stores.apply(p, [[(len(records), records[-1][1])]], 1, history, limits_into(applying, stores))
            assert applying[p] == working
            assert stores.open[p].position(stores.cursor(p)) == len(records)
    finally:
        stores.release_all()
        plain.release_all()


def test_a_single_partition_or_a_live_feeds_small_transactions_are_not_parked(
        journey: Journey, tmp_path: Path) -> None:
    parts = by_partition(journey)
    history = history_of(journey.app)
    assert all(len(records) < kafka_projector.PARK_AFTER for records in parts.values())
    working = shown(kafka_projector.PARTITION_MEMORY_LIMIT)
    alone = PartitionStores(tmp_path / "alone", TOPIC)
    several = PartitionStores(tmp_path / "several", TOPIC)
    try:
        alone.acquire(0)
        alone.apply(0, [parts[0]], kafka_projector.PARK_AFTER, history)  # a catch-up's size
        assert limit(alone.open[0]) == working and not alone.parked
        for p in range(PARTITIONS):
            several.acquire(p)
        for p, records in parts.items():
            several.apply(p, [records], len(records), history)
        assert not several.parked
        assert {limit(store) for store in several.open.values()} == {working}
    finally:
        alone.release_all()
        several.release_all()
