"""Which stored facts the readers set aside, and which they fold (projections/readable.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest

from domain import catalogue
from ledger.application import StoredFact
from projections import readable
from tests.planted import deep, fact

CUSTOMER = "0b6e41c0-4f69-52b6-b218-3423553293c3"


def stored(f: dict[str, Any]) -> StoredFact:
    return StoredFact(position=7, stream_id=UUID(CUSTOMER), stream_version=1,
                      recorded_at=datetime(2026, 3, 1, tzinfo=UTC), fact=f)


def call(**changes: Any) -> dict[str, Any]:
    return {**fact(CUSTOMER, "call.inbound", {"outcome": "answered"}, department="care"), **changes}


def test_an_ordinary_fact_and_a_forgotten_persons_erased_fact_are_folded() -> None:
    assert readable.problem(stored(call())) is None
    mention = fact(CUSTOMER, "social.mention", {"network": "twitter", "text": None}, erased=True)
    assert readable.problem(stored(mention)) is None
    mention.pop("erased")
    assert readable.problem(stored(mention)) == "social.mention without data.text"


@pytest.mark.parametrize(("occurred_at", "why"), [
    ("0001-01-01T00:00:00+01:00", "outside the calendar"),
    ("9999-12-31T23:00:00-05:00", "outside the calendar"),
    ("9999-01-01T00:00:00+00:00", "outside the years"),
    ("2026-03-01T10:00:00", "no UTC offset"),
    ("yesterday", "not an ISO 8601 instant"),
])
def test_instants_the_readers_cannot_compute_with(occurred_at: str, why: str) -> None:
    reason = readable.problem(stored(call(occurred_at=occurred_at)))
    assert reason is not None and why in reason


def test_the_years_next_to_the_edges_are_still_read() -> None:
    for occurred_at in ("0003-01-01T00:00:00+14:00", "9897-12-31T23:00:00-12:00"):
        assert readable.problem(stored(call(occurred_at=occurred_at))) is None


def test_unknown_types_and_versions_without_upcaster_wait_for_a_newer_reader() -> None:
    assert "unknown type" in (readable.problem(stored(call(type="loyalty.points"))) or "")
    newer = catalogue.TYPES["call.inbound"].version + 1
    assert "newer than this reader" in (readable.problem(stored(call(v=newer))) or "")


def test_a_reason_names_the_field_never_its_value() -> None:
    registered = fact(CUSTOMER, "customer.registered", {"name": 612345678, "phone": "+34600000001"})
    reason = readable.problem(stored(registered))
    assert reason == "customer.registered data.name is a number, not text"


def test_warranty_sizes_and_nesting() -> None:
    long = fact(CUSTOMER, "purchase.recorded", {"product": "TV", "warranty_months": 96_000})
    assert "ends outside the calendar" in (readable.problem(stored(long)) or "")
    assert readable.problem(stored(fact(CUSTOMER, "purchase.recorded",
                                        {"product": "TV", "warranty_months": "36"}))) is None
    big = fact(CUSTOMER, "social.mention", {"network": "x", "text": "y" * (readable.MAX_FACT_BYTES + 1)})
    assert "a reader accepts" in (readable.problem(stored(big)) or "")
    nested = fact(CUSTOMER, "case.note", {"case_id": "K-1", **deep(readable.NESTING_MARGIN + 230)})
    assert "nested too deeply" in (readable.problem(stored(nested)) or "")
    assert readable.problem(stored(fact(CUSTOMER, "case.note", {"case_id": "K-1", **deep(30)}))) is None


def test_a_stand_in_for_an_undecodable_entry_has_its_reason_and_no_customer() -> None:
    stand_in = readable.undecodable(9, UUID(CUSTOMER), 3, "cannot be decoded: not JSON")
    assert readable.problem(stand_in) == "cannot be decoded: not JSON"
    assert readable.customer_of(stand_in) is None
    assert readable.customer_of(stored(call())) == CUSTOMER
