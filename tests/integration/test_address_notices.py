"""Honest contact data: a change of address the customer did not ask for is told to them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.ledgers import open_journey, record

REG = {"type": "customer.registered", "id": "r1", "source": "crm", "customer": {"customer_id": "C-1"},
       "occurred_at": "2026-01-03T10:00:00+01:00",
       "data": {"name": "Ana", "phone": "+34600000001", "email": "ana@example.com",
                "address": {"street": "Calle Mayor", "number": "5", "postal_code": "28013", "city": "Madrid"}}}
NEW = {"street": "Avenida de la Paz", "number": "40", "postal_code": "28027", "city": "Madrid"}


def change(n: int, ref: dict[str, str], **data: Any) -> dict[str, Any]:
    return {"type": "address.changed", "id": f"a{n}", "source": "billing-app", "customer": ref,
            "occurred_at": f"2026-02-0{n}T10:00:00+01:00", "department": "billing", "agent": "B-7",
            "data": {"address": NEW, **data}}


def test_a_change_by_the_company_sends_a_letter_and_an_email_and_one_by_the_customer_sends_none(
        tmp_path: Path) -> None:
    journey = open_journey(tmp_path / "ledger")
    try:
        record(journey, REG)
        by_company = record(journey, change(1, {"customer_id": "C-1"}, reason="returned mail"))
        assert (by_company.recorded, by_company.derived) == (1, 2)
        by_customer = record(journey, change(2, {"phone": "+34600000001"}, requested_by="customer",
                                             reason="moved"))
        assert (by_customer.recorded, by_customer.derived) == (1, 0)
        again = record(journey, change(1, {"customer_id": "C-1"}, reason="returned mail"))
        assert (again.recorded, again.duplicates, again.derived) == (0, 1, 0)

        view = journey.customer("C-1")
        assert view is not None
        notices = [e for e in view["timeline"] if e["type"] in ("letter.sent", "email.sent")]
        first_change = next(e for e in view["timeline"] if e["source_id"] == "a1")
        assert sorted(e["type"] for e in notices) == ["email.sent", "letter.sent"]
        for notice in notices:
            assert notice["data"]["purpose"] == "service"
            assert notice["data"]["notice_for"] == first_change["event_id"]
            assert notice["department"] == "billing"
            assert notice["occurred_at"] == first_change["occurred_at"]
        # Who changed it, from which department and why, for each change.
        history = [h for h in view["contact_history"] if h["field"] == "address"]
        assert [(h.get("department"), h["reason"]) for h in history] == [
            (None, None), ("billing", "returned mail"), ("billing", "moved")]
        assert [(h.get("requested_by"), h.get("customer_notified")) for h in history] == [
            (None, None), ("company", True), ("customer", False)]
    finally:
        journey.close()


def test_a_prospect_without_email_gets_only_the_letter(tmp_path: Path) -> None:
    journey = open_journey(tmp_path / "ledger")
    try:
        result = record(journey, change(1, {"phone": "+34600000009"}))
        assert (result.recorded, result.derived) == (1, 1)
        view = journey.customer("+34600000009")
        assert view is not None
        assert [e["type"] for e in view["timeline"] if e["type"].endswith(".sent")] == ["letter.sent"]
    finally:
        journey.close()
