"""How a recorded event travels on Kafka (topic journey.events).

key      the customer id (``fact["customer_uuid"]``, UTF-8), so one customer's events stay in
         one partition, in order
value    a JSON object: ``{"v":2,"position":P,"stream_id":"...","stream_version":N,"state":S}``
         where S is the event's state exactly as the store holds it (``timestamp``, the sealed
         ``fact``, and eventsourcing's own fields on a stream's first event)
headers  type, event_id, stream_id, customer_version (the stream version), position

``position`` is the store's notification id: a consumer that has applied position p for a
customer knows any message of that customer with position <= p is a redelivery.

Why the stored bytes travel as they are (format 2): the relay's own work per event competes
with kafka-python's sender thread for the GIL, and decoding each stored state only to encode
the same fact again was most of that work (docs/performance.md, "relay"). The relay now
splices the stored bytes into the value and finds the key and the headers' fields in them
(:func:`encode_stored`); a state it cannot read that way is decoded and re-encoded
(:func:`encode_event`), with the same result.

Format 1 (``position``, ``event_id``, ``customer_id``, ``stream_id``, ``stream_version``,
``recorded_at``, ``fact``) is what relays before format 2 published; the topic is kept forever,
so :func:`decode_event` reads both.
"""

from __future__ import annotations

import re
from datetime import datetime
from uuid import UUID

import orjson

from ledger.application import StoredFact
from ledger.decoding import Row

Headers = list[tuple[str, bytes]]

#: (key, value, headers, timestamp in ms since the epoch: when the ledger recorded the event).
Message = tuple[bytes, bytes, Headers, int]

#: The three string fields the relay reads from a stored state, each with its value. Inside a
#: JSON string a quote is always escaped, so ``"type":"`` can only be a key named ``type``
#: with a string value, and ``[^"]*`` cannot run past the value's closing quote.
_FIELDS = re.compile(rb'"(customer_uuid|type|event_id)":"([^"]*)"')
_TIMESTAMP = b'{"timestamp":"'


def _value(position: int, stream_id: str, stream_version: int, state: bytes) -> bytes:
    return b'{"v":2,"position":%d,"stream_id":"%s","stream_version":%d,"state":%s}' % (
        position, stream_id.encode(), stream_version, state)


def _headers(type_: bytes, event_id: bytes, stream_id: str, stream_version: int, position: int) -> Headers:
    return [
        ("type", type_),
        ("event_id", event_id),
        ("stream_id", stream_id.encode()),
        ("customer_version", b"%d" % stream_version),
        ("position", b"%d" % position),
    ]


def _fields(state: bytes) -> dict[bytes, bytes] | None:
    """The fact's ``customer_uuid``, ``type`` and ``event_id`` from the stored bytes, or None
    when the bytes alone cannot say which they are: a key occurs more than once (a fact's data
    may hold a ``type`` of its own) or not at all, or a value holds an escape."""
    found = _FIELDS.findall(state)
    if len(found) != 3:
        return None
    fields = dict(found)
    if len(fields) != 3 or b"\\" in found[0][1] + found[1][1] + found[2][1]:
        return None
    return fields


def _millis(stamp: datetime) -> int:
    """A message's timestamp is when the ledger recorded the event, so a reader can seek by
    time (``offsets_for_times``) to what the company knew at an instant (replay/kafka_asof.py)."""
    return int(stamp.timestamp() * 1000)


def encode_stored(position: int, stream_id: str, stream_version: int, state: bytes) -> Message | None:
    """The message of one stored event, from its stored JSON state without decoding it; None
    when the state cannot be read that way (the caller then uses :func:`encode_event`).

    ``stream_id`` is the stream's UUID in its canonical (dashed) form."""
    fields = _fields(state)
    if fields is None or not state.startswith(_TIMESTAMP):
        return None
    # The transcoder writes the timestamp first; its value is an ISO 8601 string.
    end = state.find(b'"', len(_TIMESTAMP))
    try:
        stamp = datetime.fromisoformat(state[len(_TIMESTAMP):end].decode())
    except ValueError:
        return None
    return (fields[b"customer_uuid"], _value(position, stream_id, stream_version, state),
            _headers(fields[b"type"], fields[b"event_id"], stream_id, stream_version, position),
            _millis(stamp))


def encode_event(sf: StoredFact) -> Message:
    """The message of a decoded fact: the same message :func:`encode_stored` makes of its
    stored bytes (a state holding the timestamp and the fact, which is all consumers read)."""
    fact = sf.fact
    stream = str(sf.stream_id)
    state = orjson.dumps({"timestamp": sf.recorded_at, "fact": fact})
    return (fact["customer_uuid"].encode(), _value(sf.position, stream, sf.stream_version, state),
            _headers(fact["type"].encode(), fact["event_id"].encode(), stream, sf.stream_version,
                     sf.position), _millis(sf.recorded_at))


#: The start of a format-2 value, up to its state (the relay writes it so: :func:`_value`).
_STORED = re.compile(rb'\{"v":2,"position":(\d{1,18}),"stream_id":"([0-9a-f-]{36})",'
                     rb'"stream_version":(\d{1,9}),"state":')


def stored_row(value: bytes) -> Row | None:
    """The stored row a format-2 value carries (position, stream id, stream version, no topic,
    the state's bytes as the store holds them), found without parsing the state: what the
    bulk decoder (ledger/decoding.py) reads. None for anything else (format 1, or a value the
    relay did not write), which :func:`decode_event` reads or refuses."""
    found = _STORED.match(value)
    if found is None or not value.endswith(b"}"):
        return None
    return (int(found[1]), found[2].decode(), int(found[3]), "", value[found.end():-1])


class NotAnEvent(ValueError):
    """A message on the events topic that the relay did not write (another producer, a
    corrupted or hand-made value): what it lacks, never a bare KeyError or AttributeError."""


def decode_event(value: bytes) -> StoredFact:
    """A message value of either format as the fact it carries (personal part still sealed).

    Raises :class:`NotAnEvent` (a ValueError) for anything else."""
    try:
        doc = orjson.loads(value)
        if not isinstance(doc, dict):
            raise NotAnEvent(f"a JSON {type(doc).__name__}, not an event object")
        state = doc.get("state")
        recorded_at, fact = ((state["timestamp"], state["fact"]) if state is not None
                             else (doc["recorded_at"], doc["fact"]))
        if not isinstance(fact, dict):
            raise NotAnEvent("its fact is not an object")
        return StoredFact(
            position=int(doc["position"]),
            stream_id=UUID(str(doc["stream_id"])),
            stream_version=int(doc["stream_version"]),
            recorded_at=datetime.fromisoformat(recorded_at),
            fact=fact,
        )
    except NotAnEvent:
        raise
    except orjson.JSONDecodeError as error:
        raise NotAnEvent(f"not JSON ({error})") from None
    except KeyError as missing:
        raise NotAnEvent(f"no {missing.args[0]!r} field") from None
    except (TypeError, ValueError, AttributeError, OverflowError) as error:
        raise NotAnEvent(f"a field of the wrong kind ({type(error).__name__}: {error})") from None
