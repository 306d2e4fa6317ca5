"""A ledger sealed by the earlier deny-list rule, opened by today's code.

Stored bytes never change (the chains hash them), so events sealed the old way must be read
exactly as they were sealed: the stored public part, with the envelope joined back. Their
chains verify, new facts of the same person are sealed by today's rule, and forgetting the
person erases both kinds.
"""

from __future__ import annotations

from pathlib import Path
from uuid import UUID

from domain import identity
from journey.references import reference_key
from ledger import chain
from ledger.application import decode_notification
from projections.customer_view import render
from replay import diff, rebuild
from tests.ledgers import open_journey, record
from tests.legacy_sealing import sealed_by_old_rule

PHONE = "+34611555777"
NUMBER = "C-7311"
REG = {"type": "customer.registered", "id": "r1", "source": "crm", "customer": {"customer_id": NUMBER},
       "occurred_at": "2026-01-03T10:00:00+01:00",
       "data": {"name": "Maite Urrutia", "phone": PHONE, "iban": "ES7620770024003102575766"}}
OLD_CALL = {"type": "call.inbound", "id": "cdr-34611555777-1", "source": "switch",
            "customer": {"phone": PHONE}, "occurred_at": "2026-01-04T10:00:00+01:00",
            "data": {"reason": "billing", "notes": "prefers Basque"}}
NEW_CALL = {"type": "call.inbound", "id": "cdr-34611555777-2", "source": "switch",
            "customer": {"phone": PHONE}, "occurred_at": "2026-01-05T10:00:00+01:00",
            "data": {"reason": "billing", "notes": "asked for a callback"}}
OTHER = {"type": "call.inbound", "id": "cdr-34699000222-1", "source": "switch",
         "customer": {"phone": "+34699000222"}, "occurred_at": "2026-01-04T11:00:00+01:00",
         "data": {"notes": "another person's note"}}


def test_an_old_ledger_reads_verifies_and_forgets_with_todays_rule(tmp_path: Path) -> None:
    home = tmp_path / "ledger"
    journey = open_journey(home)
    with sealed_by_old_rule():
        record(journey, REG, OLD_CALL, OTHER)
    journey.close()

    journey = open_journey(home)
    customer_id = identity.customer_uuid(NUMBER)
    old = [decode_notification(journey.app, n) for n in journey.app.index.facts_of(customer_id)]
    # What the old rule left public is stored in clear: the events are theirs, unchanged.
    assert b"prefers Basque" in b"".join(n.state for n in journey.app.index.facts_of(customer_id))
    call = next(sf.fact for sf in old if sf.fact["type"] == "call.inbound")
    assert call["id"] == OLD_CALL["id"] and call["customer"] == {"phone": PHONE}
    assert call["data"] == OLD_CALL["data"]
    registration = next(sf.fact for sf in old if sf.fact["type"] == "customer.registered")
    assert registration["data"]["name"] == "Maite Urrutia" and registration["data"]["iban"].startswith("ES76")

    record(journey, NEW_CALL)
    newest = journey.app.index.facts_of(customer_id)[-1]
    assert b"asked for a callback" not in newest.state and b"cdr-34611555777-2" not in newest.state
    assert decode_notification(journey.app, newest).fact["data"]["notes"] == "asked for a callback"
    journey.project()
    view = render(journey.projections.load_views([str(customer_id)])[str(customer_id)])
    assert view["name"] == "Maite Urrutia" and view["counts"]["by_type"]["call.inbound"] == 2
    report = chain.verify_store(journey.app.recorder)
    assert report.intact, report.as_dict()

    result = journey.ledger.forget(reference_key(PHONE), "art. 17 request")
    assert result is not None and not result.already
    journey.project()
    facts = [decode_notification(journey.app, n).fact for n in journey.app.index.facts_of(customer_id)]
    assert all(f.get("erased") for f in facts if f["type"] != "customer.forgotten")
    assert all(f["customer"].get("phone") is None and f["data"].get("name") is None for f in facts)
    # An erased fact's id is its event id, whatever the old rule left of the source id.
    assert all(f["id"] == f["event_id"] for f in facts if f.get("erased"))
    assert chain.verify_store(journey.app.recorder).intact
    tomb = render(journey.projections.load_views([str(customer_id)])[str(customer_id)])
    assert tomb["forgotten"] is True and tomb["name"] is None
    assert journey.projections.con.execute(
        "SELECT count(*) FROM events WHERE customer_id = ? AND (data IS NOT NULL OR source_id <> event_id)",
        [str(customer_id)]).fetchall() == [(0,)]
    # The other person, sealed the old way too, still reads in full.
    other = journey.projections.resolve(reference_key("+34699000222"))
    assert other is not None
    other_facts = [decode_notification(journey.app, n).fact for n in journey.app.index.facts_of(UUID(other))]
    assert other_facts[0]["data"]["notes"] == "another person's note"

    live = Path(journey.projections.path)
    rebuilt = rebuild.from_store(journey.app, tmp_path / "rebuild")
    journey.close()
    result_diff = diff.diff(live, rebuilt.path)
    assert result_diff.same, [t.to_json() for t in result_diff.tables if not t.same]
