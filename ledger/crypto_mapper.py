"""The mapper that encrypts each fact's personal part with its customer's key (crypto-shredding).

A stored fact keeps its public part in clear (so the hash chains, the counts and the ledger's
own bookkeeping work without keys) and carries the personal part (domain/personal.py) as
``{"$personal": base64(nonce + AES-256-GCM ciphertext)}``, under the key of the record the fact
resolved to (``customer_uuid``), with a random 12-byte nonce per event and the event id as
associated data (a ciphertext cannot be moved to another event). Stored bytes never change:
forgetting a customer destroys the key, and the fact then reads back with its personal fields
set to None and ``"erased": true``.
"""

from __future__ import annotations

import base64
import os
from functools import lru_cache
from typing import Any, cast
from uuid import UUID

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import Mapper, StoredEvent, Transcoder
from eventsourcing.utils import get_topic

from domain import personal
from ledger.keys import KeyRing

NONCE_BYTES = 12


@lru_cache(maxsize=4096)
def _cipher(key: bytes) -> AESGCM:
    """Key schedules are reused: a customer's facts come in runs (a batch, a history)."""
    return AESGCM(key)


def encrypt(key: bytes, plain: dict[str, Any], event_id: str, nonce: bytes | None = None) -> str:
    """``nonce``: 12 random bytes (the write path draws a batch's nonces in one call)."""
    if nonce is None:
        nonce = os.urandom(NONCE_BYTES)
    sealed = _cipher(key).encrypt(nonce, orjson.dumps(plain), event_id.encode())
    return base64.b64encode(nonce + sealed).decode("ascii")


def decrypt(key: bytes, envelope: str, event_id: str) -> dict[str, Any] | None:
    """The personal part, or None when it cannot be decrypted with this key."""
    raw = base64.b64decode(envelope)
    try:
        plain = _cipher(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], event_id.encode())
    except InvalidTag:
        return None
    return cast(dict[str, Any], orjson.loads(plain))


#: Attributes of the domain events themselves that are personal (Customer.Started keeps the
#: customer number the record was opened with); sealed with the fact, under ``"event"``.
PERSONAL_ATTRIBUTES = ("customer_number",)


def seal(fact: dict[str, Any], ring: KeyRing, attributes: dict[str, Any] | None = None,
         customer_id: UUID | None = None, nonce: bytes | None = None,
         key: bytes | None = None) -> dict[str, Any]:
    """The fact as stored: public part in clear, personal part (and ``attributes``) encrypted.
    ``customer_id`` is ``fact["customer_uuid"]`` when the caller has it as a UUID already;
    ``key`` is that record's key when the caller has it (the write path looked it up for the
    fact's digest: once per fact instead of twice)."""
    public, private = personal.split(fact)
    if attributes:
        private["event"] = attributes
    if not private:
        return fact
    if key is None:
        key = ring.key_for_write(customer_id if customer_id is not None else UUID(fact["customer_uuid"]))
    public[personal.ENVELOPE] = encrypt(key, private, fact["event_id"], nonce)
    return public


def seal_state(event_state: dict[str, Any], ring: KeyRing, customer_id: UUID,
               nonce: bytes | None = None, key: bytes | None = None) -> dict[str, Any]:
    """An event's state (its attributes without originator id and version) as
    :meth:`CryptoMapper.to_stored_event` stores it: the fact sealed, and the personal event
    attributes moved into the sealed part. The write path builds states without domain-event
    objects (ledger/streams.py) and seals them here, so both ways store the same thing."""
    fact = event_state.get("fact")
    if isinstance(fact, dict) and "customer_uuid" in fact and "event_id" in fact:
        attributes = {k: event_state[k] for k in PERSONAL_ATTRIBUTES if event_state.get(k) is not None}
        event_state["fact"] = seal(fact, ring, attributes, customer_id, nonce, key)
        if personal.ENVELOPE in event_state["fact"]:
            event_state.update(dict.fromkeys(attributes))
    return event_state


def unseal(stored: dict[str, Any], ring: KeyRing, attributes: dict[str, Any] | None = None) -> dict[str, Any]:
    """The fact as recorded, or its public part marked erased when the key is gone; the
    sealed event attributes are put back into ``attributes``."""
    envelope = stored.get(personal.ENVELOPE)
    if envelope is None:
        if stored.get("type") == "customer.forgotten":
            ring.drop_cache()  # a long-running reader must stop using the forgotten keys
        return stored  # nothing personal (or written before encryption existed)
    key = ring.key_of(UUID(stored["customer_uuid"]))
    private = decrypt(key, envelope, stored["event_id"]) if key is not None else None
    if private is None:
        return personal.erased(stored)
    public = dict(stored)
    del public[personal.ENVELOPE]
    if attributes is not None:
        attributes.update(private.get("event", {}))
    return personal.join(public, private)


class CryptoMapper(Mapper[UUID]):
    def __init__(self, transcoder: Transcoder, ring: KeyRing) -> None:
        super().__init__(transcoder)
        self.ring = ring

    def to_stored_event(self, domain_event: DomainEventProtocol[UUID]) -> StoredEvent:
        event_state = dict(vars(domain_event))
        fact = event_state.get("fact")
        if isinstance(fact, dict) and "customer_uuid" in fact and "event_id" in fact:
            seal_state(event_state, self.ring, UUID(fact["customer_uuid"]))
        originator_id = event_state.pop("originator_id")
        originator_version = event_state.pop("originator_version")
        class_version = getattr(type(domain_event), "class_version", 1)
        if class_version > 1:
            event_state["class_version"] = class_version
        return StoredEvent(originator_id=originator_id, originator_version=originator_version,
                           topic=get_topic(domain_event.__class__), state=self.encode_state(event_state))

    def encode_state(self, event_state: dict[str, Any]) -> bytes:
        """Sealed event state -> stored bytes (transcoder, then compressor and cipher if set)."""
        stored_state = self.transcoder.encode(event_state)
        if self.compressor:
            stored_state = self.compressor.compress(stored_state)
        if self.cipher:
            stored_state = self.cipher.encrypt(stored_state)
        return stored_state

    def decode_state(self, stored_state: bytes) -> dict[str, Any]:
        """Stored bytes -> event state, still sealed (what the write path reads of a stream)."""
        if self.cipher:
            stored_state = self.cipher.decrypt(stored_state)
        if self.compressor:
            stored_state = self.compressor.decompress(stored_state)
        return cast(dict[str, Any], self.transcoder.decode(stored_state))

    def to_domain_event(self, stored_event: StoredEvent) -> DomainEventProtocol[UUID]:
        domain_event = super().to_domain_event(stored_event)
        state = domain_event.__dict__
        fact = state.get("fact")
        if isinstance(fact, dict) and "customer_uuid" in fact:
            state["fact"] = unseal(fact, self.ring, state)
        return domain_event
