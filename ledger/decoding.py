"""How stored rows of the event store become facts again, in bulk, at about the cost of the bytes.

Every reader of the whole log (the projection and its rebuild, the Kafka projector, the as-of
views) starts here, so the per-event work is kept to what the stored form needs: one orjson
parse of the state, the record's AES-GCM cipher looked up by the ``customer_uuid`` string
(built once per record and batch, the keys of the batch fetched in one query), the decryption
and parse of the personal part, laid over the public part in place (the state was parsed for
this fact alone, so nothing else holds its dicts), and the timestamp parsed by
``datetime.fromisoformat``. The result is what ``CryptoMapper.to_domain_event`` gives
(``tests/unit/test_decoding.py`` compares them on generated facts); ledger/crypto_mapper.py
describes the stored form.
"""

from __future__ import annotations

from binascii import a2b_base64
from collections.abc import Collection, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID, SafeUUID

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from domain import personal
from ledger.crypto_mapper import NONCE_BYTES, _cipher

#: A stored event as the recorders' ``select_rows`` read it: position, stream id (32 hex digits
#: from SQLite, a UUID from PostgreSQL), stream version, topic, state.
Row = tuple[int, str | UUID, int, str, bytes]


class Keys(Protocol):
    """What the decoder asks of a key ring (ledger/keys.py's ``KeyRing``, or the keys a worker
    process was sent with its rows: projections/preparing.py)."""

    def keys_named(self, names: Collection[str]) -> dict[str, bytes | None]: ...

    def drop_cache(self) -> None: ...


@dataclass(frozen=True, slots=True)
class StoredFact:
    """A recorded fact with where and when the ledger recorded it."""

    position: int  # the store's notification id: a total order with gaps
    stream_id: UUID
    stream_version: int
    recorded_at: datetime
    fact: dict[str, Any]


# A frozen dataclass's __init__ sets each field through object.__setattr__: a tenth of the
# decoding time. The decoder sets the slots directly (same object, same fields); the check
# below keeps it from missing a field added later.
if tuple(f.name for f in fields(StoredFact)) != ("position", "stream_id", "stream_version",
                                                 "recorded_at", "fact"):
    raise ImportError("StoredFact's fields changed: update decode_states")
_new = object.__new__
_slots: dict[str, Any] = dict(vars(StoredFact))  # the member descriptors of the slots
_set_position = _slots["position"].__set__
_set_stream_id = _slots["stream_id"].__set__
_set_stream_version = _slots["stream_version"].__set__
_set_recorded_at = _slots["recorded_at"].__set__
_set_fact = _slots["fact"].__set__

_setattr = object.__setattr__


def _uuid(text: str) -> UUID:
    """``UUID(text)``, in half the time for the 32 hex digits SQLite stores a stream id as: the
    attributes ``UUID.__init__`` sets, set directly (anything else goes to ``UUID``)."""
    if len(text) != 32 or not text.isalnum():
        return UUID(text)
    made = _new(UUID)
    _setattr(made, "int", int(text, 16))
    _setattr(made, "is_safe", SafeUUID.unknown)
    return made


#: Rows parsed, then decoded, at a time: a slice's parsed states (~2.5 KB each) are still in
#: the CPU's caches when they are decoded; a whole batch's were not (20,000 rows: ~50 MB). The
#: keys of the records a slice meets first are read in one query per slice.
SLICE = 500

_UNSEEN: Any = object()
_FORGOTTEN = "customer.forgotten"
_ENVELOPE = personal.ENVELOPE


def decode_states(ring: Keys, rows: Sequence[Row], slice_rows: int = SLICE) -> list[StoredFact]:
    """The rows' facts, as ``CryptoMapper.to_domain_event`` decodes them (the mapper without a
    compressor or cipher): personal parts decrypted with ``ring``'s keys, or marked erased when
    the key is gone. A ``customer.forgotten`` makes the ring drop its cached keys, and the
    later rows of the batch look their keys up again: a long-running reader stops using a
    forgotten customer's key (ledger/keys.py).

    Whatever a stored state makes this raise (not JSON, no ``fact``, an envelope without
    ``customer_uuid``) it raises as :func:`ledger.application.decode_notifications` always did:
    the projection's quarantine (projections/quarantine.py) recognises the row by that.
    ``slice_rows``: rows parsed, then decoded, at a time (:data:`SLICE`)."""
    loads = orjson.loads
    # Per call: each record's cipher (None: no key, or forgotten) by its customer_uuid text,
    # and the stream ids as UUIDs by their stored text (a stream has many events).
    ciphers: dict[str, AESGCM | None] = {}
    streams: dict[str, UUID] = {}
    fromisoformat = datetime.fromisoformat
    new = _new
    set_position, set_stream_id, set_stream_version, set_recorded_at, set_fact = (
        _set_position, _set_stream_id, _set_stream_version, _set_recorded_at, _set_fact)
    facts: list[StoredFact] = []
    append = facts.append
    for start in range(0, len(rows), slice_rows):
        chunk = rows[start:start + slice_rows]
        states = [loads(row[4]) for row in chunk]
        owners = {owner for s in states if type(f := s.get("fact")) is dict and _ENVELOPE in f
                  and (owner := f["customer_uuid"]) not in ciphers}
        if owners:  # the keys of the slice's records not met before, in one query
            ciphers.update((owner, None if key is None else _cipher(key))
                           for owner, key in ring.keys_named(owners).items())
        for (position, stream, version, _topic, _stored), state in zip(chunk, states, strict=True):
            fact = state["fact"]
            if type(fact) is dict and "customer_uuid" in fact:
                envelope = fact.get(_ENVELOPE)
                if envelope is None:
                    if fact.get("type") == _FORGOTTEN:
                        ring.drop_cache()
                        ciphers.clear()
                else:
                    owner = fact["customer_uuid"]
                    cipher = ciphers.get(owner, _UNSEEN)
                    if cipher is _UNSEEN:  # after a customer.forgotten: asked again
                        key = ring.keys_named((owner,))[owner]
                        cipher = ciphers[owner] = None if key is None else _cipher(key)
                    private = None
                    if cipher is not None:
                        sealed = a2b_base64(envelope)
                        try:
                            plain = cipher.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:],
                                                   fact["event_id"].encode())
                        except InvalidTag:
                            pass
                        else:
                            private = loads(plain)
                    if private is None:
                        fact = personal.erased(fact)
                    else:
                        del fact[_ENVELOPE]
                        if type(private) is not dict:
                            fact = personal.join(fact, private)
                        else:
                            # personal.join, written into this fact's own dicts (parsed for it
                            # alone): the same keys in the same order, without copies.
                            if "fact" in private:
                                fact.update(private["fact"])
                            if "customer" in private:
                                section, base = private["customer"], fact.get("customer")
                                if type(base) is dict and type(section) is dict:
                                    base.update(section)
                                else:
                                    fact["customer"] = {**fact.get("customer", {}), **section}
                            if "data" in private:
                                section, base = private["data"], fact.get("data")
                                if type(base) is dict and type(section) is dict:
                                    base.update(section)
                                else:
                                    fact["data"] = {**fact.get("data", {}), **section}
            stamp = state["timestamp"]
            if type(stamp) is str:
                stamp = fromisoformat(stamp)
            if type(stream) is str:
                stream = streams.get(stream) or streams.setdefault(stream, _uuid(stream))
            stored = new(StoredFact)
            set_position(stored, position)
            set_stream_id(stored, stream)
            set_stream_version(stored, version)
            set_recorded_at(stored, stamp)
            set_fact(stored, fact)
            append(stored)
    return facts
