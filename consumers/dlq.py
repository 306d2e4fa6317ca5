"""The dead-letter topic of the ingest consumer: read it, and send its facts back for another try.

A DLQ entry is the original message (key, value = the original bytes, headers) plus the headers
``dlq.reason``, ``dlq.source_topic``, ``dlq.source_partition``, ``dlq.source_offset`` (see
``consumers.kafka_ingest``). A crash of the ingest consumer can leave two copies of an entry;
``(source topic, source partition, source offset)`` identifies it, and :func:`read_dead_letters`
keeps the first copy unless asked for all.

Re-submitting produces to the touchpoints topic again, where the ingest consumer judges the
fact anew: either DLQ entries as they are (the ledger's state was fixed meanwhile, say), or
corrected facts from a JSON Lines file. Re-submitting a fact twice is harmless: ``(source, id)``
is the ledger's idempotency key.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from io import IOBase
from typing import IO, Any, cast

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import TopicAlreadyExistsError

from consumers.jsonl_ingest import (
    FactParser,
    OverlongLine,
    RefusedFact,
    fact_parser,
    read_lines,
    split_lines,
    strip_bom,
    too_long,
)
from consumers.kafka_ingest import (
    DLQ_HEADERS,
    H_REASON,
    H_SOURCE_OFFSET,
    H_SOURCE_PARTITION,
    H_SOURCE_TOPIC,
    Headers,
)
from domain.errors import InvalidFact
from domain.limits import DEFAULT_LIMITS

#: Header naming the DLQ entry a re-submitted message came from ("topic:partition:offset").
H_REPLAYED_FROM = "journey.replayed_from"


@dataclass(slots=True)
class DeadLetter:
    partition: int
    offset: int
    reason: str
    source_topic: str
    source_partition: int
    source_offset: int
    key: bytes | None
    value: bytes | None
    #: The original message's headers (without the DLQ's own).
    headers: Headers = field(default_factory=list)
    timestamp_ms: int = 0

    @property
    def text(self) -> str:
        return self.value.decode("utf-8", "replace") if self.value is not None else ""

    @property
    def source(self) -> tuple[str, int, int]:
        return (self.source_topic, self.source_partition, self.source_offset)

    def as_json(self) -> dict[str, Any]:
        return {
            "dlq_partition": self.partition, "dlq_offset": self.offset, "reason": self.reason,
            "source_topic": self.source_topic, "source_partition": self.source_partition,
            "source_offset": self.source_offset,
            "key": self.key.decode("utf-8", "replace") if self.key is not None else None,
            "headers": {k: v.decode("utf-8", "replace") for k, v in self.headers},
            "text": self.text, "timestamp_ms": self.timestamp_ms,
        }


def _last(headers: Sequence[tuple[str, bytes]], name: str) -> str:
    for k, v in reversed(headers):
        if k == name:
            return v.decode("utf-8", "replace")
    return ""


def to_dead_letter(record: Any) -> DeadLetter:
    headers = list(record.headers or [])
    return DeadLetter(
        partition=record.partition,
        offset=record.offset,
        reason=_last(headers, H_REASON),
        source_topic=_last(headers, H_SOURCE_TOPIC),
        source_partition=int(_last(headers, H_SOURCE_PARTITION) or -1),
        source_offset=int(_last(headers, H_SOURCE_OFFSET) or -1),
        key=record.key,
        value=record.value,
        headers=[(k, v) for k, v in headers if k not in DLQ_HEADERS],
        timestamp_ms=record.timestamp,
    )


def ensure_topic(bootstrap: str, topic: str, partitions: int = 1) -> bool:
    """Create ``topic`` if missing (one partition keeps DLQ offsets unique); True if created.

    Replicated as the cluster replicates its topics (``default.replication.factor``): a dead
    letter is a fact nobody has recorded yet, and on a three-broker cluster a topic with a
    single replica would lose it with the one broker that holds it.
    """
    from kafka.errors import IncompatibleBrokerVersion

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="journey-dlq-admin")
    try:
        if topic in admin.list_topics():
            return False
        try:
            try:  # -1: the broker's default (KIP-464, Kafka 2.4 and later)
                admin.create_topics({topic: {"num_partitions": partitions, "replication_factor": -1}})
            except IncompatibleBrokerVersion:
                admin.create_topics({topic: {"num_partitions": partitions,
                                             "replication_factor": default_replication(admin)}})
        except TopicAlreadyExistsError:
            return False
        return True
    finally:
        admin.close()


def default_replication(admin: Any) -> int:
    """The ``default.replication.factor`` of the broker ``admin`` talks to (1 if unset)."""
    from kafka.admin import ConfigResource, ConfigResourceType

    brokers = admin.describe_cluster()["brokers"]
    broker = str(brokers[0]["broker_id"])
    described = admin.describe_configs(
        [ConfigResource(ConfigResourceType.BROKER, broker, {"default.replication.factor": None})])
    entry = described.get("broker", {}).get(broker, {}).get("default.replication.factor") or {}
    return int(entry.get("value") or 1)


def read_dead_letters(bootstrap: str, topic: str, *, unique: bool = True,
                      timeout: float = 30.0) -> list[DeadLetter]:
    """Every entry of the DLQ topic, from the beginning to the end offsets seen at the start.

    Reads without a consumer group (nothing is committed). With ``unique`` the second and later
    copies of an entry (same source topic, partition and offset) are left out.
    """
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             client_id="journey-dlq-reader", isolation_level="read_committed")
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return []
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        entries: list[DeadLetter] = []
        deadline = time.monotonic() + timeout
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic} did not reach its end offsets in {timeout:.0f} s")
            for records in consumer.poll(timeout_ms=500, max_records=5000).values():
                entries.extend(to_dead_letter(r) for r in records if r.offset < ends[
                    TopicPartition(r.topic, r.partition)])
    finally:
        consumer.close(autocommit=False)
    entries.sort(key=lambda e: (e.timestamp_ms, e.partition, e.offset))
    if not unique:
        return entries
    seen: set[tuple[str, int, int]] = set()
    kept = []
    for e in entries:
        if e.source not in seen:
            seen.add(e.source)
            kept.append(e)
    return kept


def select(entries: Sequence[DeadLetter], wanted: Iterable[str]) -> list[DeadLetter]:
    """Entries named ``OFFSET`` or ``PARTITION:OFFSET`` (DLQ coordinates); ValueError otherwise."""
    chosen = []
    for item in wanted:
        text = item.strip()
        if not text:
            continue
        part, sep, off = text.rpartition(":")
        try:
            offset = int(off)
            partition = int(part) if sep else None
        except ValueError:
            raise ValueError(f"not a DLQ offset: {text!r} (use OFFSET or PARTITION:OFFSET)") from None
        found = [e for e in entries
                 if e.offset == offset and (partition is None or e.partition == partition)]
        if not found:
            raise ValueError(f"no DLQ entry at {text}")
        if len(found) > 1:
            raise ValueError(f"DLQ offset {text} is in several partitions; use PARTITION:OFFSET")
        chosen.append(found[0])
    return chosen


def _producer(bootstrap: str) -> Any:
    return KafkaProducer(bootstrap_servers=bootstrap, client_id="journey-dlq-replay", acks="all")


def _send_all(producer: Any, sends: list[tuple[str, bytes | None, bytes | None, Headers]]) -> int:
    futures = [producer.send(topic, value=value, key=key, headers=headers)
               for topic, key, value, headers in sends]
    producer.flush(timeout=30)
    for future in futures:
        future.get(timeout=30)
    return len(futures)


def replay_entries(bootstrap: str, dlq_topic: str, entries: Sequence[DeadLetter],
                   topic: str | None = None) -> int:
    """Produce entries as they are (original key, bytes, headers) to ``topic`` (default: their
    source topic), each with a ``journey.replayed_from`` header."""
    producer = _producer(bootstrap)
    try:
        return _send_all(producer, [
            (topic or e.source_topic, e.key, e.value,
             [*[(k, v) for k, v in e.headers if k != H_REPLAYED_FROM],
              (H_REPLAYED_FROM, f"{dlq_topic}:{e.partition}:{e.offset}".encode())])
            for e in entries
        ])
    finally:
        producer.close(timeout=10)


@dataclass(slots=True)
class FileReplay:
    sent: int = 0
    #: (line number, reason) of lines that are still not valid facts; they are not sent.
    invalid: list[tuple[int, str]] = field(default_factory=list)


def replay_lines(bootstrap: str, topic: str, lines: Iterable[bytes] | IO[bytes],
                 origin: str = "", parse: FactParser | None = None) -> FileReplay:
    """Produce corrected facts (JSON Lines) to ``topic``; lines that still fail are not sent.

    The file is read as ``journey append`` reads one (a byte order mark, CRLF or CR-only line
    ends, over-long lines refused unread) and each line judged by the same contract and
    limits (``parse``: the ledger's settings, as the ingest consumer is given them), so what is
    sent is what the ingest consumer will accept.
    """
    out = FileReplay()
    sends: list[tuple[str, bytes | None, bytes | None, Headers]] = []
    parse = parse or fact_parser()
    source = read_lines(cast(IO[bytes], lines)) if isinstance(lines, IOBase) else lines
    for number, raw in enumerate(split_lines(source), start=1):
        if isinstance(raw, OverlongLine):
            out.invalid.append((number, too_long(raw.size, DEFAULT_LIMITS)))
            continue
        if isinstance(raw, RefusedFact):
            out.invalid.append((number, raw.reason))
            continue
        text = strip_bom(raw)
        line = (text if isinstance(text, bytes) else text.encode()).strip()
        if not line:
            continue
        try:
            parse(line)
        except InvalidFact as error:
            out.invalid.append((number, str(error)))
            continue
        headers = [(H_REPLAYED_FROM, f"{origin}:{number}".encode())] if origin else []
        sends.append((topic, None, line, headers))
    if sends:
        producer = _producer(bootstrap)
        try:
            out.sent = _send_all(producer, sends)
        finally:
            producer.close(timeout=10)
    return out
