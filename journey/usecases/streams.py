"""The Kafka loops and the dead-letter topic: ingest touchpoints, relay events, replay letters.

``ingest`` records the raw facts of the touchpoints topic (the other door besides
:mod:`journey.usecases.recording`: it writes the consumer offsets in the same store transaction,
docs/kafka.md), ``relay`` publishes every recorded event to the events topic; both run until
``stop`` is set (or, ``once``, until caught up). Brokers and topics not given are the
settings'. Progress, fault pauses and the stop flag are the caller's: an entrance decides how
to show them and which signals stop a loop.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from consumers import dlq
from consumers.kafka_ingest import DEFAULT_GROUP, DEFAULT_MAX_RECORDS, IngestStats, KafkaIngest, tracking_name
from consumers.kafka_projector import ProjectorStats, run_projector
from consumers.relay import DEFAULT_BATCH, Relay, RelaySummary
from consumers.routing import DEFAULT_GROUP as ROUTE_GROUP
from consumers.routing import DEFAULT_MAX_RECORDS as ROUTE_MAX_RECORDS
from consumers.routing import KafkaRouter, RouteStats
from journey.analytics.snapshots import PartitionPublisher, analytics_dir, dataset_dir
from journey.system import System


class NoDeadLetterTopic(Exception):
    """The dead-letter topic cannot be created (no broker, or a cluster that cannot hold it)."""


@dataclass(frozen=True, slots=True)
class Ingested:
    stats: IngestStats
    topic: str
    dlq_topic: str


def ingest(system: System, stop: threading.Event, *, bootstrap: str | None = None,
           topic: str | None = None, dlq_topic: str | None = None, group: str = DEFAULT_GROUP,
           max_records: int = DEFAULT_MAX_RECORDS, once: bool = False, routed: bool = False,
           on_progress: Callable[[IngestStats], None] | None = None,
           before_commit: Callable[[], None] | None = None) -> Ingested:
    """Record the touchpoints topic's facts until ``stop`` is set (``once``: until caught up
    with the end offsets seen at the start); a message that is not a valid fact goes to the
    dead-letter topic, which is created first. ``routed``: the routing step's topic
    (``journey route``) instead of the channels' one. Raises :class:`NoDeadLetterTopic`."""
    from kafka.errors import KafkaError

    settings = system.settings
    bootstrap = bootstrap or settings.kafka_bootstrap
    topic = topic or (settings.routed_topic if routed else settings.touchpoints_topic)
    dlq_topic = dlq_topic or settings.dlq_topic
    try:
        dlq.ensure_topic(bootstrap, dlq_topic, partitions=1)
    except KafkaError as error:
        raise NoDeadLetterTopic(f"cannot create the dead-letter topic {dlq_topic} on {bootstrap}: "
                                f"{error}") from error
    loop = KafkaIngest(system.ledger, bootstrap=bootstrap, topic=topic, dlq_topic=dlq_topic,
                       group=group, max_records=max_records, on_progress=on_progress,
                       before_commit=before_commit, parse=system.parse)
    try:
        stats = loop.run(stop, once=once)
    finally:
        loop.close()
    return Ingested(stats, topic, dlq_topic)


@dataclass(frozen=True, slots=True)
class Routed:
    stats: RouteStats
    topic: str
    routed_topic: str
    partitions: int
    dlq_topic: str


def route(system: System, stop: threading.Event, *, bootstrap: str | None = None,
          topic: str | None = None, routed_topic: str | None = None, partitions: int | None = None,
          dlq_topic: str | None = None, group: str = ROUTE_GROUP, max_records: int = ROUTE_MAX_RECORDS,
          once: bool = False, on_progress: Callable[[RouteStats], None] | None = None,
          before_commit: Callable[[], None] | None = None) -> Routed:
    """Key the touchpoints by the record each will be written to, until ``stop`` is set
    (``once``: until caught up). The routed and dead-letter topics are created when missing
    (the routed one with ``partitions``). Raises :class:`NoDeadLetterTopic`."""
    from kafka.errors import KafkaError

    settings = system.settings
    bootstrap = bootstrap or settings.kafka_bootstrap
    topic = topic or settings.touchpoints_topic
    routed_topic = routed_topic or settings.routed_topic
    dlq_topic = dlq_topic or settings.dlq_topic
    wanted = partitions or settings.routed_partitions
    try:
        dlq.ensure_topic(bootstrap, dlq_topic, partitions=1)
        dlq.ensure_topic(bootstrap, routed_topic, partitions=wanted)
    except KafkaError as error:
        raise NoDeadLetterTopic(f"cannot create the topics {routed_topic} and {dlq_topic} on "
                                f"{bootstrap}: {error}") from error
    recorder = system.app.recorder
    routed = routed_topic

    def written(partition: int) -> int | None:
        done: int | None = recorder.max_tracking_id(tracking_name(routed, partition))  # type: ignore[attr-defined]
        return done

    loop = KafkaRouter(system.app.index, written, bootstrap=bootstrap, topic=topic, routed_topic=routed_topic,
                       dlq_topic=dlq_topic, group=group, transactional_id=group, max_records=max_records,
                       parse=system.parse, on_progress=on_progress,
                       before_commit=before_commit)
    try:
        stats = loop.run(stop, once=once)
    finally:
        loop.close()
    return Routed(stats, topic, routed_topic, loop.partitions, dlq_topic)


def project_from_kafka(system: System, stop: threading.Event, *, bootstrap: str | None = None,
                       topic: str | None = None, group: str = "journey-projections", once: bool = False,
                       on_progress: Callable[[ProjectorStats], None] | None = None,
                       before_commit: Callable[[], None] | None = None) -> ProjectorStats:
    """Consume the events topic into one DuckDB file per partition (distributed mode's
    projectors), until ``stop`` is set (``once``: until caught up), exporting each file's
    analyst snapshot into the partitioned dataset every ``JOURNEY_EXPORT_INTERVAL`` seconds
    (docs/analytics.md)."""
    settings = system.settings
    publisher = PartitionPublisher(dataset_dir(analytics_dir(settings)), settings.export_interval)
    return run_projector(
        system.app, bootstrap=bootstrap or settings.kafka_bootstrap,
        topic=topic or settings.events_topic, directory=settings.partitions_dir,
        group=group, stop=stop.is_set, once=once, on_progress=on_progress,
        before_commit=before_commit, rules=settings.rules, publisher=publisher,
        parallel=settings.parallel)


def relay(system: System, stop: threading.Event, *, bootstrap: str | None = None,
          topic: str | None = None, batch: int = DEFAULT_BATCH, once: bool = False,
          read_ahead: bool | None = None, after_flush: Callable[[int], None] | None = None
          ) -> RelaySummary:
    """Publish every recorded event from the topic's recorded position on, following the store
    until ``stop`` is set (``once``: up to the store's head as it was at the start)."""
    settings = system.settings
    loop = Relay(system.app, bootstrap=bootstrap or settings.kafka_bootstrap,
                 topic=topic or settings.events_topic, partitions=settings.partitions,
                 batch_size=batch, after_flush=after_flush, read_ahead=read_ahead)
    try:
        return loop.run(follow=not once, stop=stop)
    finally:
        loop.close()


@dataclass(frozen=True, slots=True)
class DeadLetters:
    entries: list[dlq.DeadLetter]
    dlq_topic: str


def dead_letters(system: System, *, bootstrap: str | None = None, dlq_topic: str | None = None,
                 unique: bool = True) -> DeadLetters:
    """Every dead letter from the beginning of the topic (``unique=False``: also the copies a
    crash may leave)."""
    dlq_topic = dlq_topic or system.settings.dlq_topic
    entries = dlq.read_dead_letters(bootstrap or system.settings.kafka_bootstrap, dlq_topic,
                                    unique=unique)
    return DeadLetters(entries, dlq_topic)


@dataclass(frozen=True, slots=True)
class Resent:
    sent: int
    entries: list[dlq.DeadLetter]


def resend(system: System, offsets: Sequence[str], *, bootstrap: str | None = None,
           dlq_topic: str | None = None, topic: str | None = None) -> Resent:
    """Send the dead letters at ``offsets`` (OFFSET or PARTITION:OFFSET) as they are to
    ``topic`` (default: each one's source topic). Raises :class:`ValueError` for an offset
    that is not a dead letter's."""
    bootstrap = bootstrap or system.settings.kafka_bootstrap
    dlq_topic = dlq_topic or system.settings.dlq_topic
    chosen = dlq.select(dlq.read_dead_letters(bootstrap, dlq_topic, unique=False), offsets)
    return Resent(dlq.replay_entries(bootstrap, dlq_topic, chosen, topic=topic), chosen)


@dataclass(frozen=True, slots=True)
class Corrected:
    result: dlq.FileReplay
    topic: str


def resend_corrected(system: System, path: Path, *, bootstrap: str | None = None,
                     topic: str | None = None) -> Corrected:
    """Send the corrected facts of ``path`` (JSON Lines) to the touchpoints topic (default the
    settings'); the lines that are still not valid facts (judged as this ledger's ingest judges
    them) are not sent."""
    topic = topic or system.settings.touchpoints_topic
    with path.open("rb") as handle:
        result = dlq.replay_lines(bootstrap or system.settings.kafka_bootstrap, topic, handle,
                                  origin=path.name, parse=system.parse)
    return Corrected(result, topic)
