"""Kafka -> ledger: raw facts from ``journey.touchpoints``, recorded exactly once, poison to a DLQ.

One message is one fact (the JSON Lines contract, docs/events.md). The consumer:

- **Positions live in the store, not in Kafka.** On every partition assignment each partition is
  sought to the offset after the one tracked in the event store under
  ``kafka:{topic}:{partition}`` (eventsourcing ``Tracking`` rows, one per name, so every
  partition of every topic coexists with the other trackers in the same table). Kafka's
  committed offsets are written too, after the store commit, but only for monitoring (lag);
  they are never read.
- **One store transaction per partition per poll.** The valid facts of that partition's records
  and a ``Tracking(kafka:{topic}:{p}, last offset)`` are saved together by ``Ledger.append``;
  the tracking is saved even when no record of the batch was valid, so the position always
  advances. A redelivered message (a rebalance, a restart after a crash between the store
  commit and the Kafka commit) is at or below the tracked offset: it is skipped here, and if it
  ever reached the store the tracking row would refuse the whole batch. Either way it records
  nothing.
- **Dead letters.** A message that is not a valid fact (``InvalidFact`` from parsing: broken
  JSON, the contract, or its limits, docs/events.md "Limits") goes to the DLQ topic with its
  original key, value (the original bytes) and headers, plus ``dlq.reason``,
  ``dlq.source_topic``, ``dlq.source_partition`` and ``dlq.source_offset``.
  Those are produced and ``flush()``-ed (every send acknowledged, or the loop fails) **before**
  the store commit of the batch, so a crash can only *duplicate* a DLQ entry (the batch is
  redone and its rejects sent again), never lose one. The dedupe key of a DLQ entry is
  ``(dlq.source_topic, dlq.source_partition, dlq.source_offset)``; ``consumers.dlq`` hides the
  copies.

  Facts the *ledger's state* refuses (``BatchResult.rejected``: a case of another customer, an
  unknown ledger id) are sent from ``Ledger.append``'s ``before_commit`` hook, which sees the
  batch's outcome before the save: the same rule holds for them.
- **A broker outage is waited out, other errors are never swallowed.** A retriable Kafka error
  (the coordinator unreachable while the broker restarts, a DLQ flush nobody acknowledges)
  abandons the current batch before its store commit, rewinds every owned partition to the
  store's position and retries with backoff (``consumers.broker_outage``). Anything else (the
  store, a fact that breaks the writer) stops the loop with the exception; nothing after the
  failed batch is tracked, so a restart resumes there. A failed *monitoring* commit to Kafka is
  only logged.
- **Routed facts wait their turn.** On the routed topic (``journey route``, consumers/routing.py)
  a fact may carry ``journey.route.after``: positions on other partitions that touched the same
  records first. The batch is cut before it, the part before it recorded, and its partition
  paused at it until the store has tracked those positions (written by this worker or another).
  Every such wait points to a fact routed earlier, so the earliest unwritten fact can always be
  written: workers never deadlock, and never write the same record at the same time.
- **Clean stop.** A stop flag (``journey.signals.stop_flag``) is checked between polls: the
  current poll's batches are finished, the producer flushed, the consumer closed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import Tracking
from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from consumers.broker_outage import Outage, is_transient
from consumers.jsonl_ingest import FactParser, fact_parser
from consumers.route_headers import parse_after
from domain import catalogue
from domain.errors import InvalidFact
from ledger.writer import BatchResult, Ledger

log = logging.getLogger("journey.ingest")

DEFAULT_GROUP = "journey-ingest"
#: Records per poll (over all partitions); each partition's share is one store transaction
#: (larger transactions pay: a store transaction per partition per poll has a cost of its own).
DEFAULT_MAX_RECORDS = 8000

H_REASON = "dlq.reason"
H_SOURCE_TOPIC = "dlq.source_topic"
H_SOURCE_PARTITION = "dlq.source_partition"
H_SOURCE_OFFSET = "dlq.source_offset"
#: Headers the DLQ adds; everything else on a DLQ entry is the original message's.
DLQ_HEADERS = (H_REASON, H_SOURCE_TOPIC, H_SOURCE_PARTITION, H_SOURCE_OFFSET)

Headers = list[tuple[str, bytes]]


def tracking_name(topic: str, partition: int) -> str:
    """The store's tracking row for one partition of one topic."""
    return f"kafka:{topic}:{partition}"


def dead_letter_headers(record: Any, reason: str) -> Headers:
    """The original headers (minus any earlier DLQ headers) followed by this rejection's."""
    kept = [(k, v) for k, v in (record.headers or []) if k not in DLQ_HEADERS]
    return [
        *kept,
        (H_REASON, reason.encode()),
        (H_SOURCE_TOPIC, record.topic.encode()),
        (H_SOURCE_PARTITION, str(record.partition).encode()),
        (H_SOURCE_OFFSET, str(record.offset).encode()),
    ]


class DeadLetters:
    """A producer for the DLQ topic whose ``flush()`` fails loudly if any send failed."""

    def __init__(self, producer: Any, topic: str, timeout: float = 30.0) -> None:
        self.producer = producer
        self.topic = topic
        self.timeout = timeout
        self._pending: list[Any] = []
        self.sent = 0

    def send(self, record: Any, reason: str) -> None:
        future = self.producer.send(self.topic, value=record.value, key=record.key,
                                    headers=dead_letter_headers(record, reason))
        self._pending.append(future)

    def forget(self) -> None:
        """Drop the futures of an abandoned batch: the batch is fetched and sent again."""
        self._pending = []

    def flush(self) -> None:
        if not self._pending:
            return
        self.producer.flush(timeout=self.timeout)
        pending, self._pending = self._pending, []
        for future in pending:
            future.get(timeout=self.timeout)  # raises the send's error
        self.sent += len(pending)


@dataclass(slots=True)
class IngestStats:
    #: Records handled (recorded, duplicate or dead-lettered); redeliveries are not counted.
    messages: int = 0
    recorded: int = 0
    duplicates: int = 0
    derived: int = 0
    dead_lettered: int = 0
    #: Records at or below the store's tracked offset (redeliveries), skipped.
    redelivered: int = 0
    #: Times a batch met another writer's changes and was redone (ledger/writer.py).
    conflicts: int = 0
    #: Times a routed fact waited for a position on another partition.
    waits: int = 0
    batches: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else 0.0


class _StorePositions(ConsumerRebalanceListener):  # type: ignore[misc]
    """Seeks every assigned partition to the store's tracked offset + 1."""

    def __init__(self, ingest: KafkaIngest) -> None:
        self.ingest = ingest

    def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        for tp in revoked:
            self.ingest.positions.pop(tp, None)
            self.ingest._drop_held(tp)

    def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        consumer = self.ingest.consumer
        for tp in sorted(assigned):
            # A partition paused for a routed fact's wait may stay paused across a rebalance.
            self.ingest._drop_held(tp)
            done = self.ingest.stored_position(tp)
            self.ingest.positions[tp] = -1 if done is None else done
            if done is None:
                consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, done + 1)
            log.info("assigned %s:%d, resuming at offset %s (store)", tp.topic, tp.partition,
                     "the beginning" if done is None else done + 1)


class KafkaIngest:
    """The ingest loop; ``run()`` until a stop flag is set (or, with ``once``, caught up)."""

    def __init__(
        self,
        ledger: Ledger,
        *,
        bootstrap: str,
        topic: str,
        dlq_topic: str,
        group: str = DEFAULT_GROUP,
        max_records: int = DEFAULT_MAX_RECORDS,
        poll_timeout_ms: int = 500,
        on_progress: Callable[[IngestStats], None] | None = None,
        before_commit: Callable[[], None] | None = None,
        consumer_config: Mapping[str, Any] | None = None,
        parse: FactParser | None = None,
    ) -> None:
        self.ledger = ledger
        #: Judges each message as ``journey append`` judges a line (the ledger's settings).
        self.parse = parse or fact_parser()
        self.topic = topic
        self.max_records = max_records
        self.poll_timeout_ms = poll_timeout_ms
        self.on_progress = on_progress
        #: Test hook: called after a batch's dead letters are flushed, before its store commit.
        self.before_commit = before_commit
        #: The last offset recorded in the store, per owned partition.
        self.positions: dict[TopicPartition, int] = {}
        #: Paused partitions and the positions (partition -> offset) their next fact waits for.
        self.blocked: dict[TopicPartition, dict[int, int]] = {}
        #: The records of a paused partition from the waiting one on, recorded when it may go on.
        self.held: dict[TopicPartition, list[Any]] = {}
        self.stats = IngestStats()
        self.outage = Outage(log, "ingest")
        self.bootstrap = bootstrap
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group,
            client_id=f"{group}-consumer",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            **dict(consumer_config or {}),
        )
        self.dlq = DeadLetters(
            KafkaProducer(bootstrap_servers=bootstrap, client_id=f"{group}-dlq", acks="all",
                          linger_ms=5),
            dlq_topic,
        )

    # -- positions ---------------------------------------------------------------------------

    def stored_position(self, tp: TopicPartition) -> int | None:
        recorder: Any = self.ledger.app.recorder
        done: int | None = recorder.max_tracking_id(tracking_name(tp.topic, tp.partition))
        return done

    def end_offsets(self) -> dict[TopicPartition, int]:
        partitions = self.consumer.partitions_for_topic(self.topic) or set()
        tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        return dict(self.consumer.end_offsets(tps)) if tps else {}

    def caught_up(self, ends: Mapping[TopicPartition, int]) -> bool:
        """Every partition handled up to the end offsets (by us or another group member)."""
        if self.blocked:  # records held back: the fetch position is past what is stored
            return False
        for tp, end in ends.items():
            if end <= 0:  # no record to store (nobody ever tracks an empty partition)
                continue
            done = self.positions.get(tp)
            if done is None:
                done = self.stored_position(tp)
            if done is not None and done + 1 >= end:
                continue
            # Transaction markers take offsets no record has: ask where the fetcher is.
            if tp in self.positions and self.consumer.position(tp) >= end:
                continue
            return False
        return True

    # -- the loop ----------------------------------------------------------------------------

    def run(self, stop: threading.Event | None = None, *, once: bool = False) -> IngestStats:
        stop = stop or threading.Event()
        started = time.monotonic()
        self.consumer.subscribe([self.topic], listener=_StorePositions(self))
        ends = record_ends(self.bootstrap, self.end_offsets()) if once else {}
        if once:
            log.info("--once: stopping at end offsets %s",
                     {tp.partition: o for tp, o in sorted(ends.items())})
        while not stop.is_set():
            try:
                if once and self.caught_up(ends):
                    break
                polled = self._poll_once()
            except Exception as error:
                if not is_transient(error):
                    raise
                self.outage.failed(error, stop)
                self._rewind()
                continue
            self.outage.succeeded()
            self.stats.seconds = time.monotonic() - started
            if polled and self.on_progress is not None:
                self.on_progress(self.stats)
        self.dlq.flush()
        self.stats.seconds = time.monotonic() - started
        return self.stats

    def _poll_once(self) -> int:
        """One poll, each partition's share recorded; the number of records polled."""
        commits = self._unblock()
        polled = self.consumer.poll(timeout_ms=self.poll_timeout_ms, max_records=self.max_records)
        for tp, records in sorted(polled.items()):
            last = self._handle(tp, records)
            if last is not None:
                commits[tp] = OffsetAndMetadata(last + 1, "", -1)
        if commits:
            self.consumer.commit_async(offsets=commits, callback=_log_commit_failure)
        return sum(len(records) for records in polled.values())

    def _rewind(self) -> None:
        """After a failed batch: fetch again from what the store holds, not where the fetcher was."""
        self.dlq.forget()
        for tp in list(self.blocked):
            self._drop_held(tp)
        for tp, done in list(self.positions.items()):
            try:
                if done < 0:
                    self.consumer.seek_to_beginning(tp)
                else:
                    self.consumer.seek(tp, done + 1)
            except Exception as error:  # no longer assigned: the rebalance listener seeks it
                log.debug("rewind of %s skipped: %r", tp, error)

    def _handle(self, tp: TopicPartition, records: Sequence[Any]) -> int | None:
        """Record one partition's share of a poll; the last offset now tracked, if any."""
        done = self.positions.get(tp)
        if done is None:  # revoked while these were in flight: the new owner reads them
            return None
        fresh = [r for r in records if r.offset > done]
        self.stats.redelivered += len(records) - len(fresh)
        fresh = self._until_waiting(tp, fresh)
        if not fresh:
            return None
        by_offset = {r.offset: r for r in fresh}
        valid: list[tuple[int, catalogue.Fact]] = []
        invalid = 0
        parse = self.parse
        for r in fresh:
            try:
                if r.value is None:
                    raise InvalidFact("empty message (no value)")
                valid.append((r.offset, parse(r.value)))
            except InvalidFact as error:
                self.dlq.send(r, str(error))
                invalid += 1
        last: int = fresh[-1].offset

        def dead_letter_refusals(outcome: BatchResult) -> None:
            # Facts the ledger's state refuses, sent before the store commit like the rest.
            for rejection in outcome.rejected:
                self.dlq.send(by_offset[rejection.line], rejection.reason)
            self.dlq.flush()  # before the store commit: a crash can duplicate, never lose
            if self.before_commit is not None:
                self.before_commit()

        conflicts = self.ledger.conflicts
        result = self.ledger.append(valid, tracking=Tracking(tracking_name(tp.topic, tp.partition), last),
                                    before_commit=dead_letter_refusals)
        self.stats.conflicts += self.ledger.conflicts - conflicts
        self.stats.dead_lettered += invalid + len(result.rejected)
        self.positions[tp] = last
        self.stats.messages += len(fresh)
        self.stats.recorded += result.recorded
        self.stats.duplicates += result.duplicates
        self.stats.derived += result.derived
        self.stats.batches += 1
        return last

    # -- routed facts that wait -------------------------------------------------------------

    def _until_waiting(self, tp: TopicPartition, fresh: list[Any]) -> list[Any]:
        """The records before the first one that must wait. That one and the rest are held (and so
        is whatever the partition brings until it may go on: its fetch position stays after them).

        Held, not paused and sought back: kafka-python 3.0 stopped fetching a partition that was
        paused with records in its buffer, even once resumed."""
        if tp in self.blocked:
            self.held[tp].extend(fresh)
            return []
        partitions = self.consumer.partitions_for_topic(tp.topic) or set()
        for i, r in enumerate(fresh):
            # A wait for a partition the topic does not have could never end: not the router's.
            after = {p: o for p, o in parse_after(r.headers).items() if p in partitions}
            if after and not self._stored(tp.topic, after):
                self.blocked[tp] = after
                self.held[tp] = fresh[i:]
                self.stats.waits += 1
                log.debug("%s:%d waits at offset %d for %s", tp.topic, tp.partition, r.offset, after)
                return fresh[:i]
        return fresh

    def _stored(self, topic: str, after: Mapping[int, int]) -> bool:
        for partition, offset in after.items():
            tp = TopicPartition(topic, partition)
            done = self.positions.get(tp)
            if done is None or done < offset:  # another worker's partition: ask the store
                done = self.stored_position(tp)
            if done is None or done < offset:
                return False
        return True

    def _unblock(self) -> dict[TopicPartition, OffsetAndMetadata]:
        """Record the held records of the partitions that may go on; their new positions."""
        commits: dict[TopicPartition, OffsetAndMetadata] = {}
        for tp, after in list(self.blocked.items()):
            if not self._stored(tp.topic, after):
                continue
            del self.blocked[tp]
            held = self.held.pop(tp, [])
            log.debug("%s:%d goes on", tp.topic, tp.partition)
            last = self._handle(tp, held) if held else None
            if last is not None:
                commits[tp] = OffsetAndMetadata(last + 1, "", -1)
        return commits

    def _drop_held(self, tp: TopicPartition) -> None:
        """A partition revoked or sought back: its held records are fetched again."""
        self.blocked.pop(tp, None)
        self.held.pop(tp, None)

    def close(self) -> None:
        try:
            self.dlq.producer.close(timeout=10)
        finally:
            self.consumer.close(autocommit=False)


def record_ends(bootstrap: str, ends: Mapping[TopicPartition, int]) -> dict[TopicPartition, int]:
    """The offset after each partition's last record.

    A transactional producer (the router) leaves a commit marker after its records, which takes
    an offset no record has: a partition is caught up when the store holds its last record, not
    when a position reaches the end offset."""
    found = dict(ends)
    reader = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                           client_id="journey-record-ends", isolation_level="read_committed")
    try:
        for tp, end in ends.items():
            back = 16
            while end > 0:
                start = max(0, end - back)
                reader.assign([tp])
                reader.seek(tp, start)
                last = -1
                while reader.position(tp) < end:
                    for r in reader.poll(timeout_ms=1000).get(tp, ()):
                        last = max(last, r.offset)
                if last >= 0 or start == 0:
                    found[tp] = last + 1
                    break
                back *= 8
    finally:
        reader.close()
    return found


def _log_commit_failure(offsets: Any, response: Any) -> None:
    if isinstance(response, Exception):
        log.warning("monitoring commit to Kafka failed (positions are in the store): %s", response)
