"""The eventsourcing application behind the ledger, and how a stored event becomes a fact again."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, cast
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import Mapper, Notification, Transcoder

from domain import personal
from ledger.crypto_mapper import CryptoMapper, unseal
from ledger.index import WriteIndex
from ledger.keys import KeyRing, KeyStore
from ledger.transcoder import OrjsonTranscoder

#: Aggregates kept in memory between batches. A stale one (another writer appended) makes the
#: save fail with IntegrityError; the writer then drops the cache and retries the batch.
DEFAULT_CACHE_SIZE = 100_000


class JourneyApplication(Application[UUID]):
    name = "journey"

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        #: Per-customer keys of the personal data (ledger/keys.py); the mapper is built before
        #: the recorder, so the ring is bound to the store once the recorder exists.
        self.keys = KeyRing()
        super().__init__(env=env)
        self.keys.bind(cast(KeyStore, self.recorder))

    def construct_mapper(self) -> Mapper[UUID]:
        return CryptoMapper(self.construct_transcoder(), self.keys)

    def construct_transcoder(self) -> Transcoder:
        return OrjsonTranscoder()

    @property
    def index(self) -> WriteIndex:
        return cast(WriteIndex, self.recorder)


def sqlite_env(path: str, cache_size: int = DEFAULT_CACHE_SIZE) -> dict[str, str]:
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": path,
        "SQLITE_LOCK_TIMEOUT": "30",
        "APPLICATION_RECORDER_TOPIC": "ledger.sqlite_recorder:JourneySQLiteRecorder",
        "AGGREGATE_CACHE_MAXSIZE": str(cache_size),
        "AGGREGATE_CACHE_FASTFORWARD": "n",
        "DEEPCOPY_FROM_AGGREGATE_CACHE": "n",
    }
    return pinned(env)


def pinned(env: dict[str, str]) -> dict[str, str]:
    """Each key also under the application's prefix (JOURNEY_...).

    eventsourcing looks up ``JOURNEY_<KEY>`` in os.environ before ``<KEY>``; this project names
    its own variables JOURNEY_*, so a stray JOURNEY_SQLITE_DBNAME would otherwise win.
    """
    return {**env, **{f"{JourneyApplication.name.upper()}_{k}": v for k, v in env.items()}}


def open_application(env: Mapping[str, str]) -> JourneyApplication:
    return JourneyApplication(env=dict(env))


@dataclass(frozen=True, slots=True)
class StoredFact:
    """A recorded fact with where and when the ledger recorded it."""

    position: int  # the store's notification id: a total order with gaps
    stream_id: UUID
    stream_version: int
    recorded_at: datetime
    fact: dict[str, Any]


def decode_notification(app: JourneyApplication, notification: Notification) -> StoredFact:
    """Turn one notification-log entry into a fact (through the mapper: it owns decryption)."""
    event: Any = app.mapper.to_domain_event(notification)
    return StoredFact(
        position=notification.id,
        stream_id=cast(UUID, notification.originator_id),
        stream_version=notification.originator_version,
        recorded_at=event.timestamp,
        fact=event.fact,
    )


def decode_sealed(app: JourneyApplication, notification: Notification) -> StoredFact:
    """A log entry as a fact whose personal part stays encrypted (``$personal``): what leaves
    the store for Kafka, so a forgotten person's data is unreadable there too (docs/privacy.md)."""
    event: Any = Mapper.to_domain_event(app.mapper, notification)
    return StoredFact(
        position=notification.id,
        stream_id=cast(UUID, notification.originator_id),
        stream_version=notification.originator_version,
        recorded_at=event.timestamp,
        fact=event.fact,
    )


def open_fact(app: JourneyApplication, sf: StoredFact) -> StoredFact:
    """A sealed fact (from Kafka) with its personal part decrypted by the store's keys, or
    marked erased when the person was forgotten."""
    if personal.ENVELOPE not in sf.fact and sf.fact.get("type") != "customer.forgotten":
        return sf
    return replace(sf, fact=unseal(sf.fact, app.keys))


def history_of(app: JourneyApplication) -> Callable[[str], list[StoredFact]]:
    """Reads one customer's facts from the event store, in log order: what a projection needs
    when it must rebuild a record (an unmerge, a merge whose other half lives elsewhere)."""
    def history(customer_id: str) -> list[StoredFact]:
        return [decode_notification(app, n) for n in app.index.facts_of(UUID(customer_id))]
    return history
