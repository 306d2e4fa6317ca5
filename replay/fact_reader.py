"""One customer's facts from the SQLite event store, cut on a public time before decoding.

An as-of view of a customer with 10,000 facts spent most of its time reading and decoding facts
it then dropped. This reader does the same job as ``sealed_history_of`` + a ``keep`` filter,
with less work per fact:

- the read is one query: the customer's positions in log order from the covering index of
  ``journey_log`` (customer, position), each event fetched by its rowid, so nothing is sorted.
- the cut is applied to the time found in the stored bytes (``"occurred_at":"...`` or
  ``"timestamp":"...``), so only the kept facts are decoded. The key is looked for only when it
  occurs exactly once in the state: inside a JSON string a quote is always escaped, so the
  bytes ``"occurred_at":"`` can only be a key named ``occurred_at`` with a string value, and
  every fact has its own. Anything else (a second such key anywhere, an escape in the value)
  is decoded in full and cut the ordinary way.
- opening (decrypting) a kept fact looks each record's key up once per read instead of once
  per fact (and builds the StoredFact directly rather than through ``dataclasses.replace``).

Only the plain SQLite store is read this way (states written as JSON by the orjson transcoder,
no eventsourcing cipher or compressor around them); :func:`reader` returns None otherwise and
callers use the general path.
"""

from __future__ import annotations

import binascii
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, cast
from uuid import UUID

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from domain import personal
from ledger.application import JourneyApplication, StoredFact
from ledger.crypto_mapper import NONCE_BYTES
from ledger.sqlite_recorder import JourneySQLiteRecorder
from ledger.transcoder import OrjsonTranscoder

CutKind = Literal["recorded", "occurred", "position"]

_OCCURRED = b'"occurred_at":"'
_TIMESTAMP = b'"timestamp":"'


@dataclass(frozen=True, slots=True)
class Cut:
    """Which facts an as-of view keeps: recorded at or before ``at``, occurred at or before
    ``at``, or at store positions up to ``position``."""

    kind: CutKind
    at: datetime | None = None
    position: int = 0


Row = tuple[int, UUID, int, bytes]


def _rows(recorder: JourneySQLiteRecorder, customer_id: UUID) -> list[Row]:
    """(position, stream id, stream version, state) of every event whose fact resolved to this
    customer, in log order: the rows ``facts_of`` reads, without a Notification per row."""
    table = recorder.events_table_name
    with recorder.datastore.transaction(commit=False) as c:
        c.execute(f"SELECT s.rowid, s.originator_id, s.originator_version, s.state FROM journey_log f "
                  f"JOIN {table} s ON s.rowid = f.position "
                  "WHERE f.customer_id = ? ORDER BY f.position",
                  (customer_id.bytes,))
        found = c.fetchall()
    streams: dict[str, UUID] = {}
    return [(p, streams.get(o) or streams.setdefault(o, UUID(o)), v, state) for p, o, v, state in found]


def _stored_string(state: bytes, key: bytes) -> str | None:
    """The string value of ``key`` when it is the only such key in ``state`` and plain."""
    found = state.find(key)
    if found < 0 or state.find(key, found + 1) >= 0:
        return None
    start = found + len(key)
    value = state[start:state.index(b'"', start)]
    return None if b"\\" in value else value.decode()


def _passes(cut: Cut, state: bytes) -> bool | None:
    """Whether the fact passes a time cut, from the stored bytes; None: decode it to know.
    (Aware datetimes compare as instants: the same answer as converting both to UTC.)"""
    assert cut.at is not None
    text = _stored_string(state, _OCCURRED if cut.kind == "occurred" else _TIMESTAMP)
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return None if moment.tzinfo is None else moment <= cut.at


def _keeps(cut: Cut, sf: StoredFact) -> bool:
    """The cut on a decoded fact: what ``replay.asof`` applies on the general path."""
    assert cut.at is not None
    if cut.kind == "occurred":
        return datetime.fromisoformat(sf.fact["occurred_at"]).astimezone(UTC) <= cut.at
    return sf.recorded_at <= cut.at


def reader(app: JourneyApplication, cut: Cut, skipped: set[int] | None = None
           ) -> Callable[[str], list[StoredFact]] | None:
    """A history reader for ``record_history`` giving each record's SEALED facts that pass
    ``cut``, in log order; None when the store is not one this module reads. A fact that
    cannot be decoded or cut is left out, its position added to ``skipped``."""
    recorder = app.recorder
    mapper = app.mapper
    if (not isinstance(recorder, JourneySQLiteRecorder) or mapper.cipher is not None
            or mapper.compressor is not None or not isinstance(mapper.transcoder, OrjsonTranscoder)):
        return None
    decode = mapper.transcoder.decode

    def history(customer_id: str) -> list[StoredFact]:
        kept: list[StoredFact] = []
        for position, sid, version, state in _rows(recorder, UUID(customer_id)):
            if cut.kind == "position":
                if position > cut.position:
                    continue
                passes: bool | None = True
            else:
                passes = _passes(cut, state)
                if passes is False:
                    continue
            try:
                stored: dict[str, Any] = decode(state)
                sf = StoredFact(position=position, stream_id=sid, stream_version=version,
                                recorded_at=stored["timestamp"], fact=stored["fact"])
                if not traversable(sf):
                    raise ValueError("not a fact the readers can place")
                if passes is None and not _keeps(cut, sf):
                    continue
            except (ValueError, TypeError, KeyError, AttributeError, OverflowError, RecursionError):
                if skipped is not None:
                    skipped.add(position)
                continue
            kept.append(sf)
        return kept
    return history


def traversable(sf: StoredFact) -> bool:
    """Whether ``record_history`` can place the fact (its record, its type, a merge's other
    record): the rest of what a reader needs is checked once it is opened."""
    fact = sf.fact
    if not isinstance(fact, dict) or not isinstance(fact.get("type"), str) \
            or not isinstance(fact.get("customer_uuid"), str) or not isinstance(sf.recorded_at, datetime):
        return False
    if fact["type"] in ("customer.merged", "customer.unmerged"):
        data = fact.get("data")
        return isinstance(data, dict) and isinstance(data.get("from"), str)
    return True


def opener(app: JourneyApplication) -> Callable[[StoredFact], StoredFact]:
    """Opens the sealed facts of :func:`reader` as ``ledger.application.open_fact`` does (same
    result, same key cache rules), IN PLACE (the fact dicts are the reader's own; only for its
    output), with less work per fact: a record's key (and its AES-GCM object) is looked
    up once per opener, and those lookups are dropped with the ring's cache when a
    ``customer.forgotten`` fact passes, as ``crypto_mapper.unseal`` drops the ring's."""
    ring = app.keys
    ciphers: dict[str, AESGCM | None] = {}

    def open_one(sf: StoredFact) -> StoredFact:
        stored = sf.fact
        envelope = stored.get(personal.ENVELOPE)
        if envelope is None:
            if stored.get("type") == "customer.forgotten":
                ring.drop_cache()
                ciphers.clear()
            return sf
        record = stored["customer_uuid"]
        if record in ciphers:
            cipher = ciphers[record]
        else:
            key = ring.key_of(UUID(record))
            cipher = ciphers[record] = None if key is None else AESGCM(key)
        private = None if cipher is None else _decrypt(cipher, envelope, stored["event_id"])
        if private is None:
            return StoredFact(sf.position, sf.stream_id, sf.stream_version, sf.recorded_at,
                              personal.erased(stored))
        # personal.join, in place: the sealed fact was decoded by this reader for this call
        # alone. Same keys in the same order: the envelope goes, each section keeps its place.
        del stored[personal.ENVELOPE]
        if "fact" in private:  # the personal top-level fields (the source id)
            stored.update(private["fact"])
        for section in ("customer", "data"):
            if section in private:
                if section in stored:
                    stored[section].update(private[section])
                else:
                    stored[section] = dict(private[section])
        return StoredFact(sf.position, sf.stream_id, sf.stream_version, sf.recorded_at, stored)
    return open_one


def _decrypt(cipher: AESGCM, envelope: str, event_id: str) -> dict[str, Any] | None:
    """``crypto_mapper.decrypt`` with the cipher object at hand (same layout, same result)."""
    raw = binascii.a2b_base64(envelope)
    try:
        plain = cipher.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], event_id.encode())
    except InvalidTag:
        return None
    return cast(dict[str, Any], orjson.loads(plain))
