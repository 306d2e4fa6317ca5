"""A fact resent under its (source, id) with other content is refused, saying what differs;
the same content again is a duplicate, as it always was. On a real SQLite ledger."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson
import psycopg
import pytest

from domain import identity
from journey.bootstrap import Journey, bootstrap
from journey.config import Settings
from ledger import fact_digest
from ledger.writer import event_id
from tests.harness.postgres import PostgresParams
from tests.ledgers import append, open_journey, record
from tests.legacy_store import legacy_journey

CALL = {"type": "call.outbound", "id": "c1", "source": "cc", "customer": {"phone": "+34600000001"},
        "occurred_at": "2026-01-02T10:00:00+01:00", "department": "sales",
        "data": {"purpose": "commercial", "outcome": "answered", "meta": {"campaign": "spring"}}}


def changed(fact: dict[str, Any], **data: Any) -> dict[str, Any]:
    return {**fact, "data": {**fact["data"], **data}}


@pytest.fixture
def journey(tmp_path: Path) -> Iterator[Journey]:
    j = open_journey(tmp_path)
    yield j
    j.close()


def digests(home: Path) -> dict[str, bytes | None]:
    with closing(sqlite3.connect(home / "ledger.sqlite")) as con:
        return {str(UUID(bytes=r[0])): r[1]
                for r in con.execute("SELECT event_id, digest FROM journey_log WHERE event_id IS NOT NULL")}


def test_a_resend_with_other_data_is_rejected_naming_the_recorded_fact_and_the_fields(
        journey: Journey) -> None:
    assert record(journey, CALL).recorded == 1
    position = journey.app.recorder.max_notification_id()
    result = record(journey, changed(CALL, outcome="no_answer", meta={"campaign": "summer"}))
    assert (result.recorded, result.duplicates) == (0, 0)
    [rejection] = result.rejected
    reason = rejection.reason
    assert rejection.line == 1
    assert reason.startswith("conflict: ")
    assert 'source "cc", id "c1"' in reason
    assert f"event {event_id('cc', 'c1')}, position {position}, recorded at " in reason
    assert 'data.outcome: recorded "answered", sent "no_answer"' in reason
    # A field the catalogue does not declare is personal: named, its values not shown.
    assert "data.meta.campaign differs (personal data: values not shown)" in reason
    assert "spring" not in reason
    assert "data.purpose" not in reason  # what is equal is not listed
    assert journey.app.index.fact_count() == 1  # type: ignore[attr-defined]


def test_a_field_only_one_side_has_is_named(journey: Journey) -> None:
    record(journey, CALL)
    without_department = {k: v for k, v in CALL.items() if k != "department"}
    [rejection] = record(journey, changed(without_department, duration_s=30)).rejected
    assert 'department: recorded "sales", sent (absent)' in rejection.reason
    assert "data.duration_s: recorded (absent), sent 30" in rejection.reason


def test_a_different_customer_reference_is_named_without_showing_personal_values(
        journey: Journey) -> None:
    record(journey, CALL)
    other = {**CALL, "customer": {"phone": "+34600000002"}, "occurred_at": "2026-01-02T11:00:00+01:00"}
    [rejection] = record(journey, other).rejected
    assert "customer.phone differs (personal data: values not shown)" in rejection.reason
    assert 'occurred_at: recorded "2026-01-02T09:00:00+00:00", sent "2026-01-02T10:00:00+00:00"' \
        in rejection.reason
    assert "600000001" not in rejection.reason and "600000002" not in rejection.reason


def test_the_same_fact_again_is_a_duplicate_even_written_with_another_utc_offset(journey: Journey) -> None:
    record(journey, CALL)
    assert record(journey, CALL).duplicates == 1
    same_instant = {**CALL, "occurred_at": "2026-01-02T09:00:00+00:00"}
    again = record(journey, same_instant)
    assert (again.recorded, again.duplicates, again.rejected) == (0, 1, [])
    assert journey.app.index.fact_count() == 1  # type: ignore[attr-defined]


def test_inside_one_batch_a_second_fact_with_other_content_is_a_conflict(journey: Journey) -> None:
    other = changed(CALL, outcome="voicemail")
    result = record(journey, CALL, dict(CALL), other, {**CALL, "id": "c2"})
    assert (result.recorded, result.duplicates) == (2, 1)
    [rejection] = result.rejected
    assert rejection.line == 3
    assert rejection.reason.startswith('conflict: the same source "cc" and id "c1" came earlier in '
                                       "this batch (line or offset 1) with other content: ")
    assert rejection.reason.endswith('data.outcome: earlier "answered", this one "voicemail"')
    # What was recorded is the first line's content.
    assert record(journey, CALL).duplicates == 1
    assert record(journey, other).rejected


def test_a_conflict_reaches_the_rejects_of_an_append_with_its_line(journey: Journey) -> None:
    record(journey, CALL)
    summary = append(journey, [{**CALL, "id": "c0"}, changed(CALL, outcome="sale"), CALL])
    assert (summary.recorded, summary.duplicates) == (1, 1)
    [rejected] = summary.rejected
    assert rejected.line == 2 and 'data.outcome: recorded "answered", sent "sale"' in rejected.reason
    assert orjson.loads(rejected.text)["data"]["outcome"] == "sale"


def test_the_digest_is_keyed_by_the_customers_key_not_a_plain_hash(journey: Journey, tmp_path: Path) -> None:
    record(journey, CALL)
    stored = digests(tmp_path)[event_id("cc", "c1")]
    assert stored is not None and len(stored) == fact_digest.DIGEST_BYTES
    content = fact_digest.content_bytes(CALL)
    for plain in (hashlib.sha256(content).digest(), hashlib.sha1(content).digest(),
                  hashlib.blake2b(content).digest()):
        assert stored != plain[:len(stored)]
    customer = identity.prospect_uuid("phone:+34600000001")
    key = journey.app.keys.key_of(customer)
    assert key is not None
    assert stored == fact_digest.digest(key, content)


def test_after_a_forget_a_resend_cannot_be_compared_and_counts_as_a_duplicate(journey: Journey) -> None:
    record(journey, CALL)
    forgotten = journey.ledger.forget("phone:+34600000001", "art. 17 request")
    assert forgotten is not None
    result = record(journey, changed(CALL, outcome="no_answer"))
    assert (result.recorded, result.duplicates, result.rejected) == (0, 1, [])


def test_the_ledgers_own_facts_have_no_digest(journey: Journey, tmp_path: Path) -> None:
    reg = {"type": "customer.registered", "id": "r1", "source": "crm", "customer": {"customer_id": "C-1"},
           "occurred_at": "2026-01-03T10:00:00+01:00", "data": {"name": "Ana", "phone": "+34600000001"}}
    record(journey, CALL)
    record(journey, reg)  # the prospect behind CALL's phone is merged: a fact the ledger writes
    found = digests(tmp_path)
    assert len(found) == 3
    assert found[event_id("cc", "c1")] is not None and found[event_id("crm", "r1")] is not None
    [derived] = [d for e, d in found.items() if e not in (event_id("cc", "c1"), event_id("crm", "r1"))]
    assert derived is None


def test_a_ledger_from_before_digests_is_migrated_in_place(tmp_path: Path) -> None:
    """Its journey_facts has no digest column: opening it moves its rows into journey_log,
    where they keep NULL (a resend of one of them is a duplicate, whatever it says), new facts
    get digests."""
    with legacy_journey(tmp_path) as old:
        record(old, CALL)
    with closing(sqlite3.connect(tmp_path / "ledger.sqlite")) as con:
        con.executescript(
            "CREATE TABLE old_facts (event_id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, "
            "stream_id TEXT NOT NULL, stream_version INTEGER NOT NULL) WITHOUT ROWID;"
            "INSERT INTO old_facts SELECT event_id, customer_id, stream_id, stream_version FROM journey_facts;"
            "DROP TABLE journey_facts; ALTER TABLE old_facts RENAME TO journey_facts;"
            "CREATE INDEX journey_facts_by_customer_stream "
            "ON journey_facts (customer_id, stream_id, stream_version);")
        columns = [r[1] for r in con.execute("PRAGMA table_info(journey_facts)")]
    assert "digest" not in columns

    journey = open_journey(tmp_path)
    try:
        assert digests(tmp_path) == {event_id("cc", "c1"): None}
        resent = record(journey, changed(CALL, outcome="no_answer"))
        assert (resent.recorded, resent.duplicates, resent.rejected) == (0, 1, [])
        new = {**CALL, "id": "c2"}
        assert record(journey, new).recorded == 1
        assert digests(tmp_path)[event_id("cc", "c2")] is not None
        assert record(journey, changed(new, outcome="no_answer")).rejected
        assert [n.originator_version for n in journey.app.index.facts_of(
            identity.prospect_uuid("phone:+34600000001"))] == [1, 2]
    finally:
        journey.close()


@pytest.mark.postgres
def test_a_postgres_ledger_from_before_digests_is_migrated_in_place(
        postgres_db: PostgresParams, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, store="postgres", postgres_url=postgres_db.url)
    journey = bootstrap(settings)
    record(journey, CALL)
    journey.close()
    with psycopg.connect(postgres_db.dsn) as conn:
        conn.execute("ALTER TABLE journey_facts DROP COLUMN digest")
    journey = bootstrap(settings)
    try:
        with psycopg.connect(postgres_db.dsn) as conn:
            rows = conn.execute("SELECT event_id::text, digest FROM journey_facts").fetchall()
        assert rows == [(event_id("cc", "c1"), None)]
        resent = record(journey, changed(CALL, outcome="no_answer"))
        assert (resent.recorded, resent.duplicates, resent.rejected) == (0, 1, [])
        new = {**CALL, "id": "c2"}
        assert record(journey, new).recorded == 1
        [rejection] = record(journey, changed(new, outcome="no_answer")).rejected
        assert 'data.outcome: recorded "answered", sent "no_answer"' in rejection.reason
    finally:
        journey.close()
