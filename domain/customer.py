"""The customer stream as stored: one stream per person, one event per touchpoint.

Every fact about a person (a call, a tweet, a consent, a purchase) is one event in that
person's stream, so optimistic concurrency protects it and the stream can be read alone.

These classes are the stored events' schema, not the write path's model. Their names are in
every stored row (the topics ``domain.customer:Customer.Started`` and
``domain.customer:Customer.Recorded``, and ``originator_topic`` ``domain.customer:Customer`` in
each stream's first event): readers decode rows through them (a cipher or compressor set, the
relay's sealed facts) and eventsourcing's repository reads a stream back as a ``Customer``.
Module, names and fields must not change. The write path builds no such object: it writes the
same rows itself (ledger/streams.py) and checks the stream's rule, a person is registered once
(domain/registration.py), on the little it keeps per stream. ``Customer`` folds a stream into
that same state (``registered_by``), which tests/integration/test_stream_rows.py compares with
the writer's.
"""

from __future__ import annotations

from typing import Any

from eventsourcing.domain import Aggregate

from domain import registration

Fact = dict[str, Any]


class Customer(Aggregate):
    """A person the company deals with (a registered customer or a prospect), read from their
    stream."""

    class Started(Aggregate.Created):
        """The first fact about a person opens their stream (no synthetic creation event): any
        fact may, since channels meet people before the CRM does."""

        fact: dict[str, Any]
        kind: str
        customer_number: str | None

    class Recorded(Aggregate.Event):
        """Every later fact about the person."""

        fact: dict[str, Any]

        def apply(self, aggregate: Any) -> None:
            aggregate.fold(self.fact)

    def __init__(self, fact: Fact, kind: str, customer_number: str | None) -> None:
        self.kind = kind
        self.customer_number = customer_number
        #: The event id of the person's registration (what domain/registration.py checks).
        self.registered_by: str | None = None
        self.facts = 0
        self.fold(fact)

    def fold(self, fact: Fact) -> None:
        """What one recorded fact changes of the stream's state."""
        self.facts += 1
        if registration.registers(fact):
            self.kind = "customer"
            self.registered_by = fact["event_id"]
