"""The write-side index: which facts are recorded, who owns each identity, which ids are merged.

It is written in the same transaction as the events it describes (the recorder receives it as
``index=IndexChanges``), so it can never disagree with the store, and it is read in bulk once
per batch. Everything in it can be rebuilt from the events; it exists so that the write path
answers "seen this fact?" and "whose phone is this?" without reading streams.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Protocol, TypeVar
from uuid import UUID

from eventsourcing.persistence import Notification

K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class CustomerRecord:
    kind: str  # "customer" | "prospect"
    customer_number: str | None
    merged_into: UUID | None


@dataclass(slots=True)
class IndexChanges:
    """What one batch adds to the index, applied with the batch's events."""

    #: (event_id, customer_id, stream_id, stream_version) of every recorded fact.
    facts: list[tuple[str, str, str, int]] = field(default_factory=list)
    #: event_id -> keyed content digest (ledger/fact_digest.py) of the facts a sender sent;
    #: the ledger's own facts have none.
    digests: dict[str, bytes] = field(default_factory=dict)
    #: identity key -> owning customer id (inserted or re-pointed).
    identities: dict[str, UUID] = field(default_factory=dict)
    #: identity key -> the owner the batch read (None: nobody). The recorder checks it under
    #: the write lock: if another writer changed an owner meanwhile, the batch fails with
    #: IntegrityError and is redone against the new state (never last-writer-wins).
    expected_owners: dict[str, UUID | None] = field(default_factory=dict)
    customers: dict[UUID, CustomerRecord] = field(default_factory=dict)
    #: New per-record keys (ledger/keys.py), inserted with a plain INSERT: a key created
    #: meanwhile by another writer fails the batch, which is retried with the stored key.
    keys: dict[UUID, bytes] = field(default_factory=dict)
    #: Records forgotten by this batch (customer.forgotten): their keys are destroyed, their
    #: identity keys deleted and their customer numbers cleared, in the batch's transaction.
    forget: list[UUID] = field(default_factory=list)
    forgotten_at: str | None = None


class WriteIndex(Protocol):
    """Bulk reads of the index; implemented by each store's recorder."""

    def known_events(self, event_ids: Iterable[str]) -> set[str]: ...

    def fact_digests(self, event_ids: Iterable[str]) -> dict[str, tuple[UUID, bytes | None]]:
        """(customer record, content digest) of these recorded facts; the digest is None for
        facts recorded before digests were kept and for the ledger's own facts."""
        ...

    def recorded_fact(self, event_id: str) -> Notification | None:
        """The stored event of a recorded fact (to say how a conflicting one differs)."""
        ...

    def identity_owners(self, keys: Iterable[str]) -> dict[str, UUID]: ...

    def customer_records(self, ids: Iterable[UUID]) -> dict[UUID, CustomerRecord]: ...

    def identities_of(self, customer_id: UUID) -> list[str]: ...

    def existing_streams(self, ids: Iterable[UUID]) -> set[UUID]: ...

    def facts_of(self, customer_id: UUID) -> list[Notification]: ...

    def merged_into(self, customer_id: UUID) -> list[UUID]: ...

    def load_keys(self, ids: Iterable[UUID]) -> dict[UUID, bytes | None]: ...

    def identities_by_customer(self, ids: Iterable[UUID]) -> dict[UUID, list[str]]:
        """Each customer's identity keys (sorted), for those that have any."""
        ...

    def stream_versions(self, ids: Iterable[UUID]) -> dict[UUID, int]:
        """The last version of each stream that has events."""
        ...

    def first_states(self, ids: Iterable[UUID]) -> dict[UUID, bytes]:
        """The stored state of each stream's first event."""
        ...

    def stream_states(self, ids: Iterable[UUID], needle: bytes | None) -> dict[UUID, list[bytes]]:
        """The stored states (in version order) of these streams that contain ``needle``
        (every state when None): a superset the caller decodes and filters."""
        ...


class IndexCache:
    """Identity owners and customer records as one writer last read or wrote them, kept
    between its batches (as ledger/streams.py keeps the streams' states).

    Every batch asked the store again about the customers and identities of its facts: two
    bulk reads that were a fifth of the append's time, for answers the writer itself had
    written a batch or two before. The cache holds what the store said (``None``: no owner, no
    record) and what this writer committed since; it is only as good as the writer's view of
    the store, so the writer clears it whenever another writer may have written meanwhile
    (ledger/writer.py: the store's head moved, a batch failed) and after a forget (which
    deletes identities and clears customer numbers in SQL of its own). The recorder still
    checks every owner a batch re-points under the write lock (``expected_owners``)."""

    def __init__(self, max_size: int = 400_000) -> None:
        self.max_size = max_size
        self.owners: dict[str, UUID | None] = {}
        self.records: dict[UUID, CustomerRecord | None] = {}

    def identity_owners(self, index: WriteIndex, keys: Iterable[str]) -> dict[str, UUID]:
        return read_through(self.owners, keys, index.identity_owners, self.max_size)

    def customer_records(self, index: WriteIndex, ids: Iterable[UUID]) -> dict[UUID, CustomerRecord]:
        return read_through(self.records, ids, index.customer_records, self.max_size)

    def committed(self, changes: IndexChanges) -> None:
        """A batch's changes are stored: they are what the store says now."""
        if changes.forget:
            self.clear()
            return
        self.owners.update(changes.identities)
        self.records.update(changes.customers)

    def clear(self) -> None:
        self.owners.clear()
        self.records.clear()


def read_through(cache: dict[K, V | None], keys: Iterable[K], read: Callable[[list[K]], Mapping[K, V]],
                 max_size: int | None = None) -> dict[K, V]:
    """What the store says of ``keys``, read only for those ``cache`` lacks; the answers (None:
    nothing stored) are kept. A cache that would outgrow ``max_size`` starts again empty."""
    wanted = list(keys)
    missing = list(dict.fromkeys(k for k in wanted if k not in cache))
    if missing:
        if max_size is not None and len(cache) + len(missing) > max_size:
            cache.clear()
            missing = list(dict.fromkeys(wanted))
        found = read(missing)
        for k in missing:
            cache[k] = found.get(k)
    return {k: v for k in wanted if (v := cache[k]) is not None}


@lru_cache(maxsize=1 << 18)
def uuid_of(text: str) -> UUID:
    """A stored id (hex) as a UUID: the same ids come back batch after batch, and parsing one
    cost more than the dict lookup does."""
    return UUID(text)


def chunks(items: Iterable[K], size: int = 500) -> Iterable[list[K]]:
    """Bound the number of SQL parameters per statement (SQLite caps them)."""
    batch: list[K] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
