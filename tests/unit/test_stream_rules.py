"""The streams' rules (domain/registration.py, domain/case_rules.py) and the stored events'
classes they belong with (domain/customer.py, domain/case.py): pure, no store."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from eventsourcing.utils import get_topic

from domain import case_rules, identity, registration
from domain.case import Case
from domain.customer import Customer
from domain.errors import FactRejected

ANA = identity.customer_uuid("C-1")
BEA = identity.customer_uuid("C-2")


def fact(type_name: str, event_id: str, **data: Any) -> dict[str, Any]:
    return {"type": type_name, "event_id": event_id, "data": data}


def test_a_person_is_registered_once() -> None:
    registration.check_registered_once(fact("customer.registered", "e-1"), None)
    with pytest.raises(FactRejected) as refused:
        registration.check_registered_once(fact("customer.registered", "e-2"), "e-1")
    # It names the registration on record and says what to send instead.
    assert str(refused.value) == ("customer is already registered (event e-1); "
                                  "send address.changed or identity.linked to change their details")


def test_other_facts_about_a_registered_person_are_accepted() -> None:
    for type_name in ("call.inbound", "address.changed", "identity.linked"):
        registration.check_registered_once(fact(type_name, "e-2"), "e-1")
    assert registration.registers(fact("customer.registered", "e-1"))
    assert not registration.registers(fact("customer.merged", "e-1"))


def test_a_case_stays_with_its_customer() -> None:
    case_rules.check_same_customer("K-1", ANA, ANA)
    with pytest.raises(FactRejected) as refused:
        case_rules.check_same_customer("K-1", BEA, ANA)
    assert str(refused.value) == (f"case 'K-1' belongs to another customer ({ANA}); "
                                  "a case is never moved between customers by a touchpoint")


def test_a_case_is_opened_once() -> None:
    case_rules.check_opened_once("K-1", fact("case.opened", "e-1", case_id="K-1"), None)
    case_rules.check_opened_once("K-1", fact("case.note", "e-2", case_id="K-1"), "e-1")
    with pytest.raises(FactRejected) as refused:
        case_rules.check_opened_once("K-1", fact("case.opened", "e-3", case_id="K-1"), "e-1")
    assert str(refused.value) == "case 'K-1' was already opened (event e-1)"


def test_the_stored_events_keep_their_topics() -> None:
    # Every stored row names its class: renaming or moving one would leave existing ledgers
    # unreadable (the topic is resolved when a row is decoded through its class).
    assert [get_topic(c) for c in (Customer, Customer.Started, Customer.Recorded)] == [
        "domain.customer:Customer", "domain.customer:Customer.Started", "domain.customer:Customer.Recorded"]
    assert [get_topic(c) for c in (Case, Case.Started, Case.Recorded)] == [
        "domain.case:Case", "domain.case:Case.Started", "domain.case:Case.Recorded"]


def test_a_customer_stream_folds_into_what_the_rule_checks() -> None:
    customer = Customer._create(Customer.Started, id=ANA, fact=fact("call.inbound", "e-1"),
                                kind="prospect", customer_number=None)
    assert (customer.kind, customer.registered_by, customer.facts) == ("prospect", None, 1)
    customer.trigger_event(Customer.Recorded, fact=fact("customer.registered", "e-2"))
    customer.trigger_event(Customer.Recorded, fact=fact("email.sent", "e-3"))
    assert (customer.kind, customer.registered_by, customer.facts, customer.version) == \
        ("customer", "e-2", 3, 3)
    with pytest.raises(FactRejected, match=r"already registered \(event e-2\)"):
        registration.check_registered_once(fact("customer.registered", "e-4"), customer.registered_by)


def test_a_case_stream_folds_into_what_the_rules_check() -> None:
    case_id = identity.case_uuid("K-1")
    case = Case._create(Case.Started, id=case_id, fact=fact("case.note", "e-1", case_id="K-1"),
                        case_id="K-1", customer_id=str(ANA))
    assert case.opened_by is None  # a late note arrived before the opening
    case.trigger_event(Case.Recorded, fact=fact("case.opened", "e-2", case_id="K-1"))
    assert (case.case_id, case.customer_id, case.opened_by, case.version) == ("K-1", str(ANA), "e-2", 2)
    with pytest.raises(FactRejected, match=r"belongs to another customer"):
        case_rules.check_same_customer(case.case_id, BEA, UUID(case.customer_id))
