"""A case belongs to one customer and is opened once: the case stream's rules.

Every department appends to the same global case, so a case's stream holds facts from many
senders; two things keep it one case. It stays with the customer it was opened for (a
touchpoint naming another customer is refused: cases are never moved by a touchpoint), and it
is opened once (a second ``case.opened`` would restart its deadlines). The rules need two things
of the case's stream: the customer it was opened for (as that customer is today, after merges:
the caller resolves it) and the event id of its opening, if it has one.

They are plain functions over the fact and that state rather than methods of the case
aggregate: the write path (ledger/writer.py) keeps that state per stream and never builds
aggregate objects (docs/decisions.md, "The streams' rules are functions").
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from domain.errors import FactRejected

#: The fact type a case's stream holds at most once.
OPENED = "case.opened"


def opens(fact: dict[str, Any]) -> bool:
    """Whether ``fact`` opens a case (the only kind of fact :func:`check_opened_once` concerns)."""
    return bool(fact["type"] == OPENED)


def check_same_customer(case_id: str, customer_id: UUID, owner: UUID) -> None:
    """Refuse a fact about case ``case_id`` recorded for ``customer_id`` when the case is
    ``owner``'s (the customer it was opened for, or whom that record was merged into)."""
    if customer_id != owner:
        raise FactRejected(
            f"case {case_id!r} belongs to another customer ({owner}); "
            "a case is never moved between customers by a touchpoint"
        )


def check_opened_once(case_id: str, fact: dict[str, Any], opened_by: str | None) -> None:
    """Refuse a second opening of case ``case_id``. ``opened_by``: the event id of the opening
    its stream already holds, None when it holds none."""
    if opens(fact) and opened_by is not None:
        raise FactRejected(f"case {case_id!r} was already opened (event {opened_by})")

