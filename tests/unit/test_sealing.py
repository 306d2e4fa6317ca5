"""The write path's shortcuts agree with the definitions they shortcut (ledger/crypto_mapper.py,
ledger/writer.py): the personal/public split and the event ids of facts."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from domain import identity, personal
from journey import demo_data
from ledger.crypto_mapper import split
from ledger.writer import event_id

_refs = st.dictionaries(
    st.sampled_from(identity.RESOLUTION_ORDER),
    st.one_of(st.text(max_size=40), st.uuids().map(str), st.uuids().map(lambda u: u.hex)),
    max_size=4)
_data = st.dictionaries(
    st.sampled_from([*sorted(personal.PERSONAL_DATA), "purpose", "case_id", "other"]),
    st.one_of(st.none(), st.text(max_size=10), st.integers()), max_size=6)


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
