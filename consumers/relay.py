"""The relay: every event recorded in the store, published to Kafka (topic ``journey.events``).

What it does, in a loop:

1. reads the position it last published from the store's tracking table
   (``tracking`` row ``relay:<topic>``, written by this relay only);
2. reads the next batch of notifications after that position (ids have gaps after rejected
   writes: a gap is never loss, the position simply moves past it);
3. sends every event of the batch with an idempotent producer (``acks=all``), key = customer id,
   value and headers as :mod:`consumers.wire` encodes them;
4. flushes the producer and checks every send succeeded, and only then
5. records the batch's last position in the tracking table.

Guarantee: **at least once, in per-customer order, with a bounded redelivery window.** Nothing
recorded in the store is ever skipped: the tracked position only moves after the broker has
acknowledged (``acks=all``) every event up to it. After a crash (SIGKILL, power loss) between
step 3 and step 5 the events of that one batch (at most ``batch_size`` events) are published
again on restart. A broker outage does not move the position either: the producer keeps
retrying (the delivery timeout is long, so the idempotent producer's retries keep per-partition
order), the relay logs while it waits, and if a send does fail, the whole batch is sent again
from the tracked position with a fresh producer, after a backoff. Redeliveries therefore happen;
they are *not* hidden.

How consumers drop redeliveries: every message carries ``position`` (the store's notification
id; value field and header). Within one customer (one key, hence one partition) positions only
increase in the store's order, so a consumer keeps, per customer, the last position it applied
and ignores any message of that customer with ``position <= last``. Across customers positions
interleave; compare them per customer only.

Residual risk, stated plainly: while sends are merely retried, the idempotent producer keeps
per-partition order. If a send *fails* (the 15-minute delivery timeout expired during an outage,
or a non-retriable error) kafka-python starts a new producer id, and a later message of the same
customer queued in the same batch could still be written before the failed one is re-sent; a
consumer dropping ``position <= last`` would then drop the earlier event. The relay checks for
exactly this after every failed attempt and logs it as an ERROR naming the customers and
positions (they need a replay from the store); it cannot undo it. A transactional producer with
``read_committed`` consumers would close this gap, at a throughput cost. A non-retriable error
(say, a message larger than the broker accepts) stops progress at that batch: it is logged on
every retry and never skipped.

Stopping: when the stop flag is set the relay finishes the batch in hand (send, flush, record)
and returns. If the broker is unreachable at that moment it gives up waiting after
``stop_grace`` seconds without recording, so that batch is sent again on the next start.

The SQLite store assigns notification ids inside its single write transaction, so an id never
becomes visible after a larger one; a store with concurrent writers (PostgreSQL) must guarantee
the same before this relay may run on it (eventsourcing does so with a table lock on insert).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Notification, Tracking, TrackingRecorder
from kafka.partitioner.default import murmur2

from consumers import relay_reader
from consumers.relay_reader import ReadAhead
from consumers.wire import Message, encode_event, encode_stored
from ledger import chain as hash_chain
from ledger.application import JourneyApplication, decode_sealed
from ledger.sqlite_recorder import JourneySQLiteRecorder, Row
from projections import readable

log = logging.getLogger(__name__)

#: Events per flush-and-record cycle: the redelivery window after a crash.
DEFAULT_BATCH = 5000
#: Seconds between store polls when the relay has caught up (follow mode).
POLL_INTERVAL = 0.2
#: Seconds between progress lines.
PROGRESS_EVERY = 5.0
#: The backlog (events) from which the relay reads the store in a child process
#: (consumers/relay_reader.py). Below it, starting an interpreter (~0.5 s) costs more than the
#: ~15 % it saves.
READ_AHEAD_MIN = 100_000

#: Producer settings. Idempotence needs acks=all and at most 5 requests in flight; the long
#: delivery timeout lets the producer ride out a broker outage with its own ordered retries
#: instead of failing batches (whose re-send would then duplicate more).
PRODUCER_CONFIG: dict[str, Any] = {
    "acks": "all",
    "enable_idempotence": True,
    "max_in_flight_requests_per_connection": 5,
    "linger_ms": 20,
    "batch_size": 512 * 1024,
    "allow_auto_create_topics": False,  # ensure_topic() creates it with the right partitions
    "max_request_size": 4 * 1024 * 1024,
    "delivery_timeout_ms": 15 * 60 * 1000,
    "request_timeout_ms": 30_000,
    "max_block_ms": 10_000,
    "retry_backoff_ms": 200,
    "reconnect_backoff_ms": 200,
    "reconnect_backoff_max_ms": 5_000,
}


def tracking_name(topic: str) -> str:
    """The tracking-table row that holds the relay's position for ``topic``."""
    return f"relay:{topic}"


def tracking_recorder(app: JourneyApplication) -> TrackingRecorder:
    """The store's recorder as a tracking recorder (the SQLite process recorder is one)."""
    recorder = app.recorder
    if not isinstance(recorder, TrackingRecorder):
        raise TypeError(f"{type(recorder).__name__} cannot record the relay's position (no tracking table)")
    return recorder


def published_position(app: JourneyApplication, topic: str) -> int:
    """The last store position the relay confirmed published to ``topic`` (0: none yet)."""
    return tracking_recorder(app).max_tracking_id(tracking_name(topic)) or 0


@dataclass(slots=True)
class RelayProgress:
    published: int  # events confirmed by the broker in this run (redeliveries included)
    batches: int
    position: int  # the tracked position
    head: int  # the store's head when last looked at
    elapsed: float
    send_failures: int = 0  # batches sent again after a producer error
    waiting: bool = False  # True while the broker is not acknowledging

    @property
    def rate(self) -> float:
        return self.published / self.elapsed if self.elapsed > 0 else 0.0


@dataclass(slots=True)
class RelaySummary:
    topic: str
    published: int
    batches: int
    start_position: int
    position: int
    head: int
    seconds: float
    send_failures: int
    #: Events sent in the last batch but not confirmed when the relay stopped (re-sent next start).
    unconfirmed: int = 0
    stopped: bool = False

    @property
    def rate(self) -> float:
        return self.published / self.seconds if self.seconds > 0 else 0.0


class _Abandoned(Exception):
    """The stop flag was set while the broker could not confirm the batch."""


@dataclass
class Relay:
    app: JourneyApplication
    bootstrap: str
    topic: str = "journey.events"
    partitions: int = 4
    #: -1: the broker's default.replication.factor (Kafka 2.4+).
    replication_factor: int = -1
    batch_size: int = DEFAULT_BATCH
    poll_interval: float = POLL_INTERVAL
    progress_every: float = PROGRESS_EVERY
    #: Seconds a stop request waits for the broker to confirm the batch in hand.
    stop_grace: float = 10.0
    producer_config: dict[str, Any] = field(default_factory=dict)
    on_progress: Callable[[RelayProgress], None] | None = None
    #: Add the hash chain to every message (headers chain_customer, chain_prev, chain_hash,
    #: chain_state: see ledger/chain.py), so that a consumer can verify the topic. Off by default:
    #: it roughly doubles the message size.
    chain: bool = False
    #: Test hook: called with the batch number after the flush, before the position is recorded.
    after_flush: Callable[[int], None] | None = None
    #: Read the store and build the messages in a child process (consumers/relay_reader.py).
    #: None: when the backlog at the start is READ_AHEAD_MIN events or more. Only a plain
    #: SQLite store in a file can; any other store is read by the relay itself.
    read_ahead: bool | None = None
    _reader: ReadAhead | None = field(default=None, init=False, repr=False)
    _producer: Any = field(default=None, init=False, repr=False)
    #: The topic's partitions as the current producer knows them, and each customer's.
    _partitions: list[int] | None = field(default=None, init=False, repr=False)
    _partition_of: dict[bytes, int] = field(default_factory=dict, init=False, repr=False)

    # -- setup -------------------------------------------------------------------------------

    @property
    def tracking_name(self) -> str:
        return tracking_name(self.topic)

    def position(self) -> int:
        return published_position(self.app, self.topic)

    def ensure_topic(self, stop: threading.Event | None = None) -> bool:
        """Create the topic with ``partitions`` partitions unless it exists; retries until the
        broker answers. Returns False only if ``stop`` was set first."""
        from kafka import KafkaAdminClient
        from kafka.errors import TopicAlreadyExistsError

        stop = stop or threading.Event()
        delay = 0.5
        while not stop.is_set():
            admin: Any = None
            try:
                admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, client_id="journey-relay-admin",
                                         request_timeout_ms=15_000)
                try:
                    # Kept forever: the topic is a replayable log (rebuilds, as-of reads), and
                    # its message timestamps are recorded_at, which time-based retention would
                    # otherwise take for the age of the message.
                    admin.create_topics({self.topic: {"num_partitions": self.partitions,
                                                      "replication_factor": self.replication_factor,
                                                      "configs": {"retention.ms": "-1"}}},
                                        wait_for_metadata=True)
                    log.info("created topic %s with %d partitions", self.topic, self.partitions)
                except TopicAlreadyExistsError:
                    self._check_partitions(admin)
                return True
            except Exception as error:
                log.warning("cannot create/check topic %s on %s (%r); retrying in %.1f s",
                            self.topic, self.bootstrap, error, delay)
                stop.wait(delay)
                delay = min(delay * 2, 30.0)
            finally:
                if admin is not None:
                    admin.close()
        return False

    def _check_partitions(self, admin: Any) -> None:
        try:
            described = admin.describe_topics([self.topic])
            count = len(described[0]["partitions"])
        except Exception as error:  # only a diagnostic: the topic exists, go on
            log.warning("topic %s exists; could not read its partition count (%r)", self.topic, error)
            return
        if count != self.partitions:
            log.warning("topic %s exists with %d partitions, not %d: left as it is (changing the "
                        "count would move customers to other partitions and break their order)",
                        self.topic, count, self.partitions)

    def _new_producer(self) -> Any:
        from kafka import KafkaProducer

        return KafkaProducer(bootstrap_servers=self.bootstrap, client_id="journey-relay",
                             **{**PRODUCER_CONFIG, **self.producer_config})

    def _drop_producer(self, timeout: float) -> None:
        producer, self._producer = self._producer, None
        self._partitions = None  # a new producer reads the topic's partitions again
        if producer is not None:
            try:
                producer.close(timeout=timeout)
            except Exception as error:
                log.warning("closing the producer failed: %r", error)

    def close(self) -> None:
        self._drop_producer(timeout=10.0)

    # -- the loop ----------------------------------------------------------------------------

    def run(self, *, follow: bool = True, stop: threading.Event | None = None) -> RelaySummary:
        """Publish from the tracked position on. ``follow=False``: stop at the store's head as it
        was when the run started. ``follow=True``: keep polling until ``stop`` is set."""
        stop = stop or threading.Event()
        started = time.monotonic()
        start_position = position = self.position()
        recorder = self.app.recorder
        tracking = tracking_recorder(self.app)
        head = recorder.max_notification_id() or 0
        stop_at = None if follow else head
        published = batches = failures = unconfirmed = 0
        last_report = started
        log.info("relaying to %s on %s from position %d (store head %d)%s", self.topic, self.bootstrap,
                 position, head, "" if follow else ", once")

        reported = (-1, -1)  # (published, head) at the last report: an idle relay stays quiet

        def progress(force: bool = False, waiting: bool = False) -> None:
            nonlocal last_report, reported
            now = time.monotonic()
            if not force and now - last_report < self.progress_every:
                return
            if not force and not waiting and reported == (published, head):
                return
            span = now - last_report
            interval_rate = (published - max(reported[0], 0)) / span if span > 0 else 0.0
            last_report, reported = now, (published, head)
            p = RelayProgress(published, batches, position, head, now - started, failures, waiting)
            log.info("published %d, position %d of %d, %.0f events/s over the last %.0f s%s", p.published,
                     p.position, p.head, interval_rate, span,
                     " (waiting for the broker)" if waiting else "")
            if self.on_progress is not None:
                self.on_progress(p)

        if not self.ensure_topic(stop):
            return RelaySummary(self.topic, 0, 0, start_position, position, head,
                                time.monotonic() - started, 0, stopped=True)
        self._start_reader(position, head, stop_at)
        try:
            while not stop.is_set():
                if stop_at is not None and position >= stop_at:
                    break
                # Personal fields leave the store still encrypted (docs/privacy.md).
                batch = self._next_batch(position, stop_at)
                if not batch:
                    if stop_at is not None:
                        break
                    head = recorder.max_notification_id() or head
                    progress()
                    stop.wait(self.poll_interval)
                    continue
                extra = (hash_chain.kafka_headers(recorder, batch[0].position, batch[-1].position)
                         if self.chain else None)
                try:
                    failures += self._publish(batch, stop, lambda: progress(waiting=True), extra)
                except _Abandoned:
                    unconfirmed = len(batch)
                    log.warning("stopped before the broker confirmed %d events after position %d; "
                                "they are sent again on the next start", len(batch), position)
                    break
                batches += 1
                if self.after_flush is not None:
                    self.after_flush(batches)
                position = batch[-1].position
                tracking.insert_tracking(Tracking(self.tracking_name, position))
                published += len(batch)
                head = max(head, position)
                progress()
        finally:
            self._stop_reader()
            self._drop_producer(timeout=self.stop_grace if unconfirmed else 10.0)
        seconds = time.monotonic() - started
        progress(force=True)
        return RelaySummary(self.topic, published, batches, start_position, position, head, seconds,
                            failures, unconfirmed, stopped=stop.is_set())

    def _start_reader(self, position: int, head: int, stop_at: int | None) -> None:
        wanted = self.read_ahead if self.read_ahead is not None else head - position >= READ_AHEAD_MIN
        if wanted and self._plain() and isinstance(self.app.recorder, JourneySQLiteRecorder):
            try:
                self._reader = relay_reader.start(self.app.recorder, position, stop_at, self.batch_size)
            except Exception as error:  # no process to be had (a daemonic parent cannot have one,
                # the system refused a fork): the relay reads the store itself, as it can
                log.warning("cannot start the read-ahead process (%r); reading the store in the relay",
                            error)
            if self._reader is not None:
                log.info("reading the store in process %d", self._reader.process.pid)

    def _stop_reader(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()

    def _next_batch(self, position: int, stop_at: int | None) -> list[Outgoing]:
        """The batch after ``position``: from the read-ahead process while it has one, then
        read here (the process is done once it caught up with the store, or has failed)."""
        if self._reader is not None:
            items = self._reader.take(position)
            if items is not None:
                return self._finished(items)
            self._stop_reader()
        return self._outgoing(self._read(position, stop_at))

    def _read(self, position: int, stop_at: int | None) -> Sequence[Notification] | list[Row]:
        """The next batch after ``position``: rows as they are from a plain SQLite store (no
        Notification and UUID per row), else the recorder's notifications."""
        recorder = self.app.recorder
        if isinstance(recorder, JourneySQLiteRecorder) and self._plain():
            return recorder.select_rows(position, self.batch_size, stop_at)
        return recorder.select_notifications(position, self.batch_size, stop=stop_at,
                                             inclusive_of_start=False)

    def _plain(self) -> bool:
        """The stored states are JSON as the transcoder wrote them (no cipher, no compressor)."""
        mapper = self.app.mapper
        return mapper.cipher is None and mapper.compressor is None

    def _finished(self, items: list[relay_reader.Item]) -> list[Outgoing]:
        """Messages as :func:`relay_reader.items_of` left them, with the rows it could not
        make into messages decoded here, with the application."""
        return [Outgoing(p, item if len(item) == 4 else self._decoded(item))
                for p, item in items]

    def _decoded(self, row: Row) -> Message:
        """The message of a row whose stored bytes alone cannot make it."""
        position, hex_id, version, topic, state = row
        return self._message(Notification(id=position, originator_id=UUID(hex_id),
                                          originator_version=version, topic=topic, state=state))

    def _message(self, n: Notification) -> Message:
        """The message of a stored event, decoded (still sealed) and encoded again. An event
        that cannot be decoded goes out as what it is: a stand-in saying so at its position
        (projections/readable.py), which every reader of the topic quarantines there, as the
        store's readers do; the relay neither stops at it nor leaves a gap in the positions."""
        try:
            return encode_event(decode_sealed(self.app, n))
        except Exception as error:  # whatever the stored bytes make the mapper raise
            reason = f"cannot be decoded: {type(error).__name__}: {str(error)[:200]}"
            log.error("position %d %s; published as such", n.id, reason)
            stand_in = readable.undecodable(n.id, n.originator_id, n.originator_version, reason)
            fact = {**stand_in.fact, "customer_uuid": str(n.originator_id), "type": readable.UNDECODABLE,
                    "event_id": ""}
            return encode_event(replace(stand_in, fact=fact, recorded_at=datetime.now(UTC)))

    def _outgoing(self, notifications: Sequence[Notification] | list[Row]) -> list[Outgoing]:
        """The batch's messages. A plain store's JSON states are spliced into the values as
        they are (consumers/wire.py); a state the bytes alone cannot say enough about, or a
        store whose mapper encrypts or compresses, is decoded (still sealed) and re-encoded."""
        if notifications and isinstance(notifications[0], tuple):
            return self._finished(relay_reader.items_of(notifications))  # type: ignore[arg-type]
        plain = self._plain()
        batch = []
        for n in notifications:
            assert not isinstance(n, tuple)
            message = (encode_stored(n.id, str(n.originator_id), n.originator_version, n.state)
                       if plain else None)
            batch.append(Outgoing(n.id, message or self._message(n)))
        return batch

    def _publish(self, batch: Sequence[Outgoing], stop: threading.Event,
                 waiting: Callable[[], None], extra: dict[int, list[tuple[str, bytes]]] | None = None) -> int:
        """Send the batch and wait until the broker acknowledged all of it. Returns the number
        of failed attempts (each followed by a re-send of the whole batch with a new producer).
        Raises _Abandoned if ``stop`` is set while the broker cannot confirm."""
        from kafka.errors import KafkaError, KafkaTimeoutError

        messages = [item.message for item in batch]
        if extra:
            messages = [(k, v, h + extra.get(item.position, []), t)
                        for (k, v, h, t), item in zip(messages, batch, strict=True)]
        failures = 0
        delay = 0.5
        while True:
            errors: list[BaseException] = []
            futures: list[Any] = []
            try:
                if self._producer is None:
                    self._producer = self._new_producer()
                producer = self._producer
                for key, value, headers, timestamp_ms in messages:
                    futures.append(self._send(producer, key, value, headers, errors, stop, waiting,
                                              timestamp_ms))
                self._flush(producer, stop, waiting)
            except (KafkaError, OSError) as error:
                if isinstance(error, KafkaTimeoutError) and stop.is_set():
                    raise _Abandoned from error
                errors.append(error)
            if not errors:
                return failures
            failures += 1
            self._check_order(batch, futures)
            log.error("publishing %d events after position %d failed (%d errors, first: %r); "
                      "sending the batch again in %.1f s with a new producer", len(batch),
                      batch[0].position - 1, len(errors), errors[0], delay)
            # Wait for what the old producer still has in flight before re-sending, so no stale
            # copy lands after the new one.
            self._drop_producer(timeout=30.0)
            if stop.wait(delay):
                raise _Abandoned
            delay = min(delay * 2, 30.0)

    def _check_order(self, batch: Sequence[Outgoing], futures: Sequence[Any]) -> None:
        """After a failed attempt: a customer whose earlier event failed while a later one was
        written now has them out of order on the topic (see the module docstring)."""
        failed: dict[str, int] = {}
        broken: dict[str, tuple[int, int]] = {}
        for item, future in zip(batch, futures, strict=False):
            customer = item.message[0].decode()
            if future.failed():
                failed.setdefault(customer, item.position)
            elif future.succeeded() and customer in failed and customer not in broken:
                broken[customer] = (failed[customer], item.position)
        if broken:
            sample = ", ".join(f"{c} (position {a} failed, {b} written)" for c, (a, b) in
                               list(broken.items())[:5])
            log.error("ORDER BROKEN on %s for %d customers: %s; consumers that drop position <= last "
                      "will miss the failed events: replay these customers from the store",
                      self.topic, len(broken), sample)

    def _partition(self, producer: Any, key: bytes) -> int | None:
        """The partition kafka-python's default partitioner would choose for ``key``, computed
        once per customer: its pure-Python murmur2 was the largest single cost of a send. None
        (kafka-python partitions, waiting for metadata as it does) until the producer has the
        topic's partitions."""
        partitions = self._partitions
        if partitions is None:
            known = producer._metadata.partitions_for_topic(self.topic)
            if not known:
                return None
            partitions = self._partitions = sorted(known)
            self._partition_of.clear()
        partition = self._partition_of.get(key)
        if partition is None:
            partition = self._partition_of[key] = partition_for(key, partitions)
        return partition

    def _send(self, producer: Any, key: bytes, value: bytes, headers: list[tuple[str, bytes]],
              errors: list[BaseException], stop: threading.Event, waiting: Callable[[], None],
              timestamp_ms: int | None = None) -> Any:
        from kafka.errors import KafkaTimeoutError

        since = time.monotonic()
        while True:
            try:
                future = producer.send(self.topic, key=key, value=value, headers=headers,
                                       partition=self._partition(producer, key),
                                       timestamp_ms=timestamp_ms)
                future.add_errback(errors.append)
                return future
            except KafkaTimeoutError:
                # No metadata (broker unreachable) or the buffer is full: nothing was queued,
                # so trying the same message again keeps the order.
                if stop.is_set() and time.monotonic() - since >= self.stop_grace:
                    raise
                log.warning("broker %s not accepting sends for %.0f s; still trying", self.bootstrap,
                            time.monotonic() - since)
                waiting()

    def _flush(self, producer: Any, stop: threading.Event, waiting: Callable[[], None]) -> None:
        from kafka.errors import KafkaTimeoutError

        since = time.monotonic()
        while True:
            try:
                producer.flush(timeout=self.stop_grace if stop.is_set() else 5.0)
                return
            except KafkaTimeoutError:
                if stop.is_set():
                    raise
                log.warning("broker %s has not acknowledged the batch for %.0f s; the producer keeps "
                            "retrying", self.bootstrap, time.monotonic() - since)
                waiting()



@dataclass(frozen=True, slots=True)
class Outgoing:
    """One event of a batch: its store position and its message."""

    position: int
    message: Message


def partition_for(key: bytes, partitions: Sequence[int]) -> int:
    """kafka-python's DefaultPartitioner (the Java client's too) for a keyed message."""
    return partitions[(int(murmur2(key)) & 0x7FFFFFFF) % len(partitions)]
