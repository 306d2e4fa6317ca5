"""The reason given for a conflicting fact: what differs, never a personal value, and nothing
the ledger itself added to the recorded fact."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from domain import personal
from ledger.application import StoredFact
from ledger.conflicts import recorded_conflict
from ledger.fact_digest import content_of

AT = datetime(2026, 1, 2, 9, 0, tzinfo=UTC)


def stored(fact: dict[str, Any]) -> StoredFact:
    return StoredFact(position=7, stream_id=uuid4(), stream_version=1, recorded_at=AT, fact=fact)


def sent(fact: dict[str, Any]) -> dict[str, Any]:
    return content_of(fact)


MENTION = {"type": "social.mention", "id": "m1", "source": "tw", "customer": {"twitter": "@ana"},
           "occurred_at": "2026-01-01T10:00:00+00:00", "data": {"network": "twitter", "text": "hola"},
           "event_id": "e-1", "customer_uuid": str(uuid4()), "v": 1}


def test_a_forgotten_customers_fact_is_said_to_be_unreadable_and_only_public_fields_compared() -> None:
    public, _ = personal.split(MENTION)
    erased = personal.erased(public)
    reason = recorded_conflict(sent({**MENTION, "data": {"network": "x", "text": "adios"}}), stored(erased))
    assert "its personal part can no longer be read (the customer was forgotten)" in reason
    assert 'data.network: recorded "twitter", sent "x"' in reason
    assert "data.text" not in reason and "customer.twitter" not in reason and "adios" not in reason


def test_what_a_merge_adds_to_its_data_is_not_a_difference() -> None:
    ref = {"phone": "+34600000001"}
    merge = {"type": "customer.merged", "id": "mg1", "source": "crm", "customer": {"customer_id": "C-1"},
             "occurred_at": "2026-01-01T10:00:00+00:00", "data": {"from": ref, "reason": "same person"}}
    recorded = {**merge, "event_id": "e-2", "customer_uuid": str(uuid4()),
                "data": {"from": str(uuid4()), "from_ref": ref, "reason": "same person",
                         "identities": ["phone:+34600000001"]}}
    reason = recorded_conflict(sent({**merge, "department": "billing"}), stored(recorded))
    assert reason.endswith(': department: recorded (absent), sent "billing"')
