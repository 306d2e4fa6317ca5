"""Projections fed from Kafka (topic journey.events) by a consumer group.

Each partition's projection lives in its own DuckDB file, holding that partition's customers
AND the partition's last applied offset, written in the same transaction. Whoever owns the
partition owns the file: on assignment the file is opened and the consumer seeks to the
recorded offset + 1 (Kafka's committed offsets are only informational); on revocation it is
closed. So a rebalance, a restart or a SIGKILL neither loses nor double-applies an event.

Redeliveries by the relay (at-least-once) carry the same store position: a fact at or below
its customer's applied position is skipped. A prospect merged into a customer whose events
sit in another partition is read back from the event store, the source of truth.

Memory: the partitions are applied one at a time, so the process needs one DuckDB working
budget and one partition's views at a time. After a catch-up's transaction, a file is parked
(8MB DuckDB limit, its cached views dropped) until its next one; a partition's records are
decoded chunk by chunk inside its transaction. A 1M-event, four-partition catch-up peaked at
857 MiB (docs/performance.md).

What the files are for: the analysts' dataset at scale. A :class:`Publisher` (the composition
root passes journey.analytics.snapshots.PartitionPublisher) exports each held file's analyst
snapshot between transactions, when it is due, and when the partition is let go; the partitions'
snapshots are read together as one dataset (docs/analytics.md).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from uuid import UUID

import duckdb
from kafka import ConsumerRebalanceListener, KafkaConsumer

from consumers.broker_outage import Outage, is_transient
from consumers.wire import decode_event, stored_row
from domain.personal import ENVELOPE
from ledger.application import JourneyApplication, StoredFact, decodes_in_bulk, open_fact
from projections import preparing, quarantine, readable
from projections.duckdb_store import ProjectionStore, release_memory
from projections.quarantine import readable_history_of
from projections.rules import DEFAULT_RULES, Rules

log = logging.getLogger(__name__)

#: Records per poll: large enough to amortise a DuckDB transaction per partition (each
#: partition's share of a poll is one transaction, with its view writes and its offset).
MAX_POLL_RECORDS = 20_000
#: Bytes fetched per partition per request: the 1 MiB default holds ~1,500 events, which made
#: every transaction small; 16 MiB lets one poll carry thousands per partition.
MAX_PARTITION_FETCH_BYTES = 16 * 1024 * 1024
#: How long to wait for the previous owner of a partition to close its file after a rebalance.
LOCK_WAIT_S = 60.0
#: Records of one partition gathered over several polls into one DuckDB transaction. A
#: transaction rewrites the rows of every customer it touched, so its cost grows with the
#: customers, not the records: a poll's share (~5,000 per partition) made each customer's rows
#: be rewritten many times over.
APPLY_RECORDS = 40_000
#: ... or when the oldest gathered record has waited this long (a live feed stays fresh).
APPLY_AFTER_S = 2.0
#: Records of a transaction decoded and written at a time (``journey project`` reads 20,000 at a
#: time too). A poll can leave more than APPLY_RECORDS waiting for one partition (52,000 were
#: seen at 1M events); decoded at once, the largest transaction's facts set the process's peak.
APPLY_CHUNK = 20_000
#: DuckDB's memory for the partition file being written: each file is its own DuckDB instance
#: with its own limit. A partition's transaction is at most a few APPLY_CHUNKs of facts, a
#: fifth of ``journey project``'s; below ~100MB DuckDB can fail a large transaction's merge
#: UPDATE with its Out of Memory Error (uncommitted rows cannot be spilled).
PARTITION_MEMORY_LIMIT = "100MB"
#: ... and for each of the others, while this instance owns more than one partition: the
#: partitions are applied one at a time, so only one file needs its working memory. At the
#: working limit the idle files kept theirs (70-95 MB each at 1M events, ~250 MB of a
#: four-partition projector's peak): DuckDB keeps the blocks it has read until its limit is
#: reached, and gives them back only when the limit is lowered.
IDLE_MEMORY_LIMIT = "8MB"
#: Records applied to a partition's file since it was last parked, from which it is parked
#: again after its transaction: parking costs a CHECKPOINT and re-reading the partition's
#: rows, which a catch-up's 40,000-record transactions amortise and a live feed's few records
#: per transaction would not (a file fed only small transactions stays at the working limit,
#: which bounds it anyway). A transaction this large also hands freed memory back to the OS
#: after each chunk it writes.
PARK_AFTER = 10_000


@dataclass
class ProjectorStats:
    applied: int = 0
    records: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.records / elapsed if elapsed > 0 else 0.0


def partition_path(directory: Path, topic: str, partition: int) -> Path:
    return directory / f"{topic}-{partition}.duckdb"


class Publisher(Protocol):
    """Exports a partition file's snapshot for readers (named here so that this layer does not
    import the one that writes snapshots)."""

    def due(self, store: ProjectionStore, final: bool = False) -> bool:
        """Should the file be exported now? ``final``: the projector is letting it go."""
        ...

    def publish(self, store: ProjectionStore) -> object:
        """Export it; never raises (a failed export must not stop the projector)."""
        ...


class PartitionStores:
    """One projection file per partition, open while this instance owns the partition."""

    def __init__(self, directory: Path, topic: str, rules: Rules = DEFAULT_RULES,
                 publisher: Publisher | None = None) -> None:
        self.directory = directory
        self.topic = topic
        self.rules = rules
        self.publisher = publisher
        self.open: dict[int, ProjectionStore] = {}
        #: Open files at IDLE_MEMORY_LIMIT, and each open file's records since it was parked.
        self.parked: set[int] = set()
        self.unparked: dict[int, int] = {}
        directory.mkdir(parents=True, exist_ok=True)

    def cursor(self, partition: int) -> str:
        return f"kafka:{self.topic}:{partition}"

    def acquire(self, partition: int) -> ProjectionStore:
        if partition in self.open:
            return self.open[partition]
        path = partition_path(self.directory, self.topic, partition)
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                store = ProjectionStore(path, name=self.cursor(partition), start=-1,
                                        memory_limit=PARTITION_MEMORY_LIMIT, rules=self.rules)
                store.reader = READER
                break
            except duckdb.IOException:
                # The previous owner (another instance) has not closed the file yet.
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        self.open[partition] = store
        self.unparked[partition] = 0
        return store

    def apply(self, partition: int,
              chunks: Iterable[Sequence[tuple[int, StoredFact]] | preparing.Tracked], count: int,
              history: Callable[[str], list[StoredFact]],
              before_commit: Callable[[], None] | None = None) -> int:
        """Apply one partition's ``count`` records (with its offset) to its file, in one
        transaction; returns the new facts.

        The partitions are applied one at a time, so one DuckDB working budget is enough for
        the process: a parked file gets PARTITION_MEMORY_LIMIT back for its transaction, and
        while this instance owns more than one partition a file is parked (IDLE_MEMORY_LIMIT)
        after a transaction that brings it to PARK_AFTER records since it was last parked."""
        store = self.open[partition]
        if partition in self.parked:
            _set_memory_limit(store, store.memory_limit)
            self.parked.discard(partition)
        applied = store.apply_tracked(self.cursor(partition), chunks, history,
                                      before_commit=before_commit, release_after=PARK_AFTER)
        self.unparked[partition] = self.unparked.get(partition, 0) + count
        if len(self.open) > 1 and self.unparked[partition] >= PARK_AFTER and _park(store):
            self.parked.add(partition)
            self.unparked[partition] = 0
        return applied

    def publish(self, final: bool = False) -> None:
        """Export every held file the publisher says is due (between transactions: no
        transaction is open on any file here)."""
        for partition in list(self.open):
            self._publish(partition, final)

    def _publish(self, partition: int, final: bool) -> None:
        store = self.open.get(partition)
        if self.publisher is None or store is None or not self.publisher.due(store, final):
            return
        # A parked file exports with the working budget, then is parked again.
        parked = partition in self.parked
        if parked:
            _set_memory_limit(store, store.memory_limit)
        try:
            self.publisher.publish(store)
        finally:
            if parked and not _park(store):
                self.parked.discard(partition)

    def release(self, partition: int) -> None:
        """Let the partition's file go (after exporting it, when it moved since its last export)."""
        try:
            self._publish(partition, final=True)
        finally:
            self.parked.discard(partition)
            self.unparked.pop(partition, None)
            store = self.open.pop(partition, None)
            if store is not None:
                store.close()

    def release_all(self) -> None:
        for partition in list(self.open):
            self.release(partition)


def _set_memory_limit(store: ProjectionStore, limit: str) -> None:
    store.con.execute(f"SET memory_limit = '{limit}'")


def _park(store: ProjectionStore) -> bool:
    """Give back the memory of a partition file between its transactions.

    A CHECKPOINT first: until one, the committed rows and index changes since the last are
    held in memory and can only be spilled to a temporary file, not dropped, and DuckDB
    refuses a limit below them (what is left is re-read from the file when next needed).
    DuckDB checkpoints by itself once the log passes 16 MiB, which a transaction of a few
    thousand events mostly does, so this adds little writing. Should DuckDB still refuse the
    limit (something it cannot evict), the file keeps the working limit: memory, not
    correctness, is at stake."""
    store.con.execute("CHECKPOINT")
    try:
        _set_memory_limit(store, IDLE_MEMORY_LIMIT)
    except duckdb.OutOfMemoryException as error:
        log.debug("partition file %s kept its memory: %s", store.path, error)
        return False
    finally:
        release_memory()
    return True


class Pending:
    """Records polled but not applied yet, per partition, and since when.

    Held as the messages' bytes, decoded when their partition is applied: up to APPLY_RECORDS
    per owned partition wait here at once, and a decoded fact (dicts and strings) is several
    times the size of its message.

    Nothing here is a promise: the partition's file holds its offset, so records dropped here
    (a revocation, a crash) are read again by whoever owns the partition next."""

    def __init__(self) -> None:
        self.records: dict[int, list[tuple[int, bytes]]] = {}
        self.since: dict[int, float] = {}

    def add(self, partition: int, records: list[tuple[int, bytes]]) -> None:
        if records:
            self.records.setdefault(partition, []).extend(records)
            self.since.setdefault(partition, time.monotonic())

    def due(self, everything: bool) -> list[int]:
        now = time.monotonic()
        return [p for p, records in self.records.items()
                if everything or len(records) >= APPLY_RECORDS or now - self.since[p] >= APPLY_AFTER_S]

    def take(self, partition: int) -> list[tuple[int, bytes]]:
        self.since.pop(partition, None)
        return self.records.pop(partition, [])

    def drop(self, partition: int) -> None:
        self.take(partition)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, consumer: KafkaConsumer, stores: PartitionStores, pending: Pending) -> None:
        self.consumer = consumer
        self.stores = stores
        self.pending = pending

    def on_partitions_revoked(self, revoked: Any) -> None:
        for tp in revoked:
            self.pending.drop(tp.partition)  # the next owner reads them from the file's offset
            self.stores.release(tp.partition)
        log.info("revoked partitions %s", sorted(tp.partition for tp in revoked))

    def on_partitions_assigned(self, assigned: Any) -> None:
        for tp in assigned:
            store = self.stores.acquire(tp.partition)
            self.consumer.seek(tp, store.position(self.stores.cursor(tp.partition)) + 1)
        log.info("assigned partitions %s", sorted(tp.partition for tp in assigned))


#: The reader named in the partition files' quarantine entries.
READER = "kafka-projector"


def store_history(app: JourneyApplication) -> Callable[[str], list[StoredFact]]:
    """Read a customer's facts from the event store (for cross-partition merges), without
    those the readers cannot handle (each partition quarantines its own where they stand)."""
    return readable_history_of(app)


def run_projector(
    app: JourneyApplication,
    *,
    bootstrap: str,
    topic: str,
    directory: Path,
    group: str = "journey-projections",
    stop: Callable[[], bool] = lambda: False,
    once: bool = False,
    on_progress: Callable[[ProjectorStats], None] | None = None,
    idle_timeout_s: float = 60.0,
    before_commit: Callable[[], None] | None = None,
    rules: Rules = DEFAULT_RULES,
    publisher: Publisher | None = None,
    parallel: preparing.Parallel | None = None,
) -> ProjectorStats:
    """Consume journey.events into per-partition projections until ``stop()`` (or caught up).

    ``rules``: the ledger's configured rules (its settings), as the embedded projection has them.
    ``publisher``: exports the files' snapshots for analysts, asked after each poll's
    transactions and when a partition is let go (a revocation, the end of the run).
    ``parallel``: from how many records due at once (a catch-up) worker processes decode and
    check them (projections/preparing.py), kept for the rest of the run: the main process is
    left the consumer, the owners and DuckDB.

    ``once`` (a catch-up run of a single instance): return when this instance owns every
    partition of the topic and each has reached its end offset, or when nothing was assigned
    for ``idle_timeout_s``. Right after a crash the group may still hold a killed member's
    partitions until its session expires; owning all of them means that has passed.
    """
    stats = ProjectorStats()
    stores = PartitionStores(directory, topic, rules, publisher)
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=MAX_POLL_RECORDS,
        max_partition_fetch_bytes=MAX_PARTITION_FETCH_BYTES,
        fetch_max_bytes=4 * MAX_PARTITION_FETCH_BYTES,
        client_id=f"journey-projector-{group}",
    )
    history = store_history(app)
    preparer: preparing.Preparer | None = None
    plan = parallel or preparing.Parallel()
    outage = Outage(log, "projector")
    pending = Pending()
    consumer.subscribe([topic], listener=_Rebalance(consumer, stores, pending))
    idle_since = time.monotonic()
    try:
        while not stop():
            try:
                polled = consumer.poll(timeout_ms=500, max_records=MAX_POLL_RECORDS)
            except Exception as error:
                # Nothing was handed over, so the fetch positions still match the files.
                if not is_transient(error):
                    raise
                outage.failed(error)
                continue
            outage.succeeded()
            got = sum(map(len, polled.values()))
            for tp, messages in polled.items():
                if tp.partition in stores.open:  # else revoked between poll and here
                    pending.add(tp.partition, [(m.offset, m.value) for m in messages])
            # Only the values wait: a poll's ConsumerRecords (headers and all, ~25 MiB for
            # 20,000) were otherwise alive through every apply below.
            del polled
            # A short poll means the consumer has caught up: apply what it holds now.
            applied = False
            due = pending.due(everything=got < MAX_POLL_RECORDS)
            if (preparer is None and decodes_in_bulk(app)
                    and plan.wanted(sum(len(pending.records[p]) for p in due))):
                preparer = preparing.Preparer(plan.workers)
            if preparer is not None:
                applied = _apply_ahead(app, preparer, stores, pending, due, stats, history,
                                       before_commit)
            for partition in due if preparer is None else ():
                taken = pending.take(partition)
                if partition not in stores.open:
                    continue
                count = len(taken)  # _fact_chunks empties ``taken`` as it decodes
                stats.records += count
                stats.applied += stores.apply(partition, _fact_chunks(app, taken), count,
                                              history, before_commit)
                del taken
                applied = True
            if got:
                idle_since = time.monotonic()
            if applied:
                consumer.commit_async()  # for lag monitoring only; the truth is in the files
                if on_progress is not None:
                    on_progress(stats)
            # Asked after every poll, applied or not: a file whose export was not due after its
            # last transaction is exported once the interval has passed, also when idle.
            stores.publish()
            try:
                if once and _caught_up(consumer, stores, topic, idle_since, idle_timeout_s):
                    break
            except Exception as error:
                if not is_transient(error):
                    raise
                outage.failed(error)
    finally:
        if preparer is not None:
            preparer.close()
        stores.release_all()
        consumer.close(autocommit=False)
    return stats


#: A partition's records sent to the workers: each chunk's records and its prepared facts.
_Sent = list[tuple[list[tuple[int, bytes]], "Future[preparing.Prepared | None]"]]


def _apply_ahead(app: JourneyApplication, preparer: preparing.Preparer, stores: PartitionStores,
                 pending: Pending, due: list[int], stats: ProjectorStats,
                 history: Callable[[str], list[StoredFact]],
                 before_commit: Callable[[], None] | None) -> bool:
    """Apply the due partitions one at a time, each one's records prepared by the workers while
    the partition before it is written (one partition ahead: two partitions' records in memory
    at most). Returns whether anything was applied."""
    sent: dict[int, tuple[_Sent, int]] = {}

    def send(partition: int) -> None:
        taken = pending.take(partition)
        store = stores.open.get(partition)
        if store is None:
            return
        done = store.position(stores.cursor(partition))
        fresh = [(offset, value) for offset, value in taken if offset > done]
        units: _Sent = []
        for start in range(0, len(fresh), APPLY_CHUNK):
            records = fresh[start:start + APPLY_CHUNK]
            rows = [stored_row(value) for _, value in records]
            if all(row is not None for row in rows):
                units.append((records, preparer.submit(rows, app.keys)))  # type: ignore[arg-type]
            else:  # not all the relay's format 2: decoded here
                here: Future[preparing.Prepared | None] = Future()
                here.set_result(None)
                units.append((records, here))
        sent[partition] = (units, len(taken))

    applied = False
    for i, partition in enumerate(due):
        for ahead in due[i:i + 2]:
            if ahead not in sent:
                send(ahead)
        units, count = sent.pop(partition, ([], 0))
        if partition not in stores.open:
            continue
        stats.records += count
        if units:
            stats.applied += stores.apply(partition, _tracked(app, units), count, history,
                                          before_commit)
            applied = True
    return applied


def _tracked(app: JourneyApplication, units: _Sent) -> Iterator[preparing.Tracked]:
    """The prepared chunks of a partition, in offset order; a chunk the workers could not
    decode alone is decoded here, as :func:`_fact_chunks` decodes any record."""
    while units:
        records, future = units.pop(0)
        prepared = future.result()
        if prepared is None:
            facts = [sf for chunk in _fact_chunks(app, list(records), len(records)) for _, sf in chunk]
            prepared = preparing.prepare(facts)
        yield preparing.Tracked(len(records), records[-1][0], prepared)
        del records, prepared


def _fact_chunks(app: JourneyApplication, taken: list[tuple[int, bytes]],
                 size: int | None = None) -> Iterator[list[tuple[int, StoredFact]]]:
    """A partition's records as opened facts, ``size`` (APPLY_CHUNK) at a time, each chunk
    decoded only when asked for. ``taken`` is emptied as it goes: each message's bytes are let
    go once decoded, so the records are never all held as bytes and as facts at once."""
    size = size or APPLY_CHUNK
    taken.reverse()
    while taken:
        chunk: list[tuple[int, StoredFact]] = []
        while taken and len(chunk) < size:
            offset, value = taken.pop()
            try:
                chunk.append((offset, decode_event(value)))
            except (ValueError, TypeError, KeyError) as error:
                # Not a message the relay wrote: nothing says which fact it was.
                log.error("offset %d: not an event message (%s); skipped", offset,
                          quarantine.failure(error))
        yield _opened(app, chunk)
        del chunk  # before the next chunk is decoded


def _opened(app: JourneyApplication, sealed: list[tuple[int, StoredFact]]) -> list[tuple[int, StoredFact]]:
    """The records' facts opened with the store's keys, fetched in one query for the poll
    (one query per record's customer otherwise: a key lookup per new customer).

    Opened in place: each sealed fact (its envelope and all) is dropped as its opened one
    takes its place, not kept until the whole list is opened."""
    owners = {sf.fact["customer_uuid"] for _, sf in sealed
              if isinstance(sf.fact, dict) and isinstance(sf.fact.get("customer_uuid"), str)
              and ENVELOPE in sf.fact}
    if len(owners) > 1:
        app.keys.prefetch([UUID(owner) for owner in owners])
    for i, (offset, sf) in enumerate(sealed):
        try:
            sealed[i] = (offset, open_fact(app, sf))
        except quarantine.FACT_ERRORS as error:
            # Quarantined where it stands: applying it sealed would lose its personal part.
            sealed[i] = (offset, readable.undecodable(
                sf.position, sf.stream_id, sf.stream_version,
                f"cannot be opened with the store's keys: {type(error).__name__}: {error}"))
    return sealed


def _caught_up(consumer: KafkaConsumer, stores: PartitionStores, topic: str, idle_since: float,
               idle_timeout_s: float) -> bool:
    assigned = consumer.assignment()
    if not assigned:
        return time.monotonic() - idle_since > idle_timeout_s
    if {tp.partition for tp in assigned} != (consumer.partitions_for_topic(topic) or set()):
        return False
    ends = consumer.end_offsets(list(assigned))
    for tp in assigned:
        store = stores.open.get(tp.partition)
        if store is None or store.position(stores.cursor(tp.partition)) + 1 < ends[tp]:
            return False
    return True
