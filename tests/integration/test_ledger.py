"""The write path, one contract run against both real event stores (SQLite and PostgreSQL)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.persistence import IntegrityError, Tracking

from domain import catalogue, identity
from journey.bootstrap import Journey, bootstrap
from journey.config import Settings
from ledger.writer import BatchResult
from tests.ledgers import open_journey, record, views
from tests.legacy_store import legacy_journey

REG = {"type": "customer.registered", "id": "r1", "source": "crm", "customer": {"customer_id": "C-1"},
       "occurred_at": "2026-01-03T10:00:00+01:00",
       "data": {"name": "Ana", "phone": "+34600000001", "twitter": "@ana"}}
TWEET = {"type": "social.mention", "id": "t1", "source": "tw", "customer": {"twitter": "@ana"},
         "occurred_at": "2026-01-01T10:00:00+01:00", "data": {"network": "twitter", "text": "hola"}}
CALL = {"type": "call.outbound", "id": "c1", "source": "cc", "customer": {"phone": "600000001"},
        "occurred_at": "2026-01-02T10:00:00+01:00", "data": {"purpose": "commercial"}}


#: Opens another ledger on the test's store (a new connection pool or SQLite connection).
Opener = Callable[[], Journey]


@pytest.fixture(params=[pytest.param("sqlite"), pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """One empty store per test; yields a function that opens a ledger on it (any number)."""
    opened: list[Journey] = []
    if request.param == "sqlite":
        def open_one() -> Journey:
            return open_journey(tmp_path)
    else:
        url = request.getfixturevalue("postgres_db").url

        def open_one() -> Journey:
            # Each ledger its own projections directory: only the event store is shared.
            data_dir = tmp_path / f"ledger{len(opened)}"
            return bootstrap(Settings(data_dir=data_dir, store="postgres", postgres_url=url))

    def opener() -> Journey:
        opened.append(open_one())
        return opened[-1]

    yield opener
    for j in opened:
        j.close()


@pytest.fixture
def journey(store: Opener) -> Journey:
    return store()


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


def test_aggregate_cache_survives_a_concurrent_writer(store: Opener) -> None:
    first, second = store(), store()
    record(first, REG)
    record(second, {**CALL, "id": "c-a"})  # second appends to the customer behind first's back
    result = record(first, {**CALL, "id": "c-b"})  # first's cached aggregate is stale: retried
    assert result.recorded == 1
    first.project()
    [view] = views(first).values()
    assert view["counts"]["by_type"]["call.outbound"] == 2


def test_owners_a_writer_knew_are_read_again_after_another_writer_moved_them(store: Opener) -> None:
    """A writer keeps the identity owners and records it read between its batches; another
    writer's registration moves the phone it knew (absorbing the prospect that owned it), so
    the first writer's next call on that phone lands on the registered customer."""
    first, second = store(), store()
    record(first, {**CALL, "id": "c0"})  # first learns: the phone is a prospect's
    assert record(second, REG).recorded == 1  # Ana registers with that phone, behind its back
    result = record(first, {**CALL, "id": "c1", "occurred_at": "2026-01-04T10:00:00+01:00"})
    assert result.recorded == 1 and not result.rejected
    ana = identity.customer_uuid("C-1")
    owners = first.app.index.identity_owners(["phone:+34600000001"])
    assert owners["phone:+34600000001"] == ana
    # Recorded for Ana herself, not for the prospect she absorbed (the stale owner).
    call = str(identity.event_uuid("cc", "c1"))
    assert first.app.index.fact_digests([call])[call][0] == ana
    first.project()
    [view] = [v for v in views(first).values() if v.get("name") == "Ana"]
    assert view["counts"]["by_type"]["call.outbound"] == 2


def _tracked(journey: Journey, *facts: dict[str, Any], position: int) -> BatchResult:
    batch = [(i, catalogue.validate(dict(f))) for i, f in enumerate(facts, 1)]
    return journey.ledger.append(batch, tracking=Tracking("kafka:t:0", position))


def test_a_tracked_batch_is_recorded_with_its_position(journey: Journey) -> None:
    recorder = journey.app.recorder
    result = _tracked(journey, REG, TWEET, position=5)
    assert (result.recorded, result.duplicates) == (2, 0)
    assert recorder.max_tracking_id("kafka:t:0") == 5  # type: ignore[attr-defined]
    assert recorder.fact_count() == 2  # type: ignore[attr-defined]
    head = recorder.max_notification_id()

    # Redelivered (same position, or one already passed): nothing is recorded, all duplicates,
    # even when the redelivered batch holds facts the ledger has not seen.
    again = _tracked(journey, REG, TWEET, position=5)
    assert (again.recorded, again.duplicates, again.rejected) == (0, 2, [])
    stale = _tracked(journey, {**CALL, "id": "c-new"}, position=4)
    assert (stale.recorded, stale.duplicates) == (0, 1)
    assert recorder.max_notification_id() == head
    assert recorder.fact_count() == 2  # type: ignore[attr-defined]
    assert recorder.max_tracking_id("kafka:t:0") == 5  # type: ignore[attr-defined]

    # The next position records, and the position moves with it.
    after = _tracked(journey, {**CALL, "id": "c-new"}, position=6)
    assert after.recorded == 1
    assert recorder.max_tracking_id("kafka:t:0") == 6  # type: ignore[attr-defined]
    journey.project()
    [view] = views(journey).values()
    assert view["counts"]["by_type"] == {"customer.registered": 1, "social.mention": 1,
                                         "call.outbound": 1}


def test_a_failed_tracked_batch_records_neither_events_nor_position(
        journey: Journey, monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = journey.app.recorder
    _tracked(journey, REG, position=1)
    # The index "forgets" which facts it holds: the ledger rebuilds events for REG's call again,
    # and the store refuses the batch on the idempotency key after inserting events and tracking
    # in the same transaction. All of it must roll back.
    record(journey, CALL)
    head = recorder.max_notification_id()
    monkeypatch.setattr(recorder, "known_events", lambda ids: set())
    with pytest.raises(IntegrityError):
        _tracked(journey, CALL, position=2)
    monkeypatch.undo()
    assert recorder.max_tracking_id("kafka:t:0") == 1  # type: ignore[attr-defined]
    assert recorder.max_notification_id() == head
    assert recorder.fact_count() == 2  # type: ignore[attr-defined]
    assert record(journey, CALL).duplicates == 1


def test_a_merged_prospects_facts_are_found_by_its_id(journey: Journey) -> None:
    record(journey, TWEET, CALL)
    record(journey, REG)
    prospect = identity.prospect_uuid("twitter:@ana")
    found = journey.app.index.facts_of(prospect)
    assert [n.originator_version for n in found] == [1]
    assert [journey.app.mapper.to_domain_event(n).fact["id"] for n in found] == ["t1"]  # type: ignore[attr-defined]
    assert journey.app.index.facts_of(identity.customer_uuid("C-404")) == []


def test_a_store_with_the_old_customer_index_is_given_the_covering_one(tmp_path: Path) -> None:
    """Stores created before the covering index had ``journey_facts_by_customer`` on
    ``customer_id`` alone: opening one moves its facts into journey_log, whose index on
    (customer_id, position) covers a customer's facts, and a customer's facts read the same."""
    prospect = identity.prospect_uuid("twitter:@ana")
    with legacy_journey(tmp_path) as old:
        record(old, TWEET, CALL)
        record(old, REG)
        before = [(n.id, n.originator_version) for n in old.app.index.facts_of(prospect)]
    assert before
    with closing(sqlite3.connect(tmp_path / "ledger.sqlite")) as con:
        con.execute("DROP INDEX journey_facts_by_customer_stream")
        con.execute("CREATE INDEX journey_facts_by_customer ON journey_facts (customer_id)")
        con.commit()
    journey = open_journey(tmp_path)
    try:
        assert [(n.id, n.originator_version) for n in journey.app.index.facts_of(prospect)] == before
        with closing(sqlite3.connect(tmp_path / "ledger.sqlite")) as con:
            names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
            plan = " ".join(str(r) for r in con.execute(
                "EXPLAIN QUERY PLAN SELECT position FROM journey_log "
                "WHERE customer_id = ? ORDER BY position", (prospect.bytes,)))
        assert "journey_log_by_customer" in names
        assert not {"journey_facts_by_customer_stream", "journey_facts_by_customer"} & names
        assert "COVERING INDEX journey_log_by_customer" in plan and "TEMP B-TREE" not in plan
    finally:
        journey.close()


def test_an_identity_claimed_concurrently_is_never_last_writer_wins(store: Opener) -> None:
    """Writer A reads who owns a phone; writer B claims it before A commits: A must redo."""
    first, second = store(), store()
    record(first, {**CALL, "id": "c0"})  # a prospect owns the phone
    bea = {**REG, "id": "r-bea", "customer": {"customer_id": "C-2"},
           "data": {"name": "Bea", "phone": "+34600000001"}}
    raced = []

    def claim_meanwhile(_: BatchResult) -> None:
        if not raced:  # only on the first attempt: the retry must see Bea's claim
            raced.append(record(second, bea))

    batch = [(1, catalogue.validate(dict(REG)))]  # Ana registers with the same phone
    result = first.ledger.append(batch, before_commit=claim_meanwhile)
    assert raced and raced[0].recorded == 1
    assert result.recorded == 1
    first.project()
    by_name = {v["name"]: v for v in views(first).values() if v.get("name")}
    # Bea claimed it first (and absorbed the prospect); Ana's later claim moved it to Ana.
    assert by_name["Ana"]["contact"]["phone"] == "+34600000001"
    assert by_name["Bea"]["contact"]["phone"] is None
    assert by_name["Bea"]["counts"]["by_type"]["customer.merged"] == 1
    owners = first.app.index.identity_owners(["phone:+34600000001"])
    assert str(owners["phone:+34600000001"]) == by_name["Ana"]["customer_id"]


def test_a_fact_may_name_the_customer_by_ledger_id(journey: Journey) -> None:
    record(journey, REG)
    ledger_id = str(identity.customer_uuid("C-1"))
    result = record(journey, {**CALL, "id": "c-uuid", "customer": {"customer_id": ledger_id}})
    assert result.recorded == 1 and not result.rejected
    journey.project()
    [view] = views(journey).values()
    assert view["customer_number"] == "C-1"
    assert ledger_id not in {i["value"] for i in view["identities"]}
    assert view["counts"]["by_type"]["call.outbound"] == 1
