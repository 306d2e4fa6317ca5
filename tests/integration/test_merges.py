"""Identity merges and unmerges: two records become one person, and a wrong merge is undone.

The rule users rely on: a merge shows both histories in one view; an unmerge gives each record
back exactly the view it would have had if the merge had never happened (the two marker events
stay in the survivor's history: nothing is rewritten), whatever was recorded in between.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
from hypothesis import HealthCheck, given, settings

from domain import identity
from journey.bootstrap import Journey
from tests.ledgers import open_journey, record, strip, tables, views

MARKERS = ("customer.merged", "customer.unmerged")


def reg(number: str, name: str, phone: str, **data: Any) -> dict[str, Any]:
    return {"type": "customer.registered", "id": f"reg-{number}", "source": "crm",
            "customer": {"customer_id": number}, "occurred_at": "2026-01-01T10:00:00+01:00",
            "data": {"name": name, "phone": phone, **data}}


def call(n: int, ref: dict[str, str], day: int, department: str = "sales") -> dict[str, Any]:
    return {"type": "call.inbound", "id": f"call-{n}", "source": "cc", "customer": ref,
            "occurred_at": f"2026-02-{day:02d}T10:00:00+01:00", "department": department,
            "data": {"reason": f"call {n}"}}


def merge(n: int, survivor: str, other: dict[str, str], kind: str = "customer.merged") -> dict[str, Any]:
    return {"type": kind, "id": f"m-{n}", "source": "crm", "customer": {"customer_id": survivor},
            "occurred_at": f"2026-03-{n:02d}T10:00:00+01:00", "department": "crm",
            "data": {"from": other, "reason": "test"}}


def view_of(journey: Journey, ref: str) -> dict[str, Any]:
    found = journey.customer(ref)
    assert found is not None, ref
    found.pop("timeline")
    found.pop("as_of_position")
    return found


def without_markers(view: dict[str, Any]) -> dict[str, Any]:
    """A view minus the merge/unmerge marker events themselves (they stay in the history)."""
    view = copy.deepcopy(strip(view))
    counts = view["counts"]
    for kind in MARKERS:
        counts["events"] -= counts["by_type"].pop(kind, 0)
    counts["by_department"].pop("crm", None)
    return view


def test_merge_shows_both_histories_and_unmerge_gives_each_record_back(tmp_path: Path) -> None:
    ledger = open_journey(tmp_path / "ledger")
    reference = open_journey(tmp_path / "reference")
    try:
        a_facts = [reg("C-1", "Ana", "+34600000001"), call(1, {"phone": "+34600000001"}, 1)]
        b_facts = [reg("C-2", "Ana M.", "+34600000002", email="ana@example.com"),
                   call(2, {"email": "ana@example.com"}, 2, "billing")]
        for journey in (ledger, reference):
            assert not record(journey, *a_facts, *b_facts).rejected

        result = record(ledger, merge(1, "C-1", {"customer_id": "C-2"}))
        assert (result.recorded, result.rejected) == (1, [])
        merged = view_of(ledger, "+34600000002")  # C-2's phone now names the survivor
        assert merged["customer_number"] == "C-1"
        assert merged["merged_from"] == [str(identity.customer_uuid("C-2"))]
        assert merged["counts"]["by_type"]["call.inbound"] == 2
        assert view_of(ledger, "C-2")["customer_id"] == merged["customer_id"]

        # A call recorded while merged lands on the survivor and stays there after the unmerge.
        between = call(3, {"phone": "+34600000001"}, 3)
        record(ledger, between)
        record(reference, between)
        result = record(ledger, merge(2, "C-1", {"customer_id": "C-2"}, "customer.unmerged"))
        assert (result.recorded, result.rejected) == (1, [])

        for ref in ("C-1", "C-2", "+34600000002", "ana@example.com"):
            assert without_markers(view_of(ledger, ref)) == without_markers(view_of(reference, ref)), ref
        assert view_of(ledger, "C-1")["counts"]["by_type"]["customer.unmerged"] == 1
        # Facts again land on each record by its own identities.
        record(ledger, call(4, {"email": "ana@example.com"}, 4))
        assert view_of(ledger, "C-2")["counts"]["by_type"]["call.inbound"] == 2
        # The analysts' tables agree with the views, and a rebuild from zero gives the same.
        live = tables(ledger)
        rows = {r[2] for r in live["events"] if r[1] and r[5] == "call.inbound"}
        assert rows == {str(identity.customer_uuid("C-1")), str(identity.customer_uuid("C-2"))}
        assert live["customer_aliases"] == []
    finally:
        ledger.close()
        reference.close()


def test_merge_and_unmerge_are_refused_when_they_make_no_sense(tmp_path: Path) -> None:
    journey = open_journey(tmp_path / "ledger")
    try:
        record(journey, reg("C-1", "Ana", "+34600000001"), reg("C-2", "Bea", "+34600000002"))
        refusals = record(journey, merge(1, "C-1", {"customer_id": "C-1"}),
                          merge(2, "C-1", {"customer_id": "C-404"}),
                          merge(3, "C-1", {"customer_id": "C-2"}, "customer.unmerged")).rejected
        assert [r.reason.split(":")[0] for r in refusals] == ["customer.merged", "customer.merged",
                                                             "customer.unmerged"]
        assert "already this customer" in refusals[0].reason
        assert "names no known record" in refusals[1].reason
        assert "is not merged into this customer" in refusals[2].reason
    finally:
        journey.close()


def test_a_prospect_merged_into_a_record_goes_back_with_it(tmp_path: Path) -> None:
    """C-2 absorbed a prospect (tweets before registering); merging C-2 into C-1 and undoing it
    gives C-2 its tweets back too."""
    ledger = open_journey(tmp_path / "ledger")
    reference = open_journey(tmp_path / "reference")
    try:
        tweet = {"type": "social.mention", "id": "tw-1", "source": "tw", "customer": {"twitter": "@bea"},
                 "occurred_at": "2025-12-20T10:00:00+01:00", "data": {"network": "twitter", "text": "hola"}}
        facts = [reg("C-1", "Ana", "+34600000001"), tweet, reg("C-2", "Bea", "+34600000002", twitter="@bea")]
        for journey in (ledger, reference):
            record(journey, *facts)
            journey.project()
        record(ledger, merge(1, "C-1", {"twitter": "@bea"}))
        assert view_of(ledger, "@bea")["customer_number"] == "C-1"
        assert view_of(ledger, "C-1")["social"]["mentions"] == 1
        record(ledger, merge(2, "C-1", {"customer_id": "C-2"}, "customer.unmerged"))
        for ref in ("C-1", "C-2", "@bea"):
            assert without_markers(view_of(ledger, ref)) == without_markers(view_of(reference, ref)), ref
        assert view_of(ledger, "C-2")["social"]["mentions"] == 1
    finally:
        ledger.close()
        reference.close()


PHONES = {"A": "+34600000001", "B": "+34600000002"}


@st.composite
def merge_stories(draw: st.DrawFn) -> tuple[list[list[dict[str, Any]]], list[dict[str, Any]]]:
    """Batches for the ledger under test (with a merge and an unmerge somewhere), and the same
    facts without the two markers for the reference ledger."""
    before = draw(st.lists(st.tuples(st.sampled_from("AB"), st.integers(1, 28),
                                     st.sampled_from(["sales", "billing", "stores"])), max_size=8))
    between = draw(st.lists(st.tuples(st.integers(1, 28), st.sampled_from(["sales", "billing"])),
                            max_size=5))
    after = draw(st.lists(st.tuples(st.sampled_from("AB"), st.integers(1, 28)), max_size=5))
    n = 0

    def next_call(who: str, day: int, department: str = "sales") -> dict[str, Any]:
        nonlocal n
        n += 1
        return call(n, {"phone": PHONES[who]}, day, department)

    facts = [reg("C-1", "Ana", PHONES["A"]), reg("C-2", "Bea", PHONES["B"])]
    facts += [next_call(w, d, dep) for w, d, dep in before]
    middle = [next_call("A", d, dep) for d, dep in between]  # B's phone names A while merged
    tail = [next_call(w, d) for w, d in after]
    story = [*facts, merge(1, "C-1", {"customer_id": "C-2"}), *middle,
             merge(2, "C-1", {"customer_id": "C-2"}, "customer.unmerged"), *tail]
    cuts = sorted(draw(st.lists(st.integers(0, len(story)), max_size=4)))
    batches = [story[i:j] for i, j in zip([0, *cuts], [*cuts, len(story)], strict=True) if story[i:j]]
    return batches, [f for f in story if f["type"] not in MARKERS]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(story=merge_stories(), project_every_batch=st.booleans())
def test_property_merge_then_unmerge_restores_both_views(
        tmp_path_factory: Any, story: tuple[list[list[dict[str, Any]]], list[dict[str, Any]]],
        project_every_batch: bool) -> None:
    batches, plain = story
    root = tmp_path_factory.mktemp("merge")
    ledger, reference, rebuilt = (open_journey(root / name) for name in ("ledger", "ref", "rebuilt"))
    try:
        for batch in batches:
            assert not record(ledger, *batch).rejected
            if project_every_batch:
                ledger.project()
        assert not record(reference, *plain).rejected
        for ref in ("C-1", "C-2"):
            assert without_markers(view_of(ledger, ref)) == without_markers(view_of(reference, ref)), ref
        # The same store projected from zero in one go gives the same views and tables.
        rebuilt.app.close()
        rebuilt.app = ledger.app
        rebuilt.project()
        assert views(rebuilt) == views(ledger)
        assert tables(rebuilt) == tables(ledger)
    finally:
        rebuilt.app = None  # type: ignore[assignment]
        if rebuilt._projections is not None:
            rebuilt._projections.close()
        ledger.close()
        reference.close()
