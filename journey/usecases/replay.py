"""Rebuilding, comparing and re-running from the event store (docs/audit.md).

A rebuild projects every stored fact (or every record of the events topic) into a fresh
projections file; a diff compares the live file with a rebuild table by table; a decision
replay re-runs a recorded contact decision over the history the agent saw; an as-of read folds
one customer's facts up to an instant. All of them read the store (or Kafka), never the live
projections, so they answer the same whoever holds those.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from consumers.log_follower import DEFAULT_BATCH, Progress
from journey.exclusions import entries_in
from journey.policy import load_policies
from journey.system import System
from ledger.application import StoredFact
from replay import asof
from replay import decision as decisions
from replay import diff as differ
from replay import rebuild as rebuilder


def rebuild(system: System, *, source: Literal["store", "kafka"] = "store", into: Path | None = None,
            batch: int | None = None, bootstrap: str | None = None, topic: str | None = None,
            on_progress: Callable[[Progress], None] | None = None,
            on_read: Callable[[int], None] | None = None) -> rebuilder.RebuildResult:
    """Every projection from position zero into ``into`` (a new or empty directory; default a
    new ``rebuild-<timestamp>`` in the data directory), from the store or from the events topic
    (``bootstrap``/``topic``: default the settings'). ``on_read`` counts the records read from
    the topic. Raises :class:`replay.rebuild.RebuildError` (a non-empty target, an unreadable
    topic)."""
    settings = system.settings
    if into is None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        into = settings.data_dir / f"rebuild-{stamp}"
    if source == "kafka":
        return rebuilder.from_kafka(
            system.app, into, bootstrap=bootstrap or settings.kafka_bootstrap,
            topic=topic or settings.events_topic, batch=batch or DEFAULT_BATCH,
            on_progress=on_progress, on_read=on_read, rules=settings.rules)
    return rebuilder.from_store(system.app, into, batch=batch or rebuilder.REBUILD_BATCH,
                                on_progress=on_progress, rules=settings.rules,
                                parallel=settings.parallel)


class NoRebuild(LookupError):
    """A diff without --against, and no rebuild in the data directory to compare with."""


@dataclass(frozen=True, slots=True)
class Compared:
    live: Path
    other: Path
    result: differ.DiffResult


def compare(system: System, live: Path | None = None, against: Path | None = None) -> Compared:
    """The live projections (default the data directory's) compared with a rebuild: ``against``
    (a rebuild directory or its file), or the newest one in the data directory. Raises
    :class:`NoRebuild`, :class:`replay.diff.LockedError` (a file another process holds) or
    :class:`FileNotFoundError`."""
    live = live or system.settings.duckdb_path
    if against is not None:
        other = against / rebuilder.FILENAME if against.is_dir() else against
    else:
        found = sorted(system.settings.data_dir.glob(f"rebuild-*/{rebuilder.FILENAME}"))
        if not found:
            raise NoRebuild("no rebuild in the data directory")
        other = found[-1]
    return Compared(live, other, differ.diff(live, other))


class UnknownEvent(LookupError):
    pass


@dataclass(frozen=True, slots=True)
class DecisionReplayed:
    #: The recorded event the decision was replayed for.
    event: StoredFact
    replayed: decisions.Replayed


def replay_decision(system: System, event_id: str, policy: str | None = None) -> DecisionReplayed:
    """Re-run the recorded contact decision ``event_id`` (a contact.decided, or a contact that
    was made) with its policy version over the history recorded before it; ``policy`` (a file
    or a directory of versions) defaults to the settings'. Raises
    :class:`journey.policy.PolicyError` (the policy cannot be read), :class:`UnknownEvent`, or
    :class:`replay.decision.ReplayError` (not replayable)."""
    book = load_policies(policy or system.settings.policy)
    event = decisions.find_event(system.app, event_id)
    if event is None:
        raise UnknownEvent(f"no recorded event {event_id!r}")
    data_dir = system.settings.data_dir
    replayed = decisions.replay(system.app, event, book, lambda keys: entries_in(data_dir, keys))
    return DecisionReplayed(event, replayed)


class UnreadableTopic(LookupError):
    """The events topic cannot answer an as-of read (no broker, a topic missing or cut short)."""


def customer_at(system: System, key: str, at: datetime, axis: asof.Axis, *,
                limit: int | None = None, oldest: bool = True,
                source: Literal["store", "kafka"] = "store",
                bootstrap: str | None = None, topic: str | None = None) -> dict[str, Any] | None:
    """The customer document of whoever the identity key ``key`` names, folded from the store
    (or the events topic, ``source="kafka"``) as the ledger knew it at ``at`` (``axis``
    ``recorded``) or with what had happened by ``at`` (``occurred``); ``limit``: only the
    oldest (``oldest``; else the latest) ``limit`` timeline events and late facts. None when
    nobody was known (or seen) by then. Raises :class:`UnreadableTopic` when the topic cannot be read."""
    customer_id = asof.resolve(system.app, key)
    if customer_id is None:
        return None
    if source == "kafka":
        from replay.kafka_asof import as_of_kafka

        settings = system.settings
        try:
            result = as_of_kafka(system.app, customer_id, at, axis,
                                 bootstrap or settings.kafka_bootstrap, topic or settings.events_topic,
                                 rules=settings.rules)
        except LookupError as error:
            raise UnreadableTopic(str(error)) from error
        if not result.facts:
            return None
        doc = result.to_json()
        return doc if limit is None else asof.paged(doc, limit, oldest=oldest)
    if limit is not None:
        # The API's paged document (oldest N): a long history is answered from its checkpoint.
        return asof.document(system.app, customer_id, at, axis, limit, oldest=oldest,
                             rules=system.settings.rules)
    found = asof.as_of(system.app, customer_id, at, axis, rules=system.settings.rules)
    return found.to_json() if found.facts else None
