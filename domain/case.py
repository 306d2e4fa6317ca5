"""The case stream as stored: a complaint, incident, request or warranty case across departments.

Its stream holds the case's own facts (opened, transferred, notes, responses, resolution), so
every department appends to the same global case. Facts may arrive late and out of order (a
call centre uploads last week's notes today): the stream accepts them in arrival order and the
projections place them by ``occurred_at``.

These classes are the stored events' schema, not the write path's model. Their names are in
every stored row (the topics ``domain.case:Case.Started`` and ``domain.case:Case.Recorded``, and
``originator_topic`` ``domain.case:Case`` in each stream's first event): readers decode rows
through them and eventsourcing's repository reads a stream back as a ``Case``. Module, names
and fields must not change. The write path builds no such object: it writes the same rows
itself (ledger/streams.py) and checks the stream's rules, a case stays with its customer and is
opened once (domain/case_rules.py), on the little it keeps per stream. ``Case`` folds a stream
into that same state (``customer_id``, ``opened_by``), which
tests/integration/test_stream_rows.py compares with the writer's.
"""

from __future__ import annotations

from typing import Any

from eventsourcing.domain import Aggregate

from domain import case_rules

Fact = dict[str, Any]


class Case(Aggregate):
    """A case, read from its stream."""

    class Started(Aggregate.Created):
        """The case's first fact (usually ``case.opened``; a late upload may come first)."""

        fact: dict[str, Any]
        case_id: str
        customer_id: str

    class Recorded(Aggregate.Event):
        """Every later fact of the case."""

        fact: dict[str, Any]

        def apply(self, aggregate: Any) -> None:
            aggregate.fold(self.fact)

    def __init__(self, fact: Fact, case_id: str, customer_id: str) -> None:
        self.case_id = case_id
        #: The customer the case was opened for (a ledger customer UUID, as text).
        self.customer_id = customer_id
        #: The event id of the case's opening (what domain/case_rules.py checks).
        self.opened_by: str | None = None
        self.fold(fact)

    def fold(self, fact: Fact) -> None:
        """What one recorded fact changes of the stream's state."""
        if case_rules.opens(fact):
            self.opened_by = fact["event_id"]
