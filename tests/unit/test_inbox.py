"""The social inbox's rules (projections/inbox.py), on views folded in memory."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.identity import event_uuid
from projections import inbox, warranty
from projections.customer_view import View, apply, entry_of, new_view, render

CUSTOMER = "7b1c0000-0000-5000-8000-000000000001"


def fact(kind: str, fid: str, at: str, data: dict[str, Any], department: str | None = None,
         agent: str | None = None, source: str = "tw") -> dict[str, Any]:
    f: dict[str, Any] = {"type": kind, "id": fid, "source": source, "customer": {"twitter": "@ana"},
                         "occurred_at": at, "data": data, "customer_uuid": CUSTOMER,
                         "event_id": str(event_uuid(source, fid))}
    if department:
        f["department"] = department
    if agent:
        f["agent"] = agent
    return f


def fold(facts: list[dict[str, Any]]) -> View:
    """The view of these facts recorded in this order (positions 1, 2, ...)."""
    view = new_view(CUSTOMER)
    for position, f in enumerate(facts, 1):
        # recorded_at is a property of the fact here, so only the order can differ.
        apply(view, f, entry_of(f, position, "2026-06-30T00:00:00+00:00"), None)
    return view


def mention(fid: str, at: str, text: str = "@brand help", to: str | None = "@brand",
            network: str = "twitter", **extra: Any) -> dict[str, Any]:
    data = {"network": network, "handle": "@ana", "text": text, **extra}
    if to is not None:
        data["to"] = to
    return fact("social.mention", fid, at, data, source="listener")


def reply(fid: str, at: str, to: str, department: str = "social_media", agent: str = "SM-1") -> dict[str, Any]:
    return fact("social.reply", fid, at, {"in_reply_to": to, "text": "we are on it"}, department, agent,
                source="desk")


def case(kind: str, fid: str, at: str, case_id: str, **data: Any) -> dict[str, Any]:
    if kind == "case.opened":
        data.setdefault("kind", "complaint")
    return fact(kind, fid, at, {"case_id": case_id, **data}, "customer_care", source="crm")


def rows_by_id(view: View) -> dict[str, dict[str, Any]]:
    return {r["mention_id"]: r for r in inbox.mention_rows(view)}


def test_an_unanswered_mention_is_waiting_and_a_reply_by_source_id_answers_it() -> None:
    view = fold([mention("m1", "2026-05-04T10:00:00+02:00"),
                 mention("m2", "2026-05-04T11:00:00+02:00"),
                 reply("r1", "2026-05-04T10:45:00+02:00", "m1", "social_media", "SM-3")])
    rows = rows_by_id(view)
    assert rows["m1"]["replied_at"] == "2026-05-04T08:45:00.000000Z"
    assert rows["m1"]["replied_local"] == "2026-05-04T10:45:00+02:00"
    assert (rows["m1"]["reply_department"], rows["m1"]["reply_agent"]) == ("social_media", "SM-3")
    assert rows["m1"]["response_s"] == 45 * 60
    assert rows["m1"]["replies"] == 1
    assert rows["m2"]["replied_at"] is None and rows["m2"]["response_s"] is None
    assert rows["m2"]["replies"] == 0
    assert rows["m1"]["customer_id"] == CUSTOMER and rows["m1"]["network"] == "twitter"
    assert rows["m1"]["occurred_at"] == "2026-05-04T08:00:00.000000Z"
    assert rows["m1"]["occurred_local"] == "2026-05-04T10:00:00+02:00"


def test_a_reply_naming_the_event_id_answers_the_mention() -> None:
    m = mention("m1", "2026-05-04T10:00:00+02:00")
    view = fold([m, reply("r1", "2026-05-04T12:00:00+02:00", m["event_id"], "billing")])
    row = rows_by_id(view)["m1"]
    assert row["reply_department"] == "billing" and row["response_s"] == 7200


def test_the_first_reply_by_when_it_happened_is_the_answer_whatever_the_recording_order() -> None:
    m = mention("m1", "2026-05-04T10:00:00+02:00")
    late = reply("r-late", "2026-05-04T18:00:00+02:00", "m1", "social_media")
    early = reply("r-early", "2026-05-04T10:05:00+02:00", "m1", "customer_care")
    for order in ([m, late, early], [early, late, m], [late, m, early]):
        row = rows_by_id(fold(order))["m1"]
        assert row["reply_id"] == "r-early" and row["reply_department"] == "customer_care"
        assert row["response_s"] == 300 and row["replies"] == 2


def test_a_reply_stamped_before_its_mention_counts_as_an_immediate_answer() -> None:
    view = fold([mention("m1", "2026-05-04T10:00:00+02:00"),
                 reply("r1", "2026-05-04T09:59:00+02:00", "m1")])
    assert rows_by_id(view)["m1"]["response_s"] == 0.0


def test_a_reply_naming_an_unknown_mention_answers_nothing() -> None:
    view = fold([mention("m1", "2026-05-04T10:00:00+02:00"),
                 reply("r1", "2026-05-04T11:00:00+02:00", "m-other")])
    assert rows_by_id(view)["m1"]["replied_at"] is None


def test_to_brand_says_whether_the_mention_was_addressed_to_a_brand_account() -> None:
    view = fold([mention("m1", "2026-05-04T10:00:00+02:00", to="@brand"),
                 mention("m2", "2026-05-04T11:00:00+02:00", text="their ads are everywhere", to=None)])
    rows = rows_by_id(view)
    assert (rows["m1"]["to_brand"], rows["m1"]["to_account"]) == (True, "@brand")
    assert (rows["m2"]["to_brand"], rows["m2"]["to_account"]) == (False, None)


# ----------------------------------------------------------------------------- case links


def test_a_mention_naming_an_open_case_of_the_customer_is_linked_to_it() -> None:
    view = fold([case("case.opened", "c1", "2026-05-01T09:00:00+02:00", "K-77"),
                 mention("m1", "2026-05-04T10:00:00+02:00", "@brand case k-77 is still not fixed"),
                 mention("m2", "2026-05-04T11:00:00+02:00", "@brand no case named here")])
    rows = rows_by_id(view)
    assert (rows["m1"]["case_id"], rows["m1"]["case_status"]) == ("K-77", "open")
    assert rows["m2"]["case_id"] is None and rows["m2"]["case_status"] is None


def test_a_case_resolved_before_the_mention_or_opened_after_it_is_not_linked() -> None:
    view = fold([case("case.opened", "c1", "2026-05-01T09:00:00+02:00", "K-1"),
                 case("case.resolved", "c2", "2026-05-02T09:00:00+02:00", "K-1"),
                 case("case.opened", "c3", "2026-05-09T09:00:00+02:00", "K-2"),
                 mention("m1", "2026-05-04T10:00:00+02:00", "@brand about K-1 and K-2")])
    assert rows_by_id(view)["m1"]["case_id"] is None


def test_the_link_stays_when_the_case_is_resolved_later_and_the_row_says_so() -> None:
    view = fold([case("case.opened", "c1", "2026-05-01T09:00:00+02:00", "K-1"),
                 mention("m1", "2026-05-04T10:00:00+02:00", "@brand K-1?"),
                 case("case.resolved", "c2", "2026-05-06T09:00:00+02:00", "K-1")])
    row = rows_by_id(view)["m1"]
    assert (row["case_id"], row["case_status"]) == ("K-1", "resolved")


def test_a_case_id_is_matched_as_a_whole_word_and_the_first_named_case_wins() -> None:
    facts = [case("case.opened", "c1", "2026-05-01T09:00:00+02:00", "K-1"),
             case("case.opened", "c2", "2026-05-01T09:00:00+02:00", "K-12"),
             mention("m1", "2026-05-04T10:00:00+02:00", "@brand K-12 is a mess"),
             mention("m2", "2026-05-04T10:00:00+02:00", "@brand see K-1, and K-12 too"),
             mention("m3", "2026-05-04T10:00:00+02:00", "@brand XK-1 K-1-2 K-123")]
    rows = rows_by_id(fold(facts))
    assert rows["m1"]["case_id"] == "K-12"
    assert rows["m2"]["case_id"] == "K-1"
    assert rows["m3"]["case_id"] is None


def test_a_case_id_given_in_the_mention_data_links_it() -> None:
    view = fold([case("case.opened", "c1", "2026-05-01T09:00:00+02:00", "K-9"),
                 mention("m1", "2026-05-04T10:00:00+02:00", "@brand hello", case_id="K-9")])
    assert rows_by_id(view)["m1"]["case_id"] == "K-9"


def test_a_mention_naming_the_cases_tracking_key_is_linked() -> None:
    cases = pytest.importorskip("projections.cases")
    tracking_key = getattr(cases, "tracking_key", None)
    if tracking_key is None:
        pytest.skip("projections.cases has no tracking_key")
    key = tracking_key("K-77")
    spaced = key.replace("-", " ").lower()
    view = fold([case("case.opened", "c1", "2026-05-01T09:00:00+02:00", "K-77"),
                 mention("m1", "2026-05-04T10:00:00+02:00", f"@brand my case {key} is open"),
                 mention("m2", "2026-05-04T11:00:00+02:00", f"@brand ticket {spaced} again")])
    rows = rows_by_id(view)
    assert rows["m1"]["case_id"] == "K-77" and rows["m2"]["case_id"] == "K-77"


def test_without_a_tracking_key_function_only_the_raw_case_id_is_matched(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inbox, "_tracking_key", lambda: None)
    view = fold([case("case.opened", "c1", "2026-05-01T09:00:00+02:00", "K-77"),
                 mention("m1", "2026-05-04T10:00:00+02:00", "@brand K-77 please")])
    assert rows_by_id(view)["m1"]["case_id"] == "K-77"
    assert len(inbox.patterns_for("K-77")) == 1


# ----------------------------------------------------------------------------- the view


def test_the_customer_view_lists_unanswered_and_answered_mentions_by_the_same_rules() -> None:
    m2 = mention("m2", "2026-05-04T11:00:00+02:00")
    view = fold([mention("m1", "2026-05-04T10:00:00+02:00"), m2,
                 reply("r1", "2026-05-04T12:00:00+02:00", m2["event_id"], "billing", "B-2")])
    social = render(view)["social"]
    assert (social["mentions"], social["replies"]) == (2, 1)
    assert [m["mention_id"] for m in social["unanswered"]] == ["m1"]
    assert social["unanswered"][0]["network"] == "twitter"
    (answered,) = social["answered"]
    assert answered["mention_id"] == "m2" and answered["reply_department"] == "billing"
    assert answered["response_s"] == 3600


# ----------------------------------------------------------------------------- order


@st.composite
def histories(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Mentions, replies (by id or event id), cases and purchases/claims, with many ties."""
    n = draw(st.integers(1, 14))
    facts: list[dict[str, Any]] = []
    mentions: list[dict[str, Any]] = []
    for i in range(n):
        at = f"2026-05-0{draw(st.integers(1, 4))}T1{draw(st.integers(0, 2))}:00:00+02:00"
        kind = draw(st.sampled_from(["mention", "reply", "case", "purchase", "claim", "decision"]))
        if kind == "mention" or (kind == "reply" and not mentions):
            text = draw(st.sampled_from(["@brand K-1", "@brand K-2 and K-1", "hi", "@brand k-2!"]))
            f = mention(f"m{i}", at, text, to=draw(st.sampled_from(["@brand", None])))
            mentions.append(f)
        elif kind == "reply":
            target = draw(st.sampled_from(mentions))
            name = target["event_id"] if draw(st.booleans()) else target["id"]
            f = reply(f"r{i}", at, name, draw(st.sampled_from(["social_media", "billing"])))
        elif kind == "case":
            f = case(draw(st.sampled_from(["case.opened", "case.note", "case.resolved", "case.reopened"])),
                     f"c{i}", at, draw(st.sampled_from(["K-1", "K-2"])), text="x")
            if f["type"] != "case.note":
                f["data"].pop("text")
        elif kind == "purchase":
            f = fact("purchase.recorded", f"p{i}", f"202{draw(st.integers(3, 6))}-05-01T10:00:00+02:00",
                     {"product": "TV", "serial": draw(st.sampled_from(["S1", "s 1", "S2"])),
                      "warranty_months": draw(st.sampled_from([12, 24]))}, source="store")
        elif kind == "claim":
            f = fact("warranty.claim_filed", f"w{i}", at,
                     {"claim_id": draw(st.sampled_from(["W1", "W2"])),
                      "serial": draw(st.sampled_from(["S1", "S2", "S3"]))}, source="store")
        else:
            f = fact("warranty.claim_decided", f"d{i}", at,
                     {"claim_id": draw(st.sampled_from(["W1", "W2", "W3"])), "approved": draw(st.booleans())},
                     source="svc")
        facts.append(f)
    return facts


@settings(max_examples=200, deadline=None)
@given(facts=histories(), seed=st.integers(0, 2**32 - 1))
def test_inbox_and_warranty_rows_do_not_depend_on_the_recording_order(facts: list[dict[str, Any]],
                                                                        seed: int) -> None:
    shuffled = list(facts)
    random.Random(seed).shuffle(shuffled)
    one, other = fold(facts), fold(shuffled)
    assert inbox.mention_rows(other) == inbox.mention_rows(one)
    assert warranty.product_rows(other) == warranty.product_rows(one)
    assert warranty.claim_rows(other) == warranty.claim_rows(one)
    assert render(other)["social"] == render(one)["social"]
    assert render(other)["warranty_claims"] == render(one)["warranty_claims"]
