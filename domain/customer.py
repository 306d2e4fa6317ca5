"""The customer aggregate: one stream per person, one event per touchpoint.

Every fact about a person (a call, a tweet, a consent, a purchase) is one event in that
person's stream, so optimistic concurrency protects it and the stream can be read alone. The
aggregate holds only what its invariants need; the rich views are projections.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.errors import FactRejected

Fact = dict[str, Any]


class Customer(Aggregate):
    """A person the company deals with: a registered customer or a prospect."""

    class Started(Aggregate.Created):
        """The first fact about a person opens their stream (no synthetic creation event)."""

        fact: dict[str, Any]
        kind: str
        customer_number: str | None

    def __init__(self, fact: Fact, kind: str, customer_number: str | None) -> None:
        self.kind = kind
        self.customer_number = customer_number
        self.registered_by: str | None = None
        self.facts = 0
        self._apply(fact)

    @classmethod
    def start(cls, customer_id: UUID, fact: Fact, kind: str, customer_number: str | None) -> Customer:
        # Any fact may open a stream: channels meet people before the CRM does.
        return cls._create(cls.Started, id=customer_id, fact=fact, kind=kind,
                           customer_number=customer_number)

    def accept(self, fact: Fact) -> None:
        """Record a fact about this person after checking it against their history."""
        self.check_not_registered_twice(fact)
        self.record(fact)

    @event("Recorded")
    def record(self, fact: Fact) -> None:
        self._apply(fact)

    def _apply(self, fact: Fact) -> None:
        self.facts += 1
        if fact["type"] == "customer.registered":
            self.kind = "customer"
            self.registered_by = fact["event_id"]

    def check_not_registered_twice(self, fact: Fact) -> None:
        if fact["type"] == "customer.registered" and self.registered_by is not None:
            raise FactRejected(
                f"customer is already registered (event {self.registered_by}); "
                "send address.changed or identity.linked to change their details"
            )
