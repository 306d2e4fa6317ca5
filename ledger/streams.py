"""What the write path knows about each stream, and the stored rows it writes, without aggregates.

The ledger's streams are stored as eventsourcing aggregates' events (domain/customer.py,
domain/case.py), and the readers (projections, replay, verify, the relay) decode them as such.
Writing a batch through aggregate and domain-event objects cost about half the append's time,
so the writer produces the stored rows directly: the same topics and the same state bytes as
``Customer``/``Case`` and the ``CryptoMapper`` would (``tests/integration/test_stream_rows.py``
compares them), and it checks the streams' rules (domain/registration.py,
domain/case_rules.py) on the little it keeps per stream:

* the version of the last event (the next one is version + 1; a stale version fails the
  insert on the primary key, IntegrityError, and the batch is redone);
* for a customer, the event id of their registration (a second one is refused); for a case, the
  event id of its opening (likewise) and the customer it was opened for (a case never moves
  between customers). ``UNKNOWN`` until a fact needs it: read from the stream then.

The states are kept between batches (:class:`StreamCache`), like eventsourcing's aggregate cache
was: a stream another writer appended to meanwhile has a stale version, so the batch fails on
the primary key and is redone after the cache is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from uuid import UUID

from eventsourcing.utils import get_topic

from domain import case_rules, registration
from domain.case import Case
from domain.customer import Customer


class _Unknown:
    """Not read yet (a stream the process did not write, whose marker no fact needed)."""

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Final = _Unknown()

#: The stored events' topics, as eventsourcing writes them (module:qualname).
CUSTOMER_TOPIC = get_topic(Customer)
CUSTOMER_STARTED = get_topic(Customer.Started)
CUSTOMER_RECORDED = get_topic(Customer.Recorded)
CASE_TOPIC = get_topic(Case)
CASE_STARTED = get_topic(Case.Started)
CASE_RECORDED = get_topic(Case.Recorded)

#: The fact type a stream records at most once, per kind of stream.
CUSTOMER_MARKER = registration.REGISTERED
CASE_MARKER = case_rules.OPENED


@dataclass(slots=True)
class Stream:
    #: The version of the stream's last event (stored or pending in this batch); 0: none.
    version: int
    #: Event id of the stream's registration (customer) or opening (case); None: there is none.
    marker: str | _Unknown | None = None
    #: A case's customer (the ledger id, as text, the case was opened for).
    owner: str | None = None


class StreamCache:
    """Stream states kept between batches, bounded (the oldest half goes when it is full)."""

    def __init__(self, max_size: int = 200_000) -> None:
        self.max_size = max_size
        self.streams: dict[UUID, Stream] = {}

    def get(self, stream_id: UUID) -> Stream | None:
        return self.streams.get(stream_id)

    def put(self, stream_id: UUID, stream: Stream) -> None:
        streams = self.streams
        if len(streams) >= self.max_size and stream_id not in streams:
            for old in list(streams)[: self.max_size // 2]:
                del streams[old]
        streams[stream_id] = stream

    def __contains__(self, stream_id: object) -> bool:
        return stream_id in self.streams

    def clear(self) -> None:
        self.streams.clear()


def customer_state(timestamp: datetime, fact: dict[str, Any], first: bool, kind: str,
                   customer_number: str | None) -> dict[str, Any]:
    """The event state ``Customer.Started`` / ``Customer.Recorded`` would carry (before sealing:
    :func:`ledger.crypto_mapper.seal_state` seals it as the mapper did)."""
    if first:
        return {"timestamp": timestamp, "originator_topic": CUSTOMER_TOPIC, "fact": fact,
                "kind": kind, "customer_number": customer_number}
    return {"timestamp": timestamp, "fact": fact}


def case_state(timestamp: datetime, fact: dict[str, Any], first: bool, case_id: str,
               customer_id: str) -> dict[str, Any]:
    if first:
        return {"timestamp": timestamp, "originator_topic": CASE_TOPIC, "fact": fact,
                "case_id": case_id, "customer_id": customer_id}
    return {"timestamp": timestamp, "fact": fact}
