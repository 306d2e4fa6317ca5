"""Remembering people kindly: occasions, the contact policy, and at most one greeting a year."""

from __future__ import annotations

import itertools
from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.contact_policy import Policy
from projections.greetings import (
    Candidate,
    anniversaries,
    is_greeting,
    month_days,
    occurrence,
    plan,
)

POLICY = Policy(version="test-1")
_ids = itertools.count(1)
ADDRESS = {"street": "Calle Mayor", "number": "5", "postal_code": "28013", "city": "Madrid"}


def fact(kind: str, when: str, **data: Any) -> dict[str, Any]:
    return {"type": kind, "event_id": f"e-{next(_ids)}", "occurred_at": when, "department": "sales",
            "data": data}


CONSENT_ANY = fact("consent.given", "2020-01-01T10:00:00+01:00", channel="any", purpose="commercial",
                   text="yes")


def greeting(day: str, kind: str = "letter.sent", **data: Any) -> dict[str, Any]:
    return fact(kind, f"{day}T10:00:00+01:00", purpose="commercial", **{"campaign": "greetings", **data})


def person(birthday: str | None = "1980-03-03", history: list[dict[str, Any]] | None = None,
           **extra: Any) -> Candidate:
    fields: dict[str, Any] = {"customer_id": "c-1", "name": "Ana", "customer_number": "C-1",
                              "address": ADDRESS, "email": "ana@example.com",
                              "timezone": "Europe/Madrid"}
    fields.update(extra)
    return Candidate(birthday=date.fromisoformat(birthday) if birthday else None,
                     history=[CONSENT_ANY] if history is None else history, **fields)


def codes(item: dict[str, Any]) -> list[str]:
    return [r["code"] for r in item["reasons"]]


# ----------------------------------------------------------------------------- dates


def test_feb_29_is_celebrated_on_feb_28_in_non_leap_years() -> None:
    leapling = date(2000, 2, 29)
    assert occurrence(leapling, 2027) == date(2027, 2, 28)
    assert occurrence(leapling, 2028) == date(2028, 2, 29)
    assert anniversaries(leapling, date(2027, 2, 25), 7) == [(date(2027, 2, 28), 27)]
    assert anniversaries(leapling, date(2028, 2, 25), 7) == [(date(2028, 2, 29), 28)]
    assert anniversaries(leapling, date(2028, 2, 28), 1) == []  # on leap years, the day itself
    assert "02-29" in month_days(date(2027, 2, 28), 1)
    assert "02-29" not in month_days(date(2028, 2, 28), 1)


def test_a_window_across_the_new_year() -> None:
    start = date(2026, 12, 28)
    assert anniversaries(date(1990, 1, 2), start, 7) == [(date(2027, 1, 2), 37)]
    assert anniversaries(date(1990, 12, 30), start, 7) == [(date(2026, 12, 30), 36)]
    assert anniversaries(date(1990, 1, 4), start, 7) == []  # the window ends on 3 January
    assert month_days(start, 7) == ["01-01", "01-02", "01-03", "12-28", "12-29", "12-30", "12-31"]


def test_the_day_itself_is_not_an_anniversary() -> None:
    assert anniversaries(date(2026, 3, 3), date(2026, 3, 1), 7) == []
    assert anniversaries(date(2025, 3, 3), date(2026, 3, 1), 7) == [(date(2026, 3, 3), 1)]


@given(st.dates(date(1920, 1, 1), date(2030, 12, 31)), st.dates(date(2000, 1, 1), date(2040, 12, 31)),
       st.integers(1, 366))
def test_anniversaries_fall_in_the_window_on_the_same_day_of_the_year(original: date, start: date,
                                                                     days: int) -> None:
    found = anniversaries(original, start, days)
    last = start + timedelta(days=days - 1)
    assert all(start <= day <= last for day, _ in found)
    for day, years in found:
        assert years == day.year - original.year >= 1
        assert (day.month, day.day) == (original.month, original.day) or (
            (original.month, original.day, day.month, day.day) == (2, 29, 2, 28))
        assert original.strftime("%m-%d") in month_days(start, days)
    # Every year whose anniversary lies in the window is found.
    expected = [y for y in range(start.year, last.year + 1)
                if y > original.year and start <= occurrence(original, y) <= last]
    assert [day.year for day, _ in found] == expected


def test_what_counts_as_a_greeting() -> None:
    assert is_greeting(greeting("2026-01-01"))
    assert is_greeting(greeting("2026-01-01", "email.sent"))
    assert is_greeting(fact("letter.sent", "2026-01-01T10:00:00+01:00", purpose="commercial",
                            subject="Greetings from the shop"))
    assert not is_greeting(fact("letter.sent", "2026-01-01T10:00:00+01:00", purpose="commercial",
                                subject="Your invoice", campaign="fibra"))
    assert not is_greeting(fact("sms.sent", "2026-01-01T10:00:00+01:00", purpose="commercial",
                                campaign="greetings"))


# ----------------------------------------------------------------------------- the plan


def test_a_birthday_in_the_window_gets_a_letter() -> None:
    result = plan([person()], start=date(2026, 3, 2), days=7, policy=POLICY)
    assert result.skipped == []
    [g] = result.greetings
    assert (g["date"], g["channel"], g["occasion"], g["to"]) == (
        "2026-03-03", "letter", "birthday, 46 years", "Calle Mayor 5, 28013 Madrid")
    assert g["at"] == "2026-03-03T10:00:00+01:00" and g["policy_version"] == "test-1"
    assert plan([person()], start=date(2026, 3, 4), days=7, policy=POLICY).greetings == []


def test_a_first_purchase_anniversary() -> None:
    ana = person(None, first_purchase=date(2023, 3, 4), first_purchase_event="p-1")
    [g] = plan([ana], start=date(2026, 3, 2), policy=POLICY).greetings
    assert g["occasion"] == "3 years since first purchase"
    assert g["occasions"] == [{"kind": "first_purchase", "years": 3, "since": "2023-03-04",
                               "text": "3 years since first purchase", "event_id": "p-1"}]


def test_two_occasions_on_one_day_are_one_greeting() -> None:
    ana = person("1980-03-03", first_purchase=date(2024, 3, 3))
    [g] = plan([ana], start=date(2026, 3, 2), policy=POLICY).greetings
    assert g["occasion"] == "birthday, 46 years; 2 years since first purchase"


def test_an_objection_is_respected_with_its_reasons() -> None:
    objection = fact("objection.recorded", "2026-01-15T12:00:00+01:00", channels="all",
                     purpose="commercial")
    result = plan([person(history=[CONSENT_ANY, objection])], start=date(2026, 3, 2), policy=POLICY)
    assert result.greetings == []
    [s] = result.skipped
    assert s["channel"] is None
    assert [(r["code"], r["channel"]) for r in s["reasons"]] == [("objection", "letter"),
                                                                ("objection", "email")]
    assert s["reasons"][0]["event_ids"] == [objection["event_id"]]
    # An objection recorded after the greeting date does not reach back.
    later = person("1980-01-10", history=[CONSENT_ANY, objection])
    assert len(plan([later], start=date(2026, 1, 8), days=7, policy=POLICY).greetings) == 1


def test_without_a_legal_basis_for_letters_an_email_consent_is_used() -> None:
    email_only = fact("consent.given", "2020-01-01T10:00:00+01:00", channel="email",
                      purpose="commercial", text="yes")
    [g] = plan([person(history=[email_only])], start=date(2026, 3, 2), policy=POLICY).greetings
    assert (g["channel"], g["to"]) == ("email", "ana@example.com")
    assert codes(g) == ["no_legal_basis"]  # why not a letter
    [s] = plan([person(history=[])], start=date(2026, 3, 2), policy=POLICY).skipped
    assert codes(s) == ["no_legal_basis", "no_legal_basis"]


def test_no_policy_means_only_contact_data_matters() -> None:
    nobody = person(address=None, email=None, history=[])
    [s] = plan([nobody], start=date(2026, 3, 2)).skipped
    assert codes(s) == ["no_postal_address", "no_email"]
    [g] = plan([person(history=[])], start=date(2026, 3, 2), channels=("email",)).greetings
    assert g["channel"] == "email" and g["policy_version"] is None


def test_greeted_three_months_ago_is_skipped() -> None:
    ana = person(history=[CONSENT_ANY, greeting("2025-12-03")])
    result = plan([ana], start=date(2026, 3, 2), policy=POLICY)
    assert result.greetings == []
    [s] = result.skipped
    assert codes(s) == ["once_a_year"]
    assert "2025-12-03" in s["reasons"][0]["message"]


def test_once_a_year_is_a_rolling_year() -> None:
    start = date(2026, 3, 2)  # the birthday is on 2026-03-03
    exactly_a_year = person(history=[CONSENT_ANY, greeting("2025-03-03")])
    assert len(plan([exactly_a_year], start=start, policy=POLICY).greetings) == 1
    a_day_short = person(history=[CONSENT_ANY, greeting("2025-03-04")])
    assert len(plan([a_day_short], start=start, policy=POLICY).greetings) == 0
    # A greeting already sent for a later day counts too (no two within any 365 days).
    ahead = person(history=[CONSENT_ANY, greeting("2025-11-01", greeting_date="2026-03-03")])
    assert codes(plan([ahead], start=start, policy=POLICY).skipped[0]) == ["once_a_year"]
    # A greeting by e-mail, or marked only by its subject, counts as well.
    by_email = person(history=[CONSENT_ANY, greeting("2026-01-10", "email.sent")])
    assert plan([by_email], start=start, policy=POLICY).greetings == []
    subject = fact("letter.sent", "2026-01-10T10:00:00+01:00", purpose="commercial",
                   subject="greetings: happy new year")
    assert plan([person(history=[CONSENT_ANY, subject])], start=start, policy=POLICY).greetings == []
    # Other letters do not.
    other = fact("letter.sent", "2026-01-10T10:00:00+01:00", purpose="commercial", subject="Offer")
    assert len(plan([person(history=[CONSENT_ANY, other])], start=start, policy=POLICY).greetings) == 1


def test_per_year_allows_more() -> None:
    ana = person(history=[CONSENT_ANY, greeting("2025-12-03")])
    assert len(plan([ana], start=date(2026, 3, 2), per_year=2, policy=POLICY).greetings) == 1
    twice = person(history=[CONSENT_ANY, greeting("2025-06-01"), greeting("2025-12-03")])
    assert plan([twice], start=date(2026, 3, 2), per_year=2, policy=POLICY).greetings == []
    with pytest.raises(ValueError):
        plan([ana], start=date(2026, 3, 2), per_year=0)


def test_two_occasions_in_one_window_give_one_greeting() -> None:
    ana = person("1980-03-03", first_purchase=date(2024, 3, 6))
    result = plan([ana], start=date(2026, 3, 2), policy=POLICY)
    assert [g["occasion"] for g in result.greetings] == ["birthday, 46 years"]
    [s] = result.skipped
    assert s["date"] == "2026-03-06" and codes(s) == ["once_a_year"]
    assert "planned in this run" in s["reasons"][0]["message"]


def test_a_stale_history_fails_closed() -> None:
    [s] = plan([person()], start=date(2026, 3, 2), policy=POLICY, position=10, head=12).skipped
    assert set(codes(s)) == {"stale"}


def test_feb_29_birthday_in_a_window_crossing_into_march() -> None:
    leapling = person("2000-02-29")
    [g] = plan([leapling], start=date(2027, 2, 27), days=3, policy=POLICY).greetings
    assert (g["date"], g["occasion"]) == ("2027-02-28", "birthday, 27 years")


def test_the_address_flags_travel_with_the_greeting() -> None:
    flagged = person(address={**ADDRESS, "postal_code": "08013"},
                     address_verify=["postal_code_city_mismatch"])
    [g] = plan([flagged], start=date(2026, 3, 2), policy=POLICY).greetings
    assert g["address_verify"] == ["postal_code_city_mismatch"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.dates(date(2024, 1, 1), date(2026, 12, 31)), max_size=4),
       st.dates(date(1950, 1, 1), date(2005, 12, 31)), st.dates(date(2010, 1, 1), date(2025, 12, 31)),
       st.dates(date(2026, 1, 1), date(2026, 12, 31)), st.integers(1, 366), st.integers(1, 3))
def test_never_more_than_per_year_greetings_in_any_365_days(
        sent: list[date], birthday: date, purchase: date, start: date, days: int, per_year: int) -> None:
    history = [CONSENT_ANY, *(greeting(d.isoformat()) for d in sent)]
    ana = person(birthday.isoformat(), history=history, first_purchase=purchase)
    result = plan([ana], start=start, days=days, per_year=per_year, policy=POLICY)
    planned = [date.fromisoformat(g["date"]) for g in result.greetings]
    for day in planned:
        near = [d for d in planned if d != day] + sent
        for back in range(365):
            first = day - timedelta(days=back)
            inside = [d for d in near if first <= d <= first + timedelta(days=364)]
            assert len(inside) < per_year
    assert len(result.greetings) + len(result.skipped) == len({
        d for d, _ in anniversaries(birthday, start, days)} | {d for d, _ in anniversaries(purchase, start, days)})
