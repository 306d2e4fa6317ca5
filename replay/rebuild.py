"""Rebuild every projection from position zero into a fresh DuckDB file.

The live ``projections.duckdb`` is never opened: it may be held by another process (DuckDB
allows one writer), and a rebuild must not disturb it. Only the event store (or the Kafka
topic) is read.

From Kafka, the topic is read with a fresh consumer (no group, no commits): every partition
is assigned and read from its beginning up to the end offsets seen at the start. The facts are
then applied **in store-position order** (each message carries its store position), deduplicated
by position (the relay is at-least-once). That makes the file the same as a rebuild from the
store, so ``journey replay diff`` can compare it with the live file table by table; per-partition
cursors (``apply_tracked``) would instead fold each partition separately, which is right for one
file per partition but reorders merges that span partitions in a single file. The price: the
topic's facts are held in memory before they are applied (a few hundred bytes per event).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from consumers.log_follower import DEFAULT_BATCH, Progress, catch_up
from consumers.wire import decode_event
from ledger.application import JourneyApplication, StoredFact, open_fact
from projections import quarantine, readable
from projections.duckdb_store import ProjectionStore
from projections.preparing import Parallel
from projections.quarantine import readable_history_of
from projections.rules import DEFAULT_RULES, Rules

log = logging.getLogger(__name__)

FILENAME = "projections.duckdb"


class RebuildError(RuntimeError):
    """The rebuild cannot start (the target is not empty, the topic lost history...)."""


@dataclass
class RebuildResult:
    path: Path
    source: str
    events: int
    position: int
    seconds: float
    #: Kafka only: records read (duplicates included) and partitions.
    records: int = 0
    partitions: int = 0
    #: Facts set aside because the readers cannot handle them (the file's quarantine table).
    quarantined: int = 0

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"path": str(self.path), "source": self.source, "events": self.events,
                "position": self.position, "seconds": round(self.seconds, 3),
                "events_per_second": round(self.rate), "records": self.records,
                "partitions": self.partitions, "quarantined": self.quarantined}


def prepare(directory: Path) -> Path:
    """The projections file inside ``directory``; refuses a directory that holds anything."""
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise RebuildError(f"{directory} is not empty: a rebuild goes into a fresh directory")
    directory.mkdir(parents=True, exist_ok=True)
    return directory / FILENAME


#: Facts per transaction of a rebuild from the store. A rebuild writes a fresh file that
#: nobody reads until it is done, so it commits rarely: each commit rewrites every customer
#: touched since the last one (their views stay packed in memory in between, a few hundred
#: MB at 1M events). A killed rebuild leaves a file whose position is short of the head.
REBUILD_BATCH = 1_000_000


def from_store(app: JourneyApplication, directory: Path, batch: int = REBUILD_BATCH,
               on_progress: Callable[[Progress], None] | None = None,
               rules: Rules = DEFAULT_RULES, parallel: Parallel | None = None) -> RebuildResult:
    """Projections rebuilt from the event store into ``directory``, under ``rules`` (the
    ledger's settings: a rebuild compared with the live file must apply the same rules), with
    the worker processes ``parallel`` says (projections/preparing.py)."""
    path = prepare(directory)
    started = time.monotonic()
    store = ProjectionStore(path, rules=rules)
    try:
        store.history = readable_history_of(app)
        events = catch_up(app, store, batch_size=batch, on_progress=on_progress, parallel=parallel)
        position = store.position()
        quarantined = store.quarantine_count()
    finally:
        store.close()
    return RebuildResult(path, "store", events, position, time.monotonic() - started,
                         quarantined=quarantined)


def read_topic(bootstrap: str, topic: str, on_progress: Callable[[int], None] | None = None,
               timeout_s: float = 60.0) -> tuple[dict[int, StoredFact], int, int]:
    """Every fact on ``topic`` up to the end offsets seen at the start, by store position.

    Returns ``(facts, records, partitions)``. Refuses a topic whose partitions no longer start
    at offset 0 (retention deleted history: a rebuild from it would be silently partial).
    """
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             auto_offset_reset="earliest", client_id="journey-replay-rebuild",
                             max_partition_fetch_bytes=16 * 1024 * 1024)
    try:
        deadline = time.monotonic() + timeout_s
        partitions = consumer.partitions_for_topic(topic)
        while not partitions:
            if time.monotonic() > deadline:
                raise RebuildError(f"topic {topic} not found on {bootstrap}")
            time.sleep(0.2)
            partitions = consumer.partitions_for_topic(topic)
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        starts = consumer.beginning_offsets(assigned)
        lost = sorted(tp.partition for tp in assigned if starts[tp] > 0)
        if lost:
            raise RebuildError(f"topic {topic}: partitions {lost} no longer start at offset 0 "
                               "(retention deleted history); rebuild from the store instead")
        ends = consumer.end_offsets(assigned)
        consumer.seek_to_beginning(*assigned)
        facts: dict[int, StoredFact] = {}
        records = 0
        todo = {tp for tp in assigned if ends[tp] > 0}
        while todo:
            polled = consumer.poll(timeout_ms=500, max_records=20_000)
            for tp, messages in polled.items():
                for m in messages:
                    if m.offset >= ends[tp]:
                        continue
                    try:
                        sf = decode_event(m.value)
                    except (ValueError, TypeError, KeyError) as error:  # not the relay's message
                        log.error("%s[%d] offset %d: not an event message (%s); skipped",
                                  topic, tp.partition, m.offset, error)
                        continue
                    facts[sf.position] = sf
                    records += 1
            for tp in list(todo):
                if consumer.position(tp) >= ends[tp]:
                    todo.discard(tp)
                    consumer.pause(tp)
            if on_progress is not None and polled:
                on_progress(records)
        return facts, records, len(assigned)
    finally:
        consumer.close(autocommit=False)


def _opened(app: JourneyApplication, sf: StoredFact) -> StoredFact:
    """The fact opened with the store's keys; one that cannot be is quarantined where it
    stands, as the Kafka projector does (folded sealed, it would lose its personal part)."""
    try:
        return open_fact(app, sf)
    except quarantine.FACT_ERRORS as error:
        return readable.undecodable(sf.position, sf.stream_id, sf.stream_version,
                                    f"cannot be opened with the store's keys: {quarantine.failure(error)}")


def from_kafka(app: JourneyApplication, directory: Path, bootstrap: str, topic: str,
               batch: int = DEFAULT_BATCH, on_progress: Callable[[Progress], None] | None = None,
               on_read: Callable[[int], None] | None = None,
               rules: Rules = DEFAULT_RULES) -> RebuildResult:
    path = prepare(directory)
    started = time.monotonic()
    facts, records, partitions = read_topic(bootstrap, topic, on_progress=on_read)
    # Personal fields travel encrypted: open them with the store's keys (erased if forgotten).
    ordered = [_opened(app, facts[p]) for p in sorted(facts)]
    store = ProjectionStore(path, rules=rules)
    events = 0
    try:
        store.history = readable_history_of(app)
        head = ordered[-1].position if ordered else 0
        for i in range(0, len(ordered), batch):
            chunk = ordered[i:i + batch]
            events += store.apply(chunk)
            if on_progress is not None:
                on_progress(Progress(events, chunk[-1].position, head, time.monotonic() - started))
        position = store.position()
        quarantined = store.quarantine_count()
    finally:
        store.close()
    return RebuildResult(path, "kafka", events, position, time.monotonic() - started,
                         records=records, partitions=partitions, quarantined=quarantined)
