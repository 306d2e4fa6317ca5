"""The writer stores rows without eventsourcing's aggregate and domain-event objects
(ledger/streams.py): they must be exactly what those objects would have stored, and read back as
those aggregates."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
from eventsourcing.persistence import Notification

from domain import identity, personal
from domain.case import Case
from domain.customer import Customer
from journey import demo_data
from journey.bootstrap import Journey, bootstrap
from journey.config import Settings
from tests.ledgers import append, open_journey, record


def test_stored_rows_are_the_aggregates_events(tmp_path: Path) -> None:
    journey = open_journey(tmp_path)
    try:
        facts = list(demo_data.generate(60, seed=2))
        summary = append(journey, facts, batch_size=97)
        assert summary.recorded == len(facts) and summary.derived > 0
        app = journey.app
        recorder = app.recorder
        with recorder.datastore.transaction(commit=False) as c:  # type: ignore[attr-defined]
            c.execute("SELECT rowid, originator_id, originator_version, topic, state FROM stored_events "
                      "ORDER BY rowid")
            rows = [Notification(id=r[0], originator_id=recorder.convert_originator_id(r[1]),  # type: ignore[attr-defined]
                                 originator_version=r[2], topic=r[3], state=bytes(r[4])) for r in c.fetchall()]
        streams: dict[object, int] = {}
        for row in rows:
            # Through eventsourcing's domain-event class and back: the same topic, the same
            # state (key order included), but for the random nonce of the sealed part.
            event = app.mapper.to_domain_event(row)
            again = app.mapper.to_stored_event(event)
            assert again.topic == row.topic
            mine, theirs = orjson.loads(row.state), orjson.loads(again.state)
            assert list(mine) == list(theirs) and list(mine["fact"]) == list(theirs["fact"])
            assert (personal.ENVELOPE in mine["fact"]) == (personal.ENVELOPE in theirs["fact"])
            mine["fact"].pop(personal.ENVELOPE, None)
            theirs["fact"].pop(personal.ENVELOPE, None)
            assert mine == theirs
            assert row.originator_version == streams.get(row.originator_id, 0) + 1
            streams[row.originator_id] = row.originator_version
        kinds = set()
        marked: dict[type, int] = {Customer: 0, Case: 0}
        for stream_id, version in streams.items():
            aggregate: Customer | Case = app.repository.get(stream_id)  # type: ignore[arg-type]
            assert aggregate.version == version
            kinds.add(type(aggregate))
            # The state the writer checked the rules on is the stored stream's fold.
            kept = journey.ledger.streams.get(stream_id)  # type: ignore[arg-type]
            assert kept is not None and kept.version == version
            if isinstance(aggregate, Customer):
                assert aggregate.facts == version
                assert kept.marker == aggregate.registered_by
                marked[Customer] += aggregate.registered_by is not None
            else:
                assert (kept.marker, kept.owner) == (aggregate.opened_by, aggregate.customer_id)
                marked[Case] += aggregate.opened_by is not None
        assert kinds == {Customer, Case}
        assert marked[Customer] > 0 and marked[Case] > 0
    finally:
        journey.close()


REG = {"type": "customer.registered", "id": "r1", "source": "crm", "customer": {"customer_id": "C-1"},
       "occurred_at": "2026-01-03T10:00:00+01:00", "data": {"name": "Ana", "email": "ana@example.com"}}
CALL = {"type": "call.inbound", "id": "c1", "source": "cc", "customer": {"customer_id": "C-1"},
        "occurred_at": "2026-01-02T10:00:00+01:00", "data": {}}
OPEN = {"type": "case.opened", "id": "k1", "source": "desk", "customer": {"customer_id": "C-1"},
        "occurred_at": "2026-01-04T10:00:00+01:00", "data": {"case_id": "K-1", "kind": "complaint"}}
MOVE = {"type": "address.changed", "id": "a1", "source": "crm", "customer": {"customer_id": "C-1"},
        "occurred_at": "2026-01-05T10:00:00+01:00",
        "data": {"address": {"street": "Mayor", "number": 1, "postal_code": "28013", "city": "Madrid"}}}


@pytest.fixture(params=[pytest.param("sqlite"), pytest.param("postgres", marks=pytest.mark.postgres)])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Journey]]:
    opened: list[Journey] = []

    def open_one() -> Journey:
        if request.param == "sqlite":
            opened.append(open_journey(tmp_path))
        else:
            url = request.getfixturevalue("postgres_db").url
            opened.append(bootstrap(Settings(data_dir=tmp_path / f"l{len(opened)}", store="postgres",
                                             postgres_url=url)))
        return opened[-1]

    yield open_one
    for j in opened:
        j.close()


def test_a_writer_that_did_not_write_the_streams_reads_their_rules_from_the_store(
        opener: Callable[[], Journey]) -> None:
    first = opener()
    assert record(first, CALL, REG, OPEN).recorded == 3
    # A new writer (nothing cached): versions, the registration, the case's opening and owner,
    # and the customer's stored e-mail all come from the store.
    second = opener()
    result = record(second, {**REG, "id": "r2"}, {**OPEN, "id": "k2"},
                    {**OPEN, "id": "k3", "type": "case.note", "customer": {"customer_id": "C-2"},
                     "data": {"case_id": "K-1", "text": "x"}},
                    {**OPEN, "id": "k4", "type": "case.note", "data": {"case_id": "K-1", "text": "y"}},
                    MOVE)
    reasons = [r.reason for r in result.rejected]
    assert len(reasons) == 3
    assert reasons[0].startswith("customer is already registered (event ")
    assert reasons[1].startswith("case 'K-1' was already opened (event ")
    assert reasons[2].startswith("case 'K-1' belongs to another customer (")
    assert (result.recorded, result.derived) == (2, 2)  # the note, the move; a letter and an e-mail
    history = second.app.index.facts_of(identity.customer_uuid("C-1"))
    assert [n.originator_version for n in history if n.originator_id == identity.customer_uuid("C-1")] == \
        [1, 2, 3, 4, 5]
