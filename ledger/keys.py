"""The key ring: one AES-256 key per customer record, kept in the event store's journey_keys.

``journey_keys(customer_id, key, forgotten_at)``: a row with a key encrypts and decrypts that
record's personal data; a row whose key is NULL is a forgotten record (crypto-shredded: its
personal data can never be read again). A new record's key is generated here, in memory, and
written by the recorder in the same transaction as the record's first events (a plain INSERT:
if another writer created a key for the same record meanwhile, the batch fails with
IntegrityError and the writer retries after :meth:`KeyRing.reset`, with the stored key).

Keys are cached in memory; readers drop the cache when they meet a ``customer.forgotten``
event, so a long-running process stops decrypting a forgotten customer's events.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable
from typing import Protocol
from uuid import UUID

KEY_BYTES = 32  # AES-256


class KeyStore(Protocol):
    """Bulk reads of journey_keys; implemented by each store's recorder."""

    def load_keys(self, ids: Iterable[UUID]) -> dict[UUID, bytes | None]: ...


class ForgottenCustomer(Exception):
    """A record's key was destroyed: nothing personal may be written for it any more."""


class KeyRing:
    def __init__(self) -> None:
        self.store: KeyStore | None = None
        #: record -> key (None: forgotten); records known to have no row are in ``absent``.
        self._keys: dict[UUID, bytes | None] = {}
        self._absent: set[UUID] = set()
        #: What ``_keys`` holds (a key, or None: forgotten), by the record's name in a fact (its
        #: ``customer_uuid`` text), for :meth:`keys_named`; cleared with ``_keys``.
        self._named: dict[str, bytes | None] = {}
        #: Keys generated for records without one, not yet committed (the recorder inserts them).
        self.pending: dict[UUID, bytes] = {}

    def bind(self, store: KeyStore) -> None:
        self.store = store

    def prefetch(self, ids: Iterable[UUID]) -> None:
        """Load the keys of these records in one query (the write path, once per batch)."""
        missing = [i for i in ids if i not in self._keys and i not in self._absent]
        if not missing or self.store is None:
            return
        found = self.store.load_keys(missing)
        self._keys.update(found)
        self._absent.update(i for i in missing if i not in found)

    def _lookup(self, customer_id: UUID) -> bytes | bool | None:
        """The key, None when forgotten, False when the record has no key yet."""
        if customer_id in self._keys:
            return self._keys[customer_id]
        if customer_id not in self._absent:
            self.prefetch([customer_id])
            if customer_id in self._keys:
                return self._keys[customer_id]
        return False

    def key_of(self, customer_id: UUID) -> bytes | None:
        """The key to decrypt with; None when forgotten or never created."""
        found = self._lookup(customer_id)
        return found if isinstance(found, bytes) else None

    def keys_named(self, names: Collection[str]) -> dict[str, bytes | None]:
        """The key of each record named as a fact names it (its ``customer_uuid``), None when
        forgotten or never created: :meth:`key_of` for a reader's batch. Looking thousands of
        records up by UUID made a UUID of each name for every batch, most of a decoder's key
        lookups; a record's key is looked up by UUID once (its first batch), by name after."""
        named = self._named
        missing = [n for n in names if n not in named]
        if missing:
            ids = [UUID(n) for n in missing]
            if len(ids) > 1:
                self.prefetch(ids)
            for name, customer_id in zip(missing, ids, strict=True):
                found = self._lookup(customer_id)
                if found is not False:  # no key yet: may be created, so asked again next time
                    named[name] = found  # type: ignore[assignment]
        return {n: named.get(n) for n in names}

    def is_forgotten(self, customer_id: UUID) -> bool:
        return self._lookup(customer_id) is None

    def key_for_write(self, customer_id: UUID) -> bytes:
        """The key to encrypt with, created (pending) for a record without one."""
        found = self._lookup(customer_id)
        if found is None:
            raise ForgottenCustomer(f"customer {customer_id} was forgotten")
        if isinstance(found, bytes):
            return found
        key = os.urandom(KEY_BYTES)
        self.pending[customer_id] = key
        self._keys[customer_id] = key
        self._absent.discard(customer_id)
        return key

    def committed(self) -> None:
        """The pending keys are stored (the batch committed)."""
        self.pending = {}

    def drop_cache(self) -> None:
        """Reload stored keys on next use (keeps the keys of the batch being written)."""
        self._keys = dict(self.pending)
        self._absent.clear()
        self._named.clear()

    def reset(self) -> None:
        """Forget everything cached (a failed batch, a customer forgotten): reload from the store."""
        self._keys.clear()
        self._absent.clear()
        self._named.clear()
        self.pending = {}
