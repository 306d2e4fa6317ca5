"""The write path against a real SQLite event store."""

from __future__ import annotations

from pathlib import Path

import pytest

from domain import identity
from tests.ledgers import open_journey, record, views

REG = {"type": "customer.registered", "id": "r1", "source": "crm", "customer": {"customer_id": "C-1"},
       "occurred_at": "2026-01-03T10:00:00+01:00",
       "data": {"name": "Ana", "phone": "+34600000001", "twitter": "@ana"}}
TWEET = {"type": "social.mention", "id": "t1", "source": "tw", "customer": {"twitter": "@ana"},
         "occurred_at": "2026-01-01T10:00:00+01:00", "data": {"network": "twitter", "text": "hola"}}
CALL = {"type": "call.outbound", "id": "c1", "source": "cc", "customer": {"phone": "600000001"},
        "occurred_at": "2026-01-02T10:00:00+01:00", "data": {"purpose": "commercial"}}


@pytest.fixture
def journey(tmp_path: Path):  # type: ignore[no-untyped-def]
    j = open_journey(tmp_path)
    yield j
    j.close()


def test_a_fact_is_recorded_once(journey) -> None:  # type: ignore[no-untyped-def]
    assert record(journey, CALL).recorded == 1
    again = record(journey, CALL, CALL)
    assert (again.recorded, again.duplicates) == (0, 2)
    assert journey.app.recorder.max_notification_id() == 1


def test_prospects_join_the_customer_who_registers_their_identities(journey) -> None:  # type: ignore[no-untyped-def]
    record(journey, TWEET, CALL)
    result = record(journey, REG)
    assert (result.recorded, result.derived) == (1, 2)  # two prospects merged
    journey.project()
    [view] = views(journey).values()
    assert view["customer_id"] == str(identity.customer_uuid("C-1"))
    assert view["name"] == "Ana" and view["kind"] == "customer"
    assert view["counts"]["by_type"] == {"social.mention": 1, "call.outbound": 1,
                                         "customer.registered": 1, "customer.merged": 2}
    assert sorted(view["merged_from"]) == sorted([str(identity.prospect_uuid("twitter:@ana")),
                                                  str(identity.prospect_uuid("phone:+34600000001"))])
    timeline = journey.projections.timeline(view["customer_id"])
    assert [r["type"] for r in timeline][:2] == ["social.mention", "call.outbound"]
    # After the merge a touchpoint naming the handle lands on the customer directly.
    record(journey, {**TWEET, "id": "t2"})
    journey.project()
    assert len(views(journey)) == 1


def test_an_identity_claimed_by_another_customer_moves(journey) -> None:  # type: ignore[no-untyped-def]
    record(journey, REG)
    other = {**REG, "id": "r2", "customer": {"customer_id": "C-2"},
             "data": {"name": "Bea", "phone": "+34600000001"}}
    result = record(journey, other)
    assert (result.recorded, result.derived) == (1, 1)
    record(journey, {**CALL, "id": "c2"})
    journey.project()
    by_name = {v["name"]: v for v in views(journey).values()}
    assert by_name["Bea"]["contact"]["phone"] == "+34600000001"
    assert by_name["Ana"]["contact"]["phone"] is None
    assert "phone" not in {i["kind"] for i in by_name["Ana"]["identities"]}
    assert by_name["Bea"]["counts"]["by_type"].get("call.outbound") == 1


def test_state_rules_reject_one_fact_and_keep_the_rest(journey) -> None:  # type: ignore[no-untyped-def]
    opened = {"type": "case.opened", "id": "k1", "source": "crm", "customer": {"customer_id": "C-1"},
              "occurred_at": "2026-01-03T11:00:00+01:00", "data": {"case_id": "K-1", "kind": "complaint"}}
    stolen = {**opened, "id": "k2", "type": "case.note", "customer": {"customer_id": "C-2"},
              "data": {"case_id": "K-1", "text": "x"}}
    twice = {**REG, "id": "r9"}
    result = record(journey, REG, opened, stolen, twice, CALL)
    assert result.recorded == 3
    reasons = {r.line: r.reason for r in result.rejected}
    assert "case 'K-1' belongs to another customer" in reasons[3]
    assert "already registered" in reasons[4]


def test_unknown_ledger_id_is_rejected(journey) -> None:  # type: ignore[no-untyped-def]
    fact = {**CALL, "customer": {"customer_id": "00000000-0000-0000-0000-000000000001"}}
    result = record(journey, fact)
    assert result.recorded == 0 and "no customer with ledger id" in result.rejected[0].reason


def test_aggregate_cache_survives_a_concurrent_writer(tmp_path: Path) -> None:
    first, second = open_journey(tmp_path), open_journey(tmp_path)
    try:
        record(first, REG)
        record(second, {**CALL, "id": "c-a"})  # second appends to the customer behind first's back
        result = record(first, {**CALL, "id": "c-b"})  # first's cached aggregate is stale: retried
        assert result.recorded == 1
        first.project()
        [view] = views(first).values()
        assert view["counts"]["by_type"]["call.outbound"] == 2
    finally:
        first.close()
        second.close()
