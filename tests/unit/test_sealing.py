"""The write path's shortcuts agree with the definitions they shortcut (domain/personal.py,
ledger/writer.py): the personal/public split and the event ids of facts."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from domain import identity, personal
from journey import demo_data
from ledger.writer import event_id

_refs = st.dictionaries(
    st.sampled_from(identity.RESOLUTION_ORDER),
    st.one_of(st.text(max_size=40), st.uuids().map(str), st.uuids().map(lambda u: u.hex)),
    max_size=4)
_data = st.dictionaries(
    st.sampled_from([*sorted(personal.PERSONAL_DATA), "purpose", "case_id", "other"]),
    st.one_of(st.none(), st.text(max_size=10), st.integers()), max_size=6)


def split(fact: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The definition: every identity asked whether it is personal, no shortcut."""
    ref: Any = fact.get("customer")
    data: Any = fact.get("data")
    personal_ref = ({k: v for k, v in ref.items() if personal.is_personal_reference(k, v)}
                    if isinstance(ref, dict) else {})
    personal_data = ({k: v for k, v in data.items() if k in personal.PERSONAL_DATA and v is not None}
                     if isinstance(data, dict) and fact.get("type") not in personal.NO_PERSONAL_DATA
                     else {})
    private: dict[str, Any] = {}
    public = dict(fact)
    if personal_ref:
        private["customer"] = personal_ref
        public["customer"] = {k: (None if k in personal_ref else v) for k, v in ref.items()}
    if personal_data:
        private["data"] = personal_data
        public["data"] = {k: (None if k in personal_data else v) for k, v in data.items()}
    return public, private


@settings(max_examples=300)
@given(ref=st.one_of(_refs, st.none(), st.text(max_size=3)), data=st.one_of(_data, st.none()),
       kind=st.sampled_from(["call.outbound", "customer.forgotten", "customer.registered"]))
def test_split_is_domain_personal_split(ref: Any, data: Any, kind: str) -> None:
    fact = {"type": kind, "id": "x", "customer": ref, "data": data, "event_id": "e"}
    assert split(fact) == personal.split(fact)
    assert list(split(fact)[0]) == list(personal.split(fact)[0])  # same key order: same bytes


def test_split_on_the_demo_facts() -> None:
    for fact in demo_data.generate(200, seed=5):
        assert split(fact) == personal.split(fact)


@settings(max_examples=300)
@given(source=st.text(max_size=20), source_id=st.text(max_size=40))
def test_event_id_is_the_uuid5_of_the_fact(source: str, source_id: str) -> None:
    assert event_id(source, source_id) == str(identity.event_uuid(source, source_id))
