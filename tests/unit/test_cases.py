"""The case rules (projections/cases.py, docs/cases.md): pure, on folded customer views."""

from __future__ import annotations

import random
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumers.log_follower import catch_up
from domain import catalogue, identity
from domain.errors import InvalidFact
from projections import cases, customer_view
from projections.duckdb_store import ProjectionStore, mark_late
from projections.rules import Rules
from tests.ledgers import open_journey, record

CUSTOMER = {"customer_id": "C-1"}
COUNTER = iter(range(1_000_000))


def fact(type_name: str, at: str, department: str | None = None, agent: str | None = None, /,
         **data: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {"type": type_name, "id": f"f-{next(COUNTER)}", "source": "test",
                           "customer": CUSTOMER, "occurred_at": at, "data": data}
    if department:
        raw["department"] = department
    if agent:
        raw["agent"] = agent
    valid = catalogue.validate(raw)
    valid["event_id"] = str(identity.event_uuid(valid["source"], valid["id"]))
    return valid


def fold(facts: list[dict[str, Any]], recorded: list[int] | None = None,
         first_position: int = 1) -> customer_view.View:
    """A customer's view holding ``facts``, recorded in the order ``recorded`` (indexes)."""
    view = customer_view.new_view("c-1")
    order = recorded if recorded is not None else list(range(len(facts)))
    for position, index in enumerate(order, first_position):
        f = facts[index]
        entry = customer_view.entry_of(f, position, f"2026-06-01T00:00:{position % 60:02d}+00:00")
        customer_view.apply(view, f, entry, catalogue.channel_of(f))
    return view


def records(facts: list[dict[str, Any]], recorded: list[int] | None = None,
            days: int = cases.DEFAULT_COMPLAINT_DAYS) -> list[dict[str, Any]]:
    sections = fold(facts, recorded)["sections"]
    return cases.case_records(sections["case"], sections["promise"], days)


def one(facts: list[dict[str, Any]], recorded: list[int] | None = None, **kw: Any) -> dict[str, Any]:
    (record,) = records(facts, recorded, **kw)
    return record


def opened(at: str = "2026-05-04T10:00:00+02:00", kind: str = "complaint", case_id: str = "K-1",
           department: str = "customer_care") -> dict[str, Any]:
    return fact("case.opened", at, department, "CC-8", case_id=case_id, kind=kind, subject="charged twice")


# ----------------------------------------------------------------------------- tracking key


def test_tracking_key_is_short_readable_and_the_same_everywhere() -> None:
    key = cases.tracking_key("K-2041")
    assert re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{5}-[0-9A-HJKMNP-TV-Z]{5}", key)
    assert key == cases.tracking_key("K-2041") == "B2PWD-27T6Y"  # the example of docs/cases.md
    keys = {cases.tracking_key(f"K-{n}") for n in range(5000)}
    assert len(keys) == 5000


@pytest.mark.parametrize("typed", ["B2PWD-27T6Y", "b2pwd27t6y", " b2pwd 27t6y ", "B2PWD-27T6Y".lower()])
def test_a_tracking_key_is_found_however_it_is_typed(typed: str) -> None:
    assert cases.parse_tracking_key(typed) == "B2PWD-27T6Y"


def test_misheard_letters_read_as_the_digits_they_look_like() -> None:
    assert cases.parse_tracking_key("ABCDE-FGHIO") == "ABCDE-FGH10"
    assert cases.parse_tracking_key("K-2041") is None
    assert cases.parse_tracking_key("UUUUU-UUUUU") is None  # U is not in the alphabet


# ----------------------------------------------------------------------------- status, owner


def test_status_follows_resolution_and_reopening_by_when_they_happened() -> None:
    base = [opened(), fact("case.resolved", "2026-05-10T10:00:00+02:00", "sales", case_id="K-1")]
    assert one(base)["status"] == "resolved"
    assert one(base)["resolved_at"] == "2026-05-10T10:00:00+02:00"
    reopened = [*base, fact("case.reopened", "2026-05-11T10:00:00+02:00", "sales", case_id="K-1")]
    case = one(reopened)
    assert (case["status"], case["resolved_at"], case["reopened"]) == ("open", None, 1)
    # The reopening uploaded first changes nothing: it happened after the resolution.
    assert one(reopened, [2, 0, 1])["status"] == "open"


def test_owner_is_the_last_transfer_by_occurred_at_else_the_opening_department() -> None:
    assert one([opened()])["owner_department"] == "customer_care"
    facts = [opened(),
             fact("case.transferred", "2026-05-06T16:00:00+02:00", "customer_care", case_id="K-1", to="sales"),
             fact("case.transferred", "2026-05-08T09:00:00+02:00", "sales", case_id="K-1", to="billing")]
    for order in ([0, 1, 2], [2, 1, 0], [0, 2, 1]):
        case = one(facts, order)
        assert case["owner_department"] == "billing"
        assert case["transfers"] == 2
        assert case["departments"] == ["customer_care", "sales", "billing"]


def test_history_keeps_every_department_with_agent_and_time_in_occurred_order() -> None:
    facts = [opened(),
             fact("case.note", "2026-05-05T12:00:00+02:00", "outsourced_callcenter", "X-150",
                  case_id="K-1", text="customer moved"),
             fact("case.responded", "2026-05-06T09:00:00+02:00", "sales", "A-5", case_id="K-1",
                  text="we will look into it")]
    history = one(facts, [2, 0, 1])["history"]
    assert [(h["type"], h.get("department"), h.get("agent")) for h in history] == [
        ("case.opened", "customer_care", "CC-8"),
        ("case.note", "outsourced_callcenter", "X-150"),
        ("case.responded", "sales", "A-5")]
    assert history[1]["text"] == "customer moved"
    assert history[1]["occurred_at"] == "2026-05-05T12:00:00+02:00"


# ----------------------------------------------------------------------------- clocks


def test_first_response_is_the_first_answer_and_times_are_measured_from_opening() -> None:
    facts = [opened(),
             fact("case.responded", "2026-05-07T10:00:00+02:00", "sales", case_id="K-1", text="b"),
             fact("case.responded", "2026-05-06T10:00:00+02:00", "billing", case_id="K-1", text="a"),
             fact("case.resolved", "2026-05-09T10:00:00+02:00", "sales", case_id="K-1", resolution="done")]
    case = one(facts)
    assert case["first_response_at"] == "2026-05-06T10:00:00+02:00"
    assert case["first_response"]["department"] == "billing"
    assert case["response_s"] == 2 * 86400
    assert case["resolution_s"] == 5 * 86400
    assert case["responses"] == 2


def test_a_resolution_is_the_answer_when_nobody_responded() -> None:
    silent = fact("case.resolved", "2026-05-08T10:00:00+02:00", "sales", case_id="K-1")
    assert one([opened(), silent])["first_response_at"] is None  # closed without telling anything
    told = fact("case.resolved", "2026-05-08T10:00:00+02:00", "sales", case_id="K-1",
                resolution="refund issued")
    case = one([opened(), told])
    assert case["first_response_at"] == "2026-05-08T10:00:00+02:00"
    assert case["first_response"]["type"] == "case.resolved"


def test_clock_spans_are_exact_across_utc_offsets() -> None:
    facts = [opened("2026-05-04T10:00:00+02:00"),
             fact("case.responded", "2026-05-04T09:30:00+00:00", "sales", case_id="K-1", text="x")]
    assert one(facts)["response_s"] == 90 * 60


def test_complaints_are_due_after_n_days_and_late_answers_are_marked() -> None:
    start = opened("2026-05-04T10:00:00+02:00")
    case = one([start])
    assert case["answer_due_by"] == "2026-05-19T10:00:00+02:00"
    assert case["answer_days"] == 15
    assert case["answered_late"] is None
    on_time = fact("case.responded", "2026-05-19T09:59:00+02:00", "sales", case_id="K-1", text="x")
    assert one([start, on_time])["answered_late"] is False
    late = fact("case.responded", "2026-05-19T10:01:00+02:00", "sales", case_id="K-1", text="x")
    assert one([start, late])["answered_late"] is True
    assert one([start, late], days=30)["answered_late"] is False
    assert one([start], days=30)["answer_due_by"] == "2026-06-03T10:00:00+02:00"


@pytest.mark.parametrize("kind", ["incident", "request", "warranty"])
def test_only_complaints_have_a_deadline(kind: str) -> None:
    case = one([opened(kind=kind)])
    assert case["answer_due_by"] is None and case["answered_late"] is None
    assert not cases.is_overdue(case, datetime.fromisoformat("2027-01-01T00:00:00+00:00"))


def test_overdue_is_an_open_unanswered_complaint_past_its_deadline() -> None:
    before = datetime.fromisoformat("2026-05-19T09:00:00+02:00")
    after = datetime.fromisoformat("2026-05-19T11:00:00+02:00")
    start = opened("2026-05-04T10:00:00+02:00")
    assert not cases.is_overdue(one([start]), before)
    assert cases.is_overdue(one([start]), after)
    answered = fact("case.responded", "2026-05-30T10:00:00+02:00", "sales", case_id="K-1", text="x")
    assert not cases.is_overdue(one([start, answered]), after)
    closed = fact("case.resolved", "2026-05-10T10:00:00+02:00", "sales", case_id="K-1")
    assert not cases.is_overdue(one([start, closed]), after)
    assert not cases.is_overdue(one([start]), None)


def test_complaint_days_come_from_the_environment() -> None:
    assert cases.complaint_days({}) == 15
    assert cases.complaint_days({"JOURNEY_COMPLAINT_DAYS": "30"}) == 30
    with pytest.raises(ValueError, match="JOURNEY_COMPLAINT_DAYS: 'two weeks' is not a whole number"):
        cases.complaint_days({"JOURNEY_COMPLAINT_DAYS": "two weeks"})
    with pytest.raises(ValueError, match="must not be negative"):
        cases.complaint_days({"JOURNEY_COMPLAINT_DAYS": "-1"})


# ----------------------------------------------------------------------------- late facts


def test_the_configured_deadline_reaches_the_rendered_view_and_the_cases_rows() -> None:
    view = fold([opened("2026-05-04T10:00:00+02:00")])
    thirty = Rules(complaint_days=30)
    (shown,) = customer_view.render(view, now=None, rules=thirty)["cases"]
    (row,) = cases.case_rows({**view, "customer_id": "c-1"}, thirty)
    for got in (shown, row):
        assert (got["answer_days"], got["answer_due_by"]) == (30, "2026-06-03T10:00:00+02:00")
    (default,) = customer_view.render(view, now=None)["cases"]
    assert (default["answer_days"], default["answer_due_by"]) == (15, "2026-05-19T10:00:00+02:00")


def test_the_projection_store_writes_the_cases_table_under_its_rules(tmp_path: Path) -> None:
    journey = open_journey(tmp_path / "ledger")
    store = ProjectionStore(tmp_path / "thirty.duckdb", rules=Rules(complaint_days=30))
    try:
        record(journey, {"type": "case.opened", "id": "o-1", "source": "test", "customer": CUSTOMER,
                         "occurred_at": "2026-05-04T10:00:00+02:00", "department": "customer_care",
                         "data": {"case_id": "K-1", "kind": "complaint", "subject": "charged twice"}})
        catch_up(journey.app, store)
        ((days, due),) = store.con.execute(
            "SELECT answer_days, strftime(answer_due_by AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M') FROM cases"
        ).fetchall()
        assert (days, due) == (30, "2026-06-03T08:00")
    finally:
        store.close()
        journey.close()


def test_a_note_uploaded_after_later_facts_is_late_and_changes_no_clock() -> None:
    facts = [opened("2026-05-04T10:00:00+02:00"),
             fact("case.responded", "2026-05-12T10:00:00+02:00", "sales", case_id="K-1", text="x"),
             fact("case.note", "2026-05-06T10:00:00+02:00", "outsourced_callcenter", case_id="K-1",
                  text="last week's call")]
    in_order = one(facts, [0, 2, 1])
    uploaded_late = one(facts, [0, 1, 2])
    assert [h["late"] for h in in_order["history"]] == [False, False, False]
    assert [(h["type"], h["late"]) for h in uploaded_late["history"]] == [
        ("case.opened", False), ("case.note", True), ("case.responded", False)]
    assert uploaded_late["late_events"] == 1
    for key in ("opened_at", "first_response_at", "answer_due_by", "response_s", "status"):
        assert uploaded_late[key] == in_order[key]


def test_facts_at_the_same_instant_are_not_late_for_each_other() -> None:
    facts = [opened("2026-05-04T10:00:00+02:00"),
             fact("case.note", "2026-05-04T08:00:00+00:00", "sales", case_id="K-1", text="same instant")]
    assert [h["late"] for h in one(facts, [1, 0])["history"]] == [False, False]


# ----------------------------------------------------------------------------- contradictions


def _responded(at: str, department: str | None, answer: str, topic: str | None = None,
               case_id: str = "K-1") -> dict[str, Any]:
    data: dict[str, Any] = {"case_id": case_id, "text": f"{answer}!", "answer": answer}
    if topic:
        data["topic"] = topic
    return fact("case.responded", at, department, "A-5", **data)


def _promise(at: str, department: str, topic: str | None = None, case_id: str | None = "K-1",
             promise_id: str = "P-1") -> dict[str, Any]:
    data: dict[str, Any] = {"promise_id": promise_id, "what": "20% discount", "due_by": "2026-05-31"}
    if case_id:
        data["case_id"] = case_id
    if topic:
        data["topic"] = topic
    return fact("promise.made", at, department, "CC-8", **data)


def test_a_promise_and_a_no_from_another_department_contradict() -> None:
    facts = [opened(), _promise("2026-05-04T10:12:00+02:00", "customer_care"),
             _responded("2026-05-12T12:30:00+02:00", "sales", "no")]
    (c,) = one(facts)["contradictions"]
    assert c["topic"] is None  # the case itself
    assert c["contradicted_at"] == "2026-05-12T12:30:00+02:00"
    assert (c["yes"]["type"], c["yes"]["department"], c["yes"]["promise_id"], c["yes"]["text"]) == (
        "promise.made", "customer_care", "P-1", "20% discount")
    assert (c["no"]["type"], c["no"]["department"], c["no"]["answer"]) == ("case.responded", "sales", "no")


@pytest.mark.parametrize(("yes", "no", "expected"), [
    pytest.param(("care", "yes", None), ("sales", "no", None), 1, id="yes-no-two-departments"),
    pytest.param(("sales", "yes", None), ("sales", "no", None), 0, id="same-department-changed-its-mind"),
    pytest.param(("care", "yes", "refund"), ("sales", "no", "discount"), 0, id="different-topics"),
    pytest.param(("care", "yes", "refund"), ("sales", "no", "refund"), 1, id="same-topic"),
    pytest.param(("care", "partial", None), ("sales", "no", None), 0, id="partial-is-not-yes"),
    pytest.param(("care", "yes", None), ("sales", "info", None), 0, id="info-is-not-no"),
    pytest.param(("care", "yes", None), (None, "no", None), 0, id="unknown-department"),
])
def test_contradiction_rule(yes: tuple[Any, ...], no: tuple[Any, ...], expected: int) -> None:
    facts = [opened(), _responded("2026-05-05T10:00:00+02:00", yes[0], yes[1], yes[2]),
             _responded("2026-05-06T10:00:00+02:00", no[0], no[1], no[2])]
    assert len(one(facts)["contradictions"]) == expected


def test_promises_on_other_cases_or_no_case_contradict_nothing() -> None:
    facts = [opened(), opened(case_id="K-2"),
             _promise("2026-05-04T11:00:00+02:00", "customer_care", case_id="K-2"),
             _promise("2026-05-04T11:00:00+02:00", "customer_care", case_id=None, promise_id="P-2"),
             _responded("2026-05-05T10:00:00+02:00", "sales", "no")]
    by_id = {c["case_id"]: c for c in records(facts)}
    assert by_id["K-1"]["contradictions"] == []
    assert by_id["K-2"]["contradictions"] == []


def test_answer_and_topic_are_validated_by_the_catalogue() -> None:
    with pytest.raises(InvalidFact, match=r"data\.answer: 'maybe' is not one of yes, no, partial, info"):
        fact("case.responded", "2026-05-05T10:00:00+02:00", "sales", case_id="K-1", text="x", answer="maybe")
    old_style = fact("case.responded", "2026-05-05T10:00:00+02:00", "sales", case_id="K-1", text="x")
    assert "answer" not in old_style["data"] and "topic" not in old_style["data"]


# ----------------------------------------------------------------------------- promises


def test_promise_records_status_closer_and_due_instant() -> None:
    made = _promise("2026-05-04T10:12:00+02:00", "customer_care")
    kept = fact("promise.kept", "2026-05-20T09:00:00+02:00", "billing", "B-1", promise_id="P-1")
    (p,) = cases.promise_records(fold([made, kept])["sections"]["promise"])
    assert (p["status"], p["what"], p["case_id"], p["due_by"]) == ("kept", "20% discount", "K-1", "2026-05-31")
    assert p["case_tracking_key"] == cases.tracking_key("K-1")
    assert p["made"]["department"] == "customer_care"
    assert (p["closed"]["department"], p["closed"]["agent"]) == ("billing", "B-1")
    # A due date runs to the end of that day where the promise was made (+02:00 here).
    assert p["due_at"] == "2026-06-01T00:00:00+02:00"
    assert cases.due_instant("2026-05-31T12:00:00+01:00") == "2026-05-31T12:00:00+01:00"


def test_rendered_view_keeps_its_keys_and_adds_the_clocks() -> None:
    facts = [opened("2026-05-04T10:00:00+02:00"), _promise("2026-05-04T10:12:00+02:00", "customer_care")]
    view = customer_view.render(fold(facts), now=datetime.fromisoformat("2026-06-02T00:00:00+02:00"))
    (case,) = view["cases"]
    assert {"case_id", "kind", "subject", "status", "opened_at", "resolved_at", "departments",
            "transfers", "history"} <= set(case)
    assert case["overdue"] is True and case["tracking_key"] == cases.tracking_key("K-1")
    (promise,) = view["promises"]
    assert promise["overdue"] is True and promise["status"] == "open"


# ----------------------------------------------------------------------------- the property

CASE_KINDS = ["case.transferred", "case.note", "case.responded", "case.resolved", "case.reopened",
              "promise.made", "promise.kept", "promise.broken"]
DEPARTMENTS = ["customer_care", "sales", "billing", None]
OFFSETS = ["+00:00", "+01:00", "+02:00", "-05:00"]


@st.composite
def case_stories(draw: st.DrawFn) -> list[dict[str, Any]]:
    """One or two cases of a customer and their promises, at coarse times (many ties, also
    the same instant written with different offsets)."""

    def when() -> str:
        hour = draw(st.integers(0, 40)) * 6
        offset = draw(st.sampled_from(OFFSETS))
        sign = 1 if offset[0] == "+" else -1
        local_hour = 24 * 10 + hour + sign * int(offset[1:3])
        day, h = divmod(local_hour, 24)
        return f"2026-05-{day:02d}T{h:02d}:00:00{offset}"

    facts = []
    for case_id in draw(st.sampled_from([["K-1"], ["K-1", "K-2"]])):
        facts.append(fact("case.opened", when(), draw(st.sampled_from(DEPARTMENTS)),
                          case_id=case_id, kind=draw(st.sampled_from(catalogue.CASE_KINDS))))
    for _ in range(draw(st.integers(0, 10))):
        kind = draw(st.sampled_from(CASE_KINDS))
        case_id = draw(st.sampled_from(["K-1", "K-2"]))
        department = draw(st.sampled_from(DEPARTMENTS))
        data: dict[str, Any] = {"case_id": case_id}
        topic = draw(st.sampled_from([None, "refund"]))
        if kind == "case.transferred":
            data["to"] = draw(st.sampled_from(DEPARTMENTS[:3]))
        elif kind == "case.note":
            data["text"] = "note"
        elif kind == "case.responded":
            data.update(text="answer", answer=draw(st.sampled_from(cases.ANSWERS)))
            if topic:
                data["topic"] = topic
        elif kind == "case.resolved" and draw(st.booleans()):
            data["resolution"] = "fixed"
        elif kind.startswith("promise."):
            pid = draw(st.sampled_from(["P-1", "P-2"]))
            data = {"promise_id": pid}
            if kind == "promise.made":
                data.update(case_id=case_id, what="refund", due_by="2026-05-20")
                if topic:
                    data["topic"] = topic
        facts.append(fact(kind, when(), department, **data))
    return facts


def _without_recording(obj: Any) -> Any:
    """What may depend on recording order: late marks and recording times (and nothing else)."""
    if isinstance(obj, dict):
        return {k: _without_recording(v) for k, v in obj.items()
                if k not in ("late", "late_events", "recorded_at")}
    if isinstance(obj, list):
        return [_without_recording(v) for v in obj]
    return obj


@settings(max_examples=300, deadline=None)
@given(facts=case_stories(), seed=st.integers(0, 2**32))
def test_clocks_and_history_depend_only_on_when_things_happened(
        facts: list[dict[str, Any]], seed: int) -> None:
    shuffled = list(range(len(facts)))
    random.Random(seed).shuffle(shuffled)
    reference = records(facts)
    permuted = records(facts, shuffled)
    assert _without_recording(permuted) == _without_recording(reference)
    for case in reference:
        times = [datetime.fromisoformat(h["occurred_at"]) for h in case["history"]]
        assert times == sorted(times)
    sections = fold(facts, shuffled)["sections"]
    promises = cases.promise_records(sections["promise"])
    assert _without_recording(promises) == _without_recording(
        cases.promise_records(fold(facts)["sections"]["promise"]))


@settings(max_examples=200, deadline=None)
@given(facts=case_stories(), seed=st.integers(0, 2**32))
def test_late_marks_follow_the_timeline_rule(facts: list[dict[str, Any]], seed: int) -> None:
    """The history's late marks agree with the customer timeline's (duckdb_store.mark_late)."""
    shuffled = list(range(len(facts)))
    random.Random(seed).shuffle(shuffled)
    view = fold(facts, shuffled)
    for case in cases.case_records(view["sections"]["case"]):
        entries = [e for e in view["sections"]["case"] if e["data"]["case_id"] == case["case_id"]]
        timeline = [{"position": e["pos"], "event_id": e["event_id"]}
                    for e in sorted(entries, key=lambda e: (e["at"], e["pos"]))]
        mark_late(timeline)
        expected = {row["event_id"]: row["late"] for row in timeline}
        assert {h["event_id"]: h["late"] for h in case["history"]} == expected


def test_one_promise_contradicted_by_two_departments_gives_two_contradictions() -> None:
    """A statement may take part in several pairs (found by the clocks property)."""
    from projections.cases import contradictions

    def entry(n: int, kind: str, department: str, **data: str) -> dict[str, object]:
        return {"type": kind, "department": department, "event_id": f"e{n}", "at": f"2026-05-0{n}T00:00:00Z",
                "occurred_at": f"2026-05-0{n}T00:00:00+00:00", "data": {"case_id": "K-1", **data}}

    promise = entry(1, "promise.made", "customer_care", promise_id="P-1", what="a discount", due_by="2026-06-01")
    noes = [entry(2, "case.responded", "sales", answer="no", text="impossible"),
            entry(3, "case.responded", "billing", answer="no", text="not on this tariff")]
    found = contradictions("K-1", noes, [promise])
    assert [(c["yes"]["department"], c["no"]["department"]) for c in found] == [
        ("customer_care", "sales"), ("customer_care", "billing")]
