"""A person is registered once: the customer stream's rule.

A registration (``customer.registered``) turns a prospect into a customer and gives them a
customer number; a second one for the same person would leave two competing sets of details,
so it is refused and the sender is told which facts change details instead. The rule needs one
thing of the person's stream: the event id of its registration, if it has one.

It is a plain function over the fact and that state rather than a method of the customer
aggregate: the write path (ledger/writer.py) keeps that state per stream and never builds
aggregate objects (docs/decisions.md, "The streams' rules are functions").
"""

from __future__ import annotations

from typing import Any

from domain.errors import FactRejected

#: The fact type a customer's stream holds at most once.
REGISTERED = "customer.registered"


def registers(fact: dict[str, Any]) -> bool:
    """Whether ``fact`` is a registration (the only kind of fact the rule concerns)."""
    return bool(fact["type"] == REGISTERED)


def check_registered_once(fact: dict[str, Any], registered_by: str | None) -> None:
    """Refuse a second registration. ``registered_by``: the event id of the registration the
    person's stream already holds, None when it holds none."""
    if registers(fact) and registered_by is not None:
        raise FactRejected(
            f"customer is already registered (event {registered_by}); "
            "send address.changed or identity.linked to change their details"
        )

