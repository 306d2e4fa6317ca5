"""The writer's recording clock: the instant a loader that knows when each fact was recorded
(the demo) stamps its facts with, and what every door gets without one (the moment of writing)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from consumers.jsonl_ingest import ingest
from domain import catalogue, identity
from journey.bootstrap import Journey
from ledger.application import history_of
from replay import asof
from tests.ledgers import open_journey

REG = {"type": "customer.registered", "id": "r1", "source": "crm", "customer": {"customer_id": "C-1"},
       "occurred_at": "2026-03-02T10:00:00+01:00",
       "data": {"name": "Ana", "phone": "+34600000001", "email": "ana@example.es"}}
MOVE = {"type": "address.changed", "id": "a1", "source": "billing", "customer": {"customer_id": "C-1"},
        "occurred_at": "2026-03-09T11:00:00+01:00", "department": "billing",
        "data": {"address": {"street": "Calle Mayor", "number": "7", "postal_code": "28013",
                             "city": "Madrid"}, "reason": "data cleanup", "requested_by": "company"}}
CALL = {"type": "call.inbound", "id": "c1", "source": "cc", "customer": {"customer_id": "C-1"},
        "occurred_at": "2026-03-10T09:00:00+01:00", "data": {"reason": "billing question"}}


def _recorded(journey: Journey) -> dict[str, datetime]:
    """(type of each stored fact of C-1) -> its recording instant."""
    stored = history_of(journey.app)(str(identity.customer_uuid("C-1")))
    return {f"{sf.fact['type']}:{sf.fact['source']}": sf.recorded_at for sf in stored}


def test_a_clock_stamps_each_fact_and_what_the_ledger_derives_from_it(tmp_path: Path) -> None:
    at = {1: datetime(2026, 3, 2, 9, 0, 40, tzinfo=UTC), 2: datetime(2026, 3, 9, 10, 2, 5, tzinfo=UTC),
          3: datetime(2026, 3, 12, 2, 0, tzinfo=UTC)}
    journey = open_journey(tmp_path)
    try:
        summary = ingest(journey.ledger, [orjson.dumps(f) for f in (REG, MOVE, CALL)],
                         clock=at.__getitem__)
        assert (summary.recorded, summary.derived) == (3, 2)  # the change's letter and e-mail
        assert _recorded(journey) == {
            "customer.registered:crm": at[1], "address.changed:billing": at[2],
            # The notices are written with the change, in the same instant.
            "letter.sent:ledger": at[2], "email.sent:ledger": at[2],
            "call.inbound:cc": at[3]}
        # "As the company knew it" on 10 March at noon: the call of that morning had not come in.
        known = asof.as_of(journey.app, str(identity.customer_uuid("C-1")),
                           datetime(2026, 3, 10, 12, tzinfo=UTC), "recorded")
        assert [sf.fact["type"] for sf in known.facts] == [
            "customer.registered", "address.changed", "letter.sent", "email.sent"]
        happened = asof.as_of(journey.app, str(identity.customer_uuid("C-1")),
                              datetime(2026, 3, 10, 12, tzinfo=UTC), "occurred")
        assert [sf.fact["type"] for sf in happened.late] == ["call.inbound"]
    finally:
        journey.close()


def test_without_a_clock_a_fact_is_recorded_when_it_is_written(tmp_path: Path) -> None:
    journey = open_journey(tmp_path)
    try:
        before = datetime.now(UTC)
        journey.ledger.append([(1, catalogue.validate(dict(REG))), (2, catalogue.validate(dict(MOVE)))])
        after = datetime.now(UTC)
        for instant in _recorded(journey).values():
            assert before - timedelta(seconds=1) <= instant <= after + timedelta(seconds=1)
    finally:
        journey.close()
