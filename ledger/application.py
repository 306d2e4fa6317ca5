"""The eventsourcing application behind the ledger, and how a stored event becomes a fact again."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, cast
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import Mapper, Notification, Transcoder

from domain import personal
from ledger.crypto_mapper import CryptoMapper, unseal
from ledger.decoding import Row as Row
from ledger.decoding import StoredFact as StoredFact
from ledger.decoding import decode_states
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

    def close(self) -> None:
        # The SQLite recorder checkpoints its WAL beside the writer (ledger/wal_checkpoint.py):
        # the copy in flight finishes before the store closes.
        wait = getattr(self.recorder, "wait_for_checkpoint", None)
        if wait is not None:
            wait()
        super().close()


def sqlite_env(path: str, cache_size: int = DEFAULT_CACHE_SIZE) -> dict[str, str]:
    """eventsourcing's settings for the SQLite store at ``path``, pinned against the environment.

    Single-row tracking makes a tracked position a high-water mark (a lower one is refused);
    with ``SINGLE_ROW_TRACKING=n`` left in a shell, a consumer's position could go backwards
    and facts be read twice. Uuid originator ids and table creation are what the recorder's
    schema assumes, so they are pinned too.
    """
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": path,
        "SQLITE_LOCK_TIMEOUT": "30",
        "SINGLE_ROW_TRACKING": "y",
        "ORIGINATOR_ID_TYPE": "uuid",
        "CREATE_TABLE": "y",
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


def decode_notification(app: JourneyApplication, notification: Notification) -> StoredFact:
    """Turn one notification-log entry into a fact (the mapper's decoding and decryption)."""
    return decode_notifications(app, [notification])[0]


def decode_notifications(app: JourneyApplication, notifications: Sequence[Notification]
                         ) -> list[StoredFact]:
    """Log entries as facts, as :func:`decode_notification` gives them, decoded in bulk.

    The stored state is read directly (what ``CryptoMapper.to_domain_event`` does, without
    eventsourcing's domain-event objects: they were half a projection's decoding time), and
    the keys of the entries' records are fetched in one query instead of one per record
    (ledger/decoding.py). A reader of many entries reads them as rows (:func:`decode_rows`)."""
    if not _fast(app.mapper):
        return [_stored_fact(n, app.mapper.to_domain_event(n)) for n in notifications]
    return decode_states(app.keys, [(n.id, n.originator_id, n.originator_version, n.topic, n.state)
                                    for n in notifications])


def decode_rows(app: JourneyApplication, rows: Sequence[Row]) -> list[StoredFact]:
    """Stored rows (a recorder's ``select_rows``) as facts, as :func:`decode_notifications`
    gives them: without a ``Notification`` and a ``UUID`` per row, which were most of the
    read of the log (a ``UUID`` is made once per stream and batch here)."""
    if not _fast(app.mapper):
        return decode_notifications(app, [
            Notification(id=r[0], originator_id=r[1] if isinstance(r[1], UUID) else UUID(r[1]),
                         originator_version=r[2], topic=r[3], state=r[4]) for r in rows])
    return decode_states(app.keys, rows)


def decodes_in_bulk(app: JourneyApplication) -> bool:
    """Whether the application's stored rows are decoded by ledger/decoding.py with the keys
    alone (so another process can decode them, given the keys)."""
    return _fast(app.mapper)


def _fast(mapper: Mapper[UUID]) -> bool:
    """Whether the stored state is the transcoder's JSON as is (no compressor, no cipher of the
    whole state), decoded by ledger/decoding.py; otherwise the mapper decodes each entry."""
    return isinstance(mapper, CryptoMapper) and mapper.cipher is None and mapper.compressor is None


def _stored_fact(notification: Notification, event: Any) -> StoredFact:
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
    return _stored_fact(notification, Mapper.to_domain_event(app.mapper, notification))


def open_fact(app: JourneyApplication, sf: StoredFact) -> StoredFact:
    """A sealed fact (from Kafka) with its personal part decrypted by the store's keys, or
    marked erased when the person was forgotten."""
    if personal.ENVELOPE not in sf.fact and sf.fact.get("type") != "customer.forgotten":
        return sf
    return replace(sf, fact=unseal(sf.fact, app.keys))


def history_of(app: JourneyApplication) -> Callable[[str], list[StoredFact]]:
    """Reads one customer's facts from the event store, in log order: what a projection needs
    when it must rebuild a record (an unmerge, a merge whose other half lives elsewhere)."""
    rows_of = getattr(app.recorder, "fact_rows_of", None)  # the stores' recorders read rows

    def history(customer_id: str) -> list[StoredFact]:
        if rows_of is None:
            return decode_notifications(app, app.index.facts_of(UUID(customer_id)))
        return decode_rows(app, rows_of(UUID(customer_id)))
    return history


def sealed_history_of(app: JourneyApplication) -> Callable[[str], list[StoredFact]]:
    """Like :func:`history_of`, with the personal parts still sealed: a reader that keeps
    only some facts (an as-of view keeps those before T) filters on the public part first and
    opens only what it keeps (:func:`opener`). Decryption and eventsourcing's domain-event
    objects were two thirds of an as-of view's time; the stored state is decoded directly."""
    mapper = app.mapper
    if mapper.cipher is not None or mapper.compressor is not None:
        def sealed(n: Notification) -> StoredFact:
            return decode_sealed(app, n)
    else:
        decode = mapper.transcoder.decode

        def sealed(n: Notification) -> StoredFact:
            state = decode(n.state)
            return StoredFact(position=n.id, stream_id=cast(UUID, n.originator_id),
                              stream_version=n.originator_version, recorded_at=state["timestamp"],
                              fact=state["fact"])

    def history(customer_id: str) -> list[StoredFact]:
        return [sealed(n) for n in app.index.facts_of(UUID(customer_id))]
    return history


def opener(app: JourneyApplication) -> Callable[[StoredFact], StoredFact]:
    """Opens a sealed fact (see :func:`sealed_history_of`) with the store's keys."""
    def open_one(sf: StoredFact) -> StoredFact:
        return open_fact(app, sf)
    return open_one


MERGE_MARKERS = ("customer.merged", "customer.unmerged")


@dataclass(frozen=True, slots=True)
class RecordHistory:
    #: The facts, in store-position order.
    facts: list[StoredFact]
    #: The records they belong to: the root and every record merged into it (and not split off).
    members: set[str]
    #: Records merged in and split off again: only their marker events are kept.
    split_off: set[str]


def record_history(read: Callable[[str], list[StoredFact]], root: str, keep: Callable[[StoredFact], bool],
                   without: str | None = None,
                   open_kept: Callable[[StoredFact], StoredFact] | None = None) -> RecordHistory:
    """``root``'s kept facts with those of every record merged into it (by the kept facts) and
    not split off again, ``without``'s excluded: what the projections fold after an unmerge and
    what an as-of view folds (one traversal, so both agree on who belongs to whom)."""
    facts: dict[int, StoredFact] = {}
    members: set[str] = set()
    split_off: set[str] = set() if without is None else {without}
    todo = [root]
    while todo:
        member = todo.pop()
        if member in members or member in split_off:
            continue
        members.add(member)
        joined: dict[str, str] = {}
        for sf in read(member):
            if not keep(sf):
                continue
            facts[sf.position] = sf
            if sf.fact["type"] in MERGE_MARKERS:
                joined[sf.fact["data"]["from"]] = sf.fact["type"]  # log order: the last one wins
        for other, last in joined.items():
            if last == "customer.merged":
                todo.append(other)
            else:
                split_off.add(other)
    kept = [facts[p] for p in sorted(facts)
            if facts[p].fact["customer_uuid"] not in split_off or facts[p].fact["type"] in MERGE_MARKERS]
    if open_kept is not None:  # ``read`` gave sealed facts: ``keep`` and the traversal use public fields
        kept = [open_kept(sf) for sf in kept]
    return RecordHistory(kept, members, split_off)
