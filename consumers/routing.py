"""Touchpoints -> the routed topic: each fact keyed by the record it will be written to.

The channels' topic (``journey.touchpoints``) carries one person's facts under several keys (a
phone, a handle, a customer number). ``journey route`` reads it in one order, judges each fact
at the door (an invalid one goes to the dead-letter topic, as ``journey ingest`` would send it)
and sends every valid one, unchanged, to the routed topic (``journey.touchpoints.by-customer``)
keyed by the record the ledger will write it to (ledger/routing.py). ``journey ingest`` workers
on the routed topic then each own whole records: two workers never write the same stream.

**Order across partitions.** A fact that reads or changes what an earlier fact on *another*
routed partition touched (a prospect merged into the customer who claims its phone, a case, an
event id sent twice) carries ``journey.route.after: "<partition>:<offset>,..."``: the writer of
its partition writes everything before it, then waits until the store has tracked those
positions. Every dependency points to a fact routed earlier, so the earliest unwritten fact can
always be written: no cycle, no deadlock, whatever the number of workers. The ledger's outcome
is the one a single writer would reach in routing order, for 1 or 40 workers.

**Exactly once.** Each poll is one Kafka transaction: the routed facts, the dead letters and the
input offsets (``send_offsets_to_transaction``) commit together or not at all; the writers read
``read_committed``. A second router with the same transactional id fences the first. What the
router knows of facts routed but not yet written is rebuilt when it starts from the routed
topic itself (the records after each partition's stored position, in routing order:
``journey.route.seq``), so a restart routes exactly as the stopped router would have.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.partitioner.default import murmur2
from kafka.structs import OffsetAndMetadata

from consumers.broker_outage import Outage, is_transient
from consumers.jsonl_ingest import FactParser, fact_parser
from consumers.kafka_ingest import dead_letter_headers
from consumers.route_headers import H_SEQ, ROUTE_HEADERS, after_header, seq_of
from domain import catalogue
from domain.errors import InvalidFact
from ledger.index import WriteIndex
from ledger.routing import RoutePlanner

log = logging.getLogger("journey.route")

DEFAULT_GROUP = "journey-route"
#: One router writes the routed topic: a second one with this id fences the first.
DEFAULT_TRANSACTIONAL_ID = "journey-route"
#: Records per poll: one Kafka transaction each.
DEFAULT_MAX_RECORDS = 5000

#: The store's last written offset of a routed partition (None: nothing yet).
Written = Callable[[int], int | None]


def partition_for(key: bytes, partitions: int) -> int:
    """Kafka's default partitioner (murmur2 of the key), so any client keys the same way."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


@dataclass(slots=True)
class RouteStats:
    #: Input records handled (routed or dead-lettered).
    messages: int = 0
    routed: int = 0
    dead_lettered: int = 0
    #: Routed facts that wait for a position on another partition.
    waiting: int = 0
    transactions: int = 0
    #: Facts routed before a restart and not yet written, read back when this router started.
    rebuilt: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else 0.0


class _Touch:
    """The last routed fact that touched a resource: its partition and (once sent) offset."""

    __slots__ = ("_offset", "future", "partition")

    def __init__(self, partition: int, offset: int | None = None, future: Any = None) -> None:
        self.partition = partition
        self._offset = offset
        self.future = future

    @property
    def sent(self) -> bool:
        return self._offset is not None or self.future.is_done

    @property
    def offset(self) -> int:
        if self._offset is None:
            self._offset = int(self.future.get(timeout=30).offset)
            self.future = None
        return self._offset


class KafkaRouter:
    """The routing loop; ``run()`` until a stop flag is set (or, with ``once``, caught up)."""

    def __init__(self, index: WriteIndex, written: Written, *, bootstrap: str, topic: str,
                 routed_topic: str, dlq_topic: str, group: str = DEFAULT_GROUP,
                 transactional_id: str = DEFAULT_TRANSACTIONAL_ID,
                 max_records: int = DEFAULT_MAX_RECORDS, poll_timeout_ms: int = 500,
                 parse: FactParser | None = None,
                 on_progress: Callable[[RouteStats], None] | None = None,
                 before_commit: Callable[[], None] | None = None) -> None:
        self.index = index
        self.written = written
        self.bootstrap = bootstrap
        self.topic = topic
        self.routed_topic = routed_topic
        self.dlq_topic = dlq_topic
        self.max_records = max_records
        self.poll_timeout_ms = poll_timeout_ms
        self.parse = parse or fact_parser()
        self.on_progress = on_progress
        #: Test hook: called after a poll's records are sent, before its transaction commits.
        self.before_commit = before_commit
        self.stats = RouteStats()
        self.outage = Outage(log, "route")
        self.planner = RoutePlanner(index)
        self.last: dict[str, _Touch] = {}
        #: The stored positions at the last prune.
        self._pruned_at: Mapping[int, int | None] = {}
        self.seq = 0
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap, group_id=group, client_id=f"{group}-consumer",
            enable_auto_commit=False, auto_offset_reset="earliest", isolation_level="read_committed")
        self.producer = KafkaProducer(
            bootstrap_servers=bootstrap, client_id=f"{group}-producer", transactional_id=transactional_id,
            acks="all", linger_ms=5, batch_size=256 * 1024)
        self.producer.init_transactions()
        found = self.consumer.partitions_for_topic(routed_topic)
        if not found:
            raise ValueError(f"the routed topic {routed_topic} does not exist on {bootstrap}")
        self.partitions = len(found)

    # -- the loop ------------------------------------------------------------------------------

    def run(self, stop: threading.Event | None = None, *, once: bool = False) -> RouteStats:
        stop = stop or threading.Event()
        started = time.monotonic()
        self._rebuild()
        self.consumer.subscribe([self.topic])
        ends = self._input_ends() if once else {}
        while not stop.is_set():
            try:
                if once and self._caught_up(ends):
                    break
                polled = self.consumer.poll(timeout_ms=self.poll_timeout_ms, max_records=self.max_records)
                if polled:
                    self._route(polled)
            except Exception as error:
                if not is_transient(error):
                    raise
                self.outage.failed(error, stop)
                self._restart()
                continue
            self.outage.succeeded()
            self.stats.seconds = time.monotonic() - started
            if polled and self.on_progress is not None:
                self.on_progress(self.stats)
        self.stats.seconds = time.monotonic() - started
        return self.stats

    def _route(self, polled: Mapping[TopicPartition, Sequence[Any]]) -> None:
        """One poll, one transaction: dead letters, routed facts and input offsets together."""
        records = [r for tp in sorted(polled) for r in polled[tp]]
        producer = self.producer
        producer.begin_transaction()
        try:
            valid: list[tuple[Any, catalogue.Fact]] = []
            for r in records:
                try:
                    if r.value is None:
                        raise InvalidFact("empty message (no value)")
                    valid.append((r, self.parse(r.value)))
                except InvalidFact as error:
                    producer.send(self.dlq_topic, value=r.value, key=r.key,
                                  headers=dead_letter_headers(r, str(error)))
                    self.stats.dead_lettered += 1
            plans = self.planner.plan([fact for _, fact in valid])
            written = self._written_now()
            for (r, _), plan in zip(valid, plans, strict=True):
                key = str(plan.record).encode()
                partition = partition_for(key, self.partitions)
                headers = [(k, v) for k, v in (r.headers or []) if k not in ROUTE_HEADERS]
                headers.append((H_SEQ, str(self.seq).encode()))
                after = self._after(plan.resources, partition, written)
                if after:
                    headers.append(after_header(after))
                    self.stats.waiting += 1
                future = producer.send(self.routed_topic, value=r.value, key=key, partition=partition,
                                       headers=headers)
                touch = _Touch(partition, future=future)
                for resource in plan.resources:
                    self.last[resource] = touch
                self.seq += 1
            offsets = {tp: OffsetAndMetadata(rs[-1].offset + 1, "", -1)
                       for tp, rs in polled.items() if rs}
            producer.send_offsets_to_transaction(offsets, self.consumer.group_metadata())
            if self.before_commit is not None:
                self.before_commit()
            producer.commit_transaction()
        except BaseException:
            self._abort()
            raise
        self.stats.messages += len(records)
        self.stats.routed += len(valid)
        self.stats.transactions += 1
        self._prune(self._written_now())

    def _after(self, resources: Iterable[str], partition: int,
               written: Mapping[int, int | None]) -> dict[int, int]:
        """The positions on other partitions this fact must wait for (not yet stored ones)."""
        touches = [t for r in resources if (t := self.last.get(r)) is not None and t.partition != partition]
        if not touches:
            return {}
        if not all(t.sent for t in touches):
            self.producer.flush()  # the offsets of this transaction's earlier records
        after: dict[int, int] = {}
        for t in touches:
            done = written.get(t.partition)
            if done is None or done < t.offset:
                after[t.partition] = max(after.get(t.partition, -1), t.offset)
        return after

    def _written_now(self) -> dict[int, int | None]:
        return {p: self.written(p) for p in range(self.partitions)}

    def _prune(self, written: Mapping[int, int | None]) -> None:
        """Forget the facts the writers have stored: the index answers for them now."""
        if written == self._pruned_at:  # nothing stored since: nothing to forget
            return
        self._pruned_at = dict(written)

        def stored(t: _Touch) -> bool:
            done = written.get(t.partition)
            return done is not None and t.sent and t.offset <= done

        self.last = {r: t for r, t in self.last.items() if not stored(t)}
        self.planner.keep_only(self.last)

    # -- start, restart ------------------------------------------------------------------------

    def _rebuild(self) -> None:
        """Read back the facts routed earlier and not yet stored, and plan them again in the
        order they were routed, so the planner and the last touches are as they were."""
        written = self._written_now()
        reader = KafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                               client_id="journey-route-rebuild", isolation_level="read_committed")
        try:
            tps = [TopicPartition(self.routed_topic, p) for p in range(self.partitions)]
            reader.assign(tps)
            ends = reader.end_offsets(tps)
            todo = {}
            for tp in tps:
                done = written[tp.partition]
                start = 0 if done is None else done + 1
                if start < ends[tp]:
                    reader.seek(tp, start)
                    todo[tp] = ends[tp]
                else:
                    reader.pause(tp)
            pending: list[tuple[int, int, int, bytes]] = []
            while todo:
                for tp, rs in reader.poll(timeout_ms=1000, max_records=10_000).items():
                    pending.extend((seq_of(r.headers), tp.partition, r.offset, r.value) for r in rs
                                   if r.value is not None)
                for tp in list(todo):
                    if reader.position(tp) >= todo[tp]:
                        del todo[tp]
        finally:
            reader.close()
        pending.sort()
        for seq, partition, offset, value in pending:
            try:
                fact = self.parse(value)
            except InvalidFact:
                continue
            touch = _Touch(partition, offset)
            for resource in self.planner.plan([fact])[0].resources:
                self.last[resource] = touch
            self.seq = max(self.seq, seq + 1)
        self.stats.rebuilt += len(pending)
        if pending:
            log.info("%d routed fact(s) not stored yet read back from %s", len(pending), self.routed_topic)

    def _abort(self) -> None:
        try:
            self.producer.abort_transaction()
        except Exception as error:  # fenced or the broker gone: the transaction dies with it
            log.debug("abort failed: %r", error)

    def _restart(self) -> None:
        """After an aborted poll: what was planned is not routed; start over from the topics."""
        self.planner = RoutePlanner(self.index)
        self.last = {}
        self._rebuild()
        for tp in self.consumer.assignment():
            committed = self.consumer.committed(tp)
            if committed is None:
                self.consumer.seek_to_beginning(tp)
            else:
                self.consumer.seek(tp, committed)

    def _input_ends(self) -> dict[TopicPartition, int]:
        partitions = self.consumer.partitions_for_topic(self.topic) or set()
        tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        return dict(self.consumer.end_offsets(tps)) if tps else {}

    def _caught_up(self, ends: Mapping[TopicPartition, int]) -> bool:
        owned = self.consumer.assignment()
        for tp, end in ends.items():
            if tp in owned:
                if self.consumer.position(tp) < end:
                    return False
                continue
            committed = self.consumer.committed(tp)
            if end > 0 and (committed is None or committed < end):
                return False
        return True

    def close(self) -> None:
        try:
            self.producer.close(timeout=10)
        finally:
            self.consumer.close(autocommit=False)
