"""The write path's shortcuts agree with the definitions they shortcut (domain/personal.py,
ledger/writer.py): the personal/public split and the event ids of facts."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from domain import catalogue, identity, personal
from journey import demo_data
from ledger.writer import event_id

_refs = st.dictionaries(
    st.sampled_from(identity.RESOLUTION_ORDER),
    st.one_of(st.text(max_size=40), st.uuids().map(str), st.uuids().map(lambda u: u.hex)),
    max_size=4)
_data = st.dictionaries(
    st.sampled_from([*sorted(personal.PERSONAL_DATA), "purpose", "case_id", "campaign", "from",
                     "iban", "Email", "contact", "other"]),
    st.one_of(st.none(), st.text(max_size=10), st.integers(), st.uuids().map(str),
              st.dictionaries(st.sampled_from(["mobile", "email"]), st.text(max_size=10), max_size=2)),
    max_size=6)
_top = st.dictionaries(st.sampled_from(["department", "agent", "source", "extra", "Id"]),
                       st.one_of(st.none(), st.text(max_size=10)), max_size=3)


def split(fact: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The definition: every field asked whether the catalogue declares it non-personal, and
    every identity whether it is personal; no shortcut."""
    if fact.get("type") in personal.NO_PERSONAL_DATA:
        return dict(fact), {}
    spec = catalogue.TYPES.get(fact.get("type"))  # type: ignore[arg-type]
    declared = {f.name: f for f in spec.fields} if spec is not None else {}

    def is_personal(name: str, value: Any) -> bool:
        field = declared.get(name)
        if field is None or field.personal:
            return True
        return field.kind == "ref" and not (isinstance(value, str) and identity.ledger_uuid(value))

    ref: Any = fact.get("customer")
    data: Any = fact.get("data")
    personal_ref = ({k: v for k, v in ref.items() if personal.is_personal_reference(k, v)}
                    if isinstance(ref, dict) else {})
    personal_data = ({k: v for k, v in data.items() if v is not None and is_personal(k, v)}
                     if isinstance(data, dict) else {})
    public_top = {"type", "v", "event_id", "customer_uuid", "source", "occurred_at", "department",
                  "agent", "customer", "data"}
    personal_top = {k: v for k, v in fact.items() if k not in public_top and v is not None}
    private: dict[str, Any] = {}
    public = dict(fact)
    if personal_top:
        private["fact"] = personal_top
        public.update(dict.fromkeys(personal_top))
    if personal_ref:
        private["customer"] = personal_ref
        public["customer"] = {k: (None if k in personal_ref else v) for k, v in ref.items()}
    if personal_data:
        private["data"] = personal_data
        public["data"] = {k: (None if k in personal_data else v) for k, v in data.items()}
    return public, private


@settings(max_examples=300)
@given(ref=st.one_of(_refs, st.none(), st.text(max_size=3)), data=st.one_of(_data, st.none()),
       top=_top, kind=st.sampled_from(["call.outbound", "customer.forgotten", "customer.registered",
                                       "customer.merged", "case.opened", "no.such.type"]))
def test_split_is_domain_personal_split(ref: Any, data: Any, top: dict[str, Any], kind: str) -> None:
    fact = {"type": kind, "id": "x", "customer": ref, "data": data, "event_id": "e", **top}
    assert split(fact) == personal.split(fact)
    assert list(split(fact)[0]) == list(personal.split(fact)[0])  # same key order: same bytes
    public, private = personal.split(fact)
    assert personal.join(public, private) == fact


def test_split_on_the_demo_facts() -> None:
    for fact in demo_data.generate(200, seed=5):
        assert split(fact) == personal.split(fact)


def test_what_the_catalogue_does_not_declare_is_sealed_and_what_it_declares_safe_is_not() -> None:
    merged_from = "6f1c1b7e-3a55-4c1e-9a57-0f1f2d3c4b5a"
    fact = {"type": "call.outbound", "v": 1, "id": "cdr-34611222333-0001", "source": "switch",
            "customer": {"phone": "+34611222333"}, "occurred_at": "2026-01-02T10:00:00+01:00",
            "department": "sales", "agent": "agent-17", "event_id": "e", "customer_uuid": "u",
            "data": {"purpose": "commercial", "campaign": "spring", "outcome": "sale", "duration_s": 40,
                     "iban": "ES9121000418450200051332", "account_holder": "Ane Lasa",
                     "notes": "calls after 6", "contact": {"mobile": "+34699111222"},
                     "Email": "ane@example.org", "Purpose": "commercial"}}
    public, private = personal.split(fact)
    assert public["data"] == {"purpose": "commercial", "campaign": "spring", "outcome": "sale",
                              "duration_s": 40, "iban": None, "account_holder": None, "notes": None,
                              "contact": None, "Email": None, "Purpose": None}
    assert public["id"] is None and public["customer"] == {"phone": None}
    assert public["department"] == "sales" and public["agent"] == "agent-17"
    assert private["fact"] == {"id": "cdr-34611222333-0001"}
    assert private["data"]["contact"] == {"mobile": "+34699111222"}
    merge = {"type": "customer.merged", "id": "m", "customer": {}, "event_id": "e",
             "data": {"from": merged_from, "from_ref": {"phone": "+34611222333"}}}
    assert personal.split(merge)[0]["data"] == {"from": merged_from, "from_ref": None}
    named = {**merge, "data": {"from": {"phone": "+34611222333"}}}
    assert personal.split(named)[0]["data"] == {"from": None}


def test_an_erased_fact_reads_with_its_event_id_for_a_source_id() -> None:
    public, _ = personal.split({"type": "call.inbound", "id": "cdr-34611222333", "event_id": "e-1",
                                "customer": {"phone": "+34611222333"}, "data": {"reason": "x"}})
    erased = personal.erased({**public, personal.ENVELOPE: "sealed"})
    assert erased["id"] == "e-1" and erased["erased"] is True and personal.ENVELOPE not in erased
    assert erased["data"] == {"reason": None} and erased["customer"] == {"phone": None}


@settings(max_examples=300)
@given(source=st.text(max_size=20), source_id=st.text(max_size=40))
def test_event_id_is_the_uuid5_of_the_fact(source: str, source_id: str) -> None:
    assert event_id(source, source_id) == str(identity.event_uuid(source, source_id))
