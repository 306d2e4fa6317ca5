"""Quiet hours keep the public holidays of the customer's autonomous community, for any year.

The community follows from the province of the postal code of the address recorded last before
the instant asked about; a customer without a Spanish postal code keeps the national holidays.
The company's own closed days come from the policy file.
"""

from __future__ import annotations

import itertools
from datetime import datetime
from pathlib import Path
from typing import Any

import holidays
import pytest

from domain import postal_codes
from domain.contact_policy import Decision, Policy, decide, public_holiday
from journey.policy import PolicyError, load_policy

POLICY = Policy(version="test-holidays")
_ids = itertools.count(1)


def fact(kind: str, when: str, department: str | None = "sales", **data: Any) -> dict[str, Any]:
    return {"type": kind, "event_id": f"h-{next(_ids)}", "occurred_at": when,
            "department": department, "data": data}


def customer(postal_code: str | None, city: str = "", country: str | None = None) -> list[dict[str, Any]]:
    """A customer registered in 2010 with a contract (so only the calling hours can refuse a
    commercial call), living at ``postal_code`` (None: no address on record)."""
    data: dict[str, Any] = {"name": "Ana", "phone": "+34600000001", "timezone": "Europe/Madrid"}
    if postal_code is not None:
        data["address"] = {"street": "Calle Mayor", "number": "1", "postal_code": postal_code,
                           "city": city, **({"country": country} if country else {})}
    return [fact("customer.registered", "2010-01-04T10:00:00+01:00", None, **data),
            fact("contract.started", "2010-01-04T10:05:00+01:00", contract_id="CT-1", service="fibra")]


MADRID = customer("28013", "Madrid")
BARCELONA = customer("08008", "Barcelona")


def ask(history: list[dict[str, Any]], at: str, policy: Policy = POLICY, purpose: str = "commercial",
        channel: str = "phone") -> Decision:
    return decide(history, channel=channel, purpose=purpose, at=datetime.fromisoformat(at),
                  policy=policy)


def holiday_reason(decision: Decision) -> str:
    assert [r.code for r in decision.reasons] == ["quiet_hours"], decision.reasons
    return decision.reasons[0].message


@pytest.mark.parametrize("at", ["2012-05-02T11:00:00+02:00", "2024-05-02T11:00:00+02:00"])
def test_the_second_of_may_is_a_holiday_in_madrid_and_not_in_barcelona(at: str) -> None:
    day = at[:10]
    assert datetime.fromisoformat(at).weekday() < 5  # a working day, not a weekend
    refused = ask(MADRID, at)
    assert not refused.allowed
    message = holiday_reason(refused)
    assert f"{day} is a holiday in Comunidad de Madrid (Fiesta de la Comunidad de Madrid)" in message
    assert "MD" not in message.replace("Madrid", "")  # readable words, no internal codes
    # The registration that holds the address is the event behind the reason.
    assert refused.reasons[0].event_ids == [MADRID[0]["event_id"]]
    assert ask(BARCELONA, at).allowed


@pytest.mark.parametrize("at", ["2012-09-11T11:00:00+02:00", "2024-09-11T11:00:00+02:00"])
def test_the_eleventh_of_september_is_a_holiday_in_barcelona_and_not_in_madrid(at: str) -> None:
    assert datetime.fromisoformat(at).weekday() < 5
    message = holiday_reason(ask(BARCELONA, at))
    assert f"{at[:10]} is a holiday in Cataluña (" in message
    assert ask(MADRID, at).allowed


@pytest.mark.parametrize("history", [
    pytest.param(MADRID, id="madrid"),
    pytest.param(BARCELONA, id="barcelona"),
    pytest.param(customer(None), id="no-address"),
    pytest.param(customer("75001", "Paris", "FR"), id="address-abroad"),
    pytest.param(customer("2801", "Madrid"), id="malformed-postal-code"),
])
def test_epiphany_2012_is_a_holiday_for_everyone(history: list[dict[str, Any]]) -> None:
    message = holiday_reason(ask(history, "2012-01-06T11:00:00+01:00"))  # a Friday
    assert "2012-01-06 is a public holiday in Spain (Epifanía del Señor)" in message


@pytest.mark.parametrize("history", [
    pytest.param(customer(None), id="no-address"),
    pytest.param(customer("75001", "Paris", "FR"), id="address-abroad"),
])
def test_without_a_spanish_postal_code_only_national_holidays_count(history: list[dict[str, Any]]) -> None:
    assert ask(history, "2012-05-02T11:00:00+02:00").allowed
    assert ask(history, "2012-09-11T11:00:00+02:00").allowed


def test_the_address_as_it_stood_at_the_instant_decides() -> None:
    moved = fact("address.changed", "2012-06-01T10:00:00+02:00", "customer_care",
                 address={"street": "Carrer de Mallorca", "number": "3", "postal_code": "08008",
                          "city": "Barcelona"}, requested_by="customer")
    history = [*MADRID, moved]
    # Still in Madrid on 2 May 2012; in Barcelona by 11 September, and on 2 May 2013.
    assert not ask(history, "2012-05-02T11:00:00+02:00").allowed
    refused = ask(history, "2012-09-11T11:00:00+02:00")
    assert "customer's address, from the address change of 2012-06-01 10:00 +02:00 (by customer care)" in holiday_reason(refused)
    assert refused.reasons[0].event_ids == [MADRID[0]["event_id"], moved["event_id"]]
    assert ask(history, "2013-05-02T11:00:00+02:00").allowed


def test_holidays_bind_commercial_calls_only_unless_the_policy_says_so() -> None:
    at = "2012-05-02T11:00:00+02:00"
    assert ask(MADRID, at, purpose="service").allowed
    assert ask(MADRID, at, channel="email").allowed
    assert not ask(MADRID, at, purpose="service", policy=Policy(version="s", quiet_hours_for_service=True)).allowed


@pytest.mark.parametrize("key", ["closed_days", "holidays"])
def test_a_company_closed_day_from_the_policy_file_is_refused(tmp_path: Path, key: str) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(f'version = "closed"\n[quiet_hours]\n{key} = ["2026-02-04", 2026-12-24]\n')
    policy = load_policy(path)
    for at in ("2026-02-04T11:00:00+01:00", "2026-12-24T11:00:00+01:00"):
        for history in (MADRID, BARCELONA, customer(None)):
            message = holiday_reason(ask(history, at, policy))
            assert f"{at[:10]} is one of the company's closed days (contact policy closed)" in message
    assert ask(MADRID, "2026-02-05T11:00:00+01:00", policy).allowed
    assert ask(MADRID, "2026-02-04T11:00:00+01:00").allowed  # not a public holiday


def test_both_keys_together_close_every_day_they_list(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text('version = "x"\n[quiet_hours]\nclosed_days = [2026-02-04]\nholidays = ["2026-02-05"]\n')
    assert {d.isoformat() for d in load_policy(path).closed_days} == {"2026-02-04", "2026-02-05"}


@pytest.mark.parametrize(("text", "error"), [
    ('closed_days = ["2026-13-01"]', "quiet_hours.closed_days[0]: '2026-13-01' is not a date"),
    ('holidays = [1]', "quiet_hours.holidays[0]: 1 is not a date"),
    ('closed_days = "2026-12-24"', "quiet_hours.closed_days: expected a list of dates"),
])
def test_a_bad_closed_day_says_where(tmp_path: Path, text: str, error: str) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(f'version = "x"\n[quiet_hours]\n{text}\n')
    with pytest.raises(PolicyError, match=error.replace("[", r"\[").replace("]", r"\]")):
        load_policy(path)


def test_every_province_lies_in_a_community_the_calendar_knows() -> None:
    assert set(postal_codes.PROVINCE_COMMUNITY) == set(postal_codes.PROVINCES)
    communities = {code for code in holidays.ES.subdivisions if len(code) == 2}
    assert set(postal_codes.COMMUNITIES) == communities
    assert set(postal_codes.PROVINCE_COMMUNITY.values()) == communities
    assert postal_codes.community("28013") == "MD"
    assert postal_codes.community("08008") == "CT"
    assert postal_codes.community("51001") == "CE" and postal_codes.community("52001") == "ML"
    assert postal_codes.community("53001") is None and postal_codes.community("2801") is None
    assert postal_codes.address_community({"postal_code": "28013", "country": "España"}) == "MD"
    assert postal_codes.address_community({"postal_code": "28013", "country": "PT"}) is None


def test_the_calendar_covers_any_year_it_knows() -> None:
    for year in (2008, 2026, 2040, 2100):
        assert public_holiday(datetime(year, 12, 25).date()) is not None
        assert public_holiday(datetime(year, 12, 25).date(), "GA") is not None
    assert public_holiday(datetime(2012, 5, 2).date()) is None
    assert public_holiday(datetime(2012, 5, 2).date(), "MD") == "Fiesta de la Comunidad de Madrid"
