"""The case aggregate: a complaint, incident, request or warranty case across departments.

Its stream holds the case's own facts (opened, transferred, notes, responses, resolution), so
every department appends to the same global case. Facts may arrive late and out of order (a
call centre uploads last week's notes today): the stream accepts them in arrival order and the
projections place them by ``occurred_at``.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.errors import FactRejected

Fact = dict[str, Any]


class Case(Aggregate):
    class Started(Aggregate.Created):
        fact: dict[str, Any]
        case_id: str
        customer_id: str

    def __init__(self, fact: Fact, case_id: str, customer_id: str) -> None:
        self.case_id = case_id
        #: The customer the case belongs to (a ledger customer UUID, as text).
        self.customer_id = customer_id
        self.opened_by: str | None = None
        self._apply(fact)

    @classmethod
    def start(cls, case_uuid: UUID, fact: Fact, customer_id: UUID) -> Case:
        return cls._create(cls.Started, id=case_uuid, fact=fact, case_id=fact["data"]["case_id"],
                           customer_id=str(customer_id))

    def accept(self, fact: Fact, customer_id: UUID, owner: UUID) -> None:
        """Record a fact on this case; ``owner`` is the case's customer after merges."""
        self.check_same_customer(customer_id, owner)
        self.check_opened_once(fact)
        self.record(fact)

    @event("Recorded")
    def record(self, fact: Fact) -> None:
        self._apply(fact)

    def _apply(self, fact: Fact) -> None:
        if fact["type"] == "case.opened":
            self.opened_by = fact["event_id"]

    def check_same_customer(self, customer_id: UUID, owner: UUID) -> None:
        if customer_id != owner:
            raise FactRejected(
                f"case {self.case_id!r} belongs to another customer ({owner}); "
                "a case is never moved between customers by a touchpoint"
            )

    def check_opened_once(self, fact: Fact) -> None:
        if fact["type"] == "case.opened" and self.opened_by is not None:
            raise FactRejected(f"case {self.case_id!r} was already opened (event {self.opened_by})")
