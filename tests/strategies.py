"""Hypothesis strategies: valid fact sequences over a handful of people."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

PEOPLE = [
    {"customer_id": f"C-{i}", "phone": f"+3460000000{i}", "twitter": f"@person{i}",
     "email": f"p{i}@example.com"}
    for i in range(1, 5)
]
DEPARTMENTS = ["sales", "customer_care", "social_media", "stores", "billing"]


def _data(kind: str, n: int) -> dict[str, Any]:
    return {
        "call.outbound": {"purpose": "commercial", "campaign": "fibra", "outcome": "no_answer"},
        "call.inbound": {"reason": "question"},
        "social.mention": {"network": "twitter", "text": f"mention {n}"},
        "store.visit": {"store": "Madrid"},
        "address.changed": {"address": {"street": f"Calle {n}", "postal_code": "28001",
                                        "city": "Madrid"}, "reason": "moved"},
        "consent.given": {"channel": "email", "purpose": "commercial", "text": "yes"},
        "consent.withdrawn": {"channel": "email", "purpose": "commercial"},
        "objection.recorded": {"channels": "all"},
        "purchase.recorded": {"product": "TV", "serial": f"SN{n}"},
        "case.opened": {"case_id": f"K{n % 3}", "kind": "complaint"},
        "case.note": {"case_id": f"K{n % 3}", "text": "note"},
        "case.resolved": {"case_id": f"K{n % 3}"},
        "promise.made": {"promise_id": f"P{n % 2}", "what": "call back", "due_by": "2026-02-01"},
        "promise.kept": {"promise_id": f"P{n % 2}"},
    }[kind]


KINDS = ["call.outbound", "call.inbound", "social.mention", "store.visit", "address.changed",
         "consent.given", "consent.withdrawn", "objection.recorded", "purchase.recorded",
         "case.opened", "case.note", "case.resolved", "promise.made", "promise.kept",
         "customer.registered"]


@st.composite
def fact_lists(draw: st.DrawFn, max_size: int = 30) -> list[dict[str, Any]]:
    """Facts for up to four people; ids unique; people named by varying identities.

    Case ids are per person (K0-K2 of person i are "i-K0"...) and case facts name the person
    by customer number, so no fact is refused and every property can be exact.
    """
    size = draw(st.integers(1, max_size))
    facts = []
    registered: set[int] = set()
    opened: set[str] = set()
    for n in range(size):
        person = draw(st.integers(1, 4))
        kind = draw(st.sampled_from(KINDS))
        who = PEOPLE[person - 1]
        if kind == "customer.registered":
            if person in registered:
                kind = "call.inbound"
            else:
                registered.add(person)
        ref_kind = draw(st.sampled_from(["customer_id", "phone", "twitter", "email"]))
        if kind.startswith("case."):
            ref_kind = "customer_id"  # a case always reaches its owner: no fact is refused
        if kind == "customer.registered":
            ref_kind = "customer_id"
            data: dict[str, Any] = {"name": f"Person {person}", "phone": who["phone"],
                                    "email": who["email"], "twitter": who["twitter"]}
        else:
            data = _data(kind, draw(st.integers(0, 5)))
            if "case_id" in data:
                data["case_id"] = f"{person}-{data['case_id']}"
                if kind == "case.opened" and data["case_id"] in opened:
                    kind, data = "case.note", {"case_id": data["case_id"], "text": "again"}
                opened.add(data["case_id"])
        day = draw(st.integers(1, 28))
        hour = draw(st.integers(0, 23))
        facts.append({
            "type": kind, "id": f"f{n}", "source": draw(st.sampled_from(["crm", "cc", "tw"])),
            "customer": {ref_kind: who[ref_kind]},
            "occurred_at": f"2026-01-{day:02d}T{hour:02d}:00:00+01:00",
            "department": draw(st.sampled_from(DEPARTMENTS)), "data": data,
        })
    return facts
