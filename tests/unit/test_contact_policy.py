"""The contact policy: each rule alone and together, the policy file, and properties."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.contact_policy import (
    ContactHistory,
    Exclusion,
    FrequencyCap,
    Policy,
    decide,
    identity_hash,
)
from journey.config import Settings
from journey.exclusions import ExclusionStore, entry_hash
from journey.policy import DEFAULT_PATH, PolicyError, load_policy, parse_policy

POLICY = Policy(version="test-1")
_ids = itertools.count(1)


def fact(kind: str, when: str, department: str | None = "sales", **data: Any) -> dict[str, Any]:
    return {"type": kind, "event_id": f"e-{next(_ids)}", "occurred_at": when,
            "department": department, "data": data}


REGISTERED = fact("customer.registered", "2026-01-10T10:00:00+01:00", None, name="Ana",
                  phone="+34600000001", email="ana@example.com", timezone="Europe/Madrid")
CONTRACT = fact("contract.started", "2026-01-10T10:05:00+01:00", contract_id="CT-1", service="fibra")
CONSENT_PHONE = fact("consent.given", "2026-01-11T10:00:00+01:00", "customer_care", channel="phone",
                     purpose="commercial", text="yes")
OBJECTION = fact("objection.recorded", "2026-02-02T09:30:00+01:00", "customer_care", channels="all",
                 purpose="commercial")
# A Wednesday, 11:00 in Madrid: inside the calling hours.
WED_11 = "2026-02-04T11:00:00+01:00"


def call(when: str, campaign: str = "fibra", outcome: str = "no_answer", department: str = "sales",
         purpose: str = "commercial") -> dict[str, Any]:
    return fact("call.outbound", when, department, purpose=purpose, campaign=campaign, outcome=outcome)


def codes(history: list[dict[str, Any]], at: str = WED_11, channel: str = "phone",
          purpose: str = "commercial", campaign: str | None = "fibra", policy: Policy = POLICY,
          **kwargs: Any) -> list[str]:
    decision = decide(history, channel=channel, purpose=purpose, at=datetime.fromisoformat(at),
                      campaign=campaign, policy=policy, **kwargs)
    assert decision.allowed == (not decision.reasons)
    assert decision.policy_version == policy.version
    return [r.code for r in decision.reasons]


BASE = [REGISTERED, CONTRACT]

CASES = [
    pytest.param(BASE, {}, [], id="contract-is-a-legitimate-interest"),
    pytest.param([REGISTERED], {}, ["no_legal_basis"], id="no-consent-no-contract"),
    pytest.param([REGISTERED, CONSENT_PHONE], {}, [], id="consent-is-a-legal-basis"),
    pytest.param([REGISTERED, fact("consent.given", "2026-01-11T10:00:00+01:00", channel="email",
                                   purpose="commercial", text="yes")], {}, ["no_legal_basis"],
                 id="consent-for-another-channel-is-not"),
    pytest.param([REGISTERED, fact("consent.given", "2026-01-11T10:00:00+01:00", channel="any",
                                   purpose="commercial", text="yes")], {}, [], id="consent-any-channel"),
    pytest.param([REGISTERED, fact("contract.started", "2024-01-01T10:00:00+01:00", contract_id="C0",
                                   service="x"),
                  fact("contract.ended", "2025-06-01T10:00:00+02:00", "billing", contract_id="C0")],
                 {}, [], id="contract-ended-8-months-ago"),
    pytest.param([REGISTERED, fact("contract.started", "2023-01-01T10:00:00+01:00", contract_id="C0",
                                   service="x"),
                  fact("contract.ended", "2024-06-01T10:00:00+02:00", "billing", contract_id="C0")],
                 {}, ["no_legal_basis"], id="contract-ended-20-months-ago"),
    pytest.param([*BASE, OBJECTION], {}, ["objection"], id="objection"),
    pytest.param([*BASE, OBJECTION], {"purpose": "service", "campaign": None}, [],
                 id="commercial-objection-does-not-block-service"),
    pytest.param([*BASE, fact("objection.recorded", "2026-02-02T09:30:00+01:00", channels=["email"],
                              purpose="commercial")], {}, [], id="objection-on-another-channel"),
    pytest.param([*BASE, fact("objection.recorded", "2026-02-02T09:30:00+01:00", channels=["any"],
                              purpose="commercial")], {}, ["objection"], id="objection-any-channel"),
    pytest.param([*BASE, CONSENT_PHONE, OBJECTION], {}, ["objection"],
                 id="earlier-consent-does-not-lift-objection"),
    pytest.param([*BASE, OBJECTION, fact("consent.given", "2026-02-03T10:00:00+01:00", channel="phone",
                                         purpose="commercial", text="ok again")], {}, [],
                 id="later-consent-lifts-objection"),
    pytest.param([*BASE, OBJECTION, fact("consent.given", "2026-02-03T10:00:00+01:00", channel="email",
                                         purpose="commercial", text="mail only")], {}, ["objection"],
                 id="later-consent-for-another-channel-does-not"),
    pytest.param([*BASE, OBJECTION], {"at": "2026-12-02T11:00:00+01:00"}, ["objection"],
                 id="objection-is-not-a-cooldown"),
    pytest.param([*BASE, OBJECTION], {"at": "2026-01-30T11:00:00+01:00"}, [],
                 id="objection-after-the-instant-does-not-count"),
    pytest.param([*BASE, CONSENT_PHONE, fact("consent.withdrawn", "2026-01-20T10:00:00+01:00",
                                             channel="phone", purpose="commercial")], {},
                 ["consent_withdrawn"], id="withdrawn-consent"),
    pytest.param([REGISTERED, CONSENT_PHONE, fact("consent.withdrawn", "2026-01-20T10:00:00+01:00",
                                                  channel="phone", purpose="commercial")], {},
                 ["consent_withdrawn", "no_legal_basis"], id="withdrawn-consent-without-contract"),
    pytest.param([*BASE, fact("consent.withdrawn", "2026-01-20T10:00:00+01:00", channel="sms",
                              purpose="commercial")], {}, [], id="withdrawn-for-another-channel"),
    pytest.param([*BASE, fact("consent.withdrawn", "2026-01-20T10:00:00+01:00", channel="phone",
                              purpose="service")], {"purpose": "service", "campaign": None},
                 ["consent_withdrawn"], id="withdrawn-service-consent-blocks-service"),
    pytest.param(BASE, {"at": "2026-02-04T21:00:00+01:00"}, ["quiet_hours"], id="21h-is-quiet"),
    pytest.param(BASE, {"at": "2026-02-04T20:59:00+01:00"}, [], id="20h59-is-not"),
    pytest.param(BASE, {"at": "2026-02-04T08:59:00+01:00"}, ["quiet_hours"], id="before-9"),
    pytest.param(BASE, {"at": "2026-02-07T11:00:00+01:00"}, ["quiet_hours"], id="saturday"),
    pytest.param(BASE, {"at": "2026-02-04T10:00:00+00:00"}, [], id="utc-instant-is-11h-in-madrid"),
    pytest.param(BASE, {"at": "2026-02-04T20:30:00+00:00"}, ["quiet_hours"],
                 id="utc-instant-is-21h30-in-madrid"),
    pytest.param([fact("customer.registered", "2026-01-10T10:00:00-05:00", None, name="Bo",
                       timezone="America/New_York"), CONTRACT],
                 {"at": "2026-02-04T21:30:00+01:00"}, [], id="customers-own-timezone"),
    pytest.param(BASE, {"at": "2026-02-04T11:00:00+01:00", "policy": Policy(
        version="h", closed_days=frozenset({date(2026, 2, 4)}))}, ["quiet_hours"], id="closed-day"),
    pytest.param(BASE, {"at": "2026-02-04T15:30:00+01:00", "policy": Policy(
        version="split", call_windows=((time(10), time(15)), (time(16), time(21))))},
                 ["quiet_hours"], id="lunch-break-window"),
    pytest.param(BASE, {"at": "2026-02-04T22:00:00+01:00", "purpose": "service", "campaign": None},
                 [], id="service-call-at-22h-by-default"),
    pytest.param(BASE, {"at": "2026-02-04T22:00:00+01:00", "purpose": "service", "campaign": None,
                        "policy": Policy(version="s", quiet_hours_for_service=True)},
                 ["quiet_hours"], id="service-quiet-hours-when-configured"),
    pytest.param(BASE, {"at": "2026-02-04T22:00:00+01:00", "channel": "email"}, [],
                 id="email-at-22h"),
    pytest.param([*BASE, call("2026-02-02T10:00:00+01:00", "movil", department="outsourced_callcenter"),
                  call("2026-02-03T10:00:00+01:00")], {}, ["frequency_cap"],
                 id="two-calls-in-7-days-across-departments"),
    pytest.param([*BASE, call("2026-01-28T10:00:00+01:00"), call("2026-02-03T10:00:00+01:00")], {}, [],
                 id="first-call-left-the-window"),
    pytest.param([*BASE, call("2026-02-02T10:00:00+01:00", purpose="service"),
                  call("2026-02-03T10:00:00+01:00", purpose="service")], {}, [],
                 id="service-calls-do-not-count"),
    pytest.param([*BASE, fact("sms.sent", "2026-02-02T10:00:00+01:00", purpose="commercial"),
                  fact("sms.sent", "2026-02-03T10:00:00+01:00", purpose="commercial")], {}, [],
                 id="sms-do-not-count-for-calls"),
    pytest.param([*BASE, call("2026-02-02T10:00:00+01:00"), call("2026-02-03T10:00:00+01:00")],
                 {"purpose": "service", "campaign": None}, [], id="cap-does-not-block-service"),
    pytest.param([*BASE, call("2026-01-10T12:00:00+01:00", outcome="not_interested")], {},
                 ["cooldown"], id="cooldown-same-campaign"),
    pytest.param([*BASE, call("2026-01-10T12:00:00+01:00", outcome="knows_offers")],
                 {"campaign": "movil"}, [], id="cooldown-other-campaign"),
    pytest.param([*BASE, call("2025-10-01T12:00:00+02:00", outcome="not_interested")], {}, [],
                 id="cooldown-over-after-90-days"),
    pytest.param([*BASE, call("2026-01-10T12:00:00+01:00", outcome="hung_up")], {}, [],
                 id="hung-up-is-no-cooldown"),
    pytest.param(BASE, {"position": 10, "head": 12}, ["stale"], id="stale-projection"),
    pytest.param(BASE, {"position": 12, "head": 12}, [], id="fresh-projection"),
    pytest.param(BASE, {"position": 10, "head": 12, "policy": Policy(version="lag", max_lag=5)}, [],
                 id="lag-within-policy"),
    pytest.param([REGISTERED], {"exclusions": [Exclusion(identity_hash("phone", "+34600000001"),
                                                         date(2026, 1, 1), "robinson")]},
                 ["no_legal_basis", "excluded_list"], id="excluded-phone"),
    pytest.param(BASE, {"exclusions": [Exclusion(identity_hash("email", "ANA@example.com"),
                                                 date(2026, 1, 1), "robinson")]},
                 ["excluded_list"], id="excluded-email-blocks-despite-contract"),
    pytest.param([REGISTERED, CONSENT_PHONE],
                 {"exclusions": [Exclusion(identity_hash("phone", "+34600000001"), date(2026, 1, 1))]},
                 [], id="consent-overrides-exclusion-list"),
    pytest.param(BASE, {"exclusions": [Exclusion(identity_hash("phone", "+34600000001"),
                                                 date(2026, 3, 1))]}, [],
                 id="exclusion-list-not-yet-in-force"),
    pytest.param(BASE, {"exclusions": [Exclusion(identity_hash("phone", "+34699999999"),
                                                 date(2026, 1, 1))]}, [],
                 id="someone-elses-exclusion"),
    pytest.param(BASE, {"exclusions": [Exclusion(identity_hash("phone", "+34699999999"), date(2026, 1, 1))],
                        "identities": ["phone:+34699999999"]}, ["excluded_list"],
                 id="exclusion-via-known-identity"),
    pytest.param(BASE, {"exclusions": [Exclusion(identity_hash("email", "ana@example.com"),
                                                 date(2026, 1, 1))], "purpose": "service",
                        "campaign": None}, [], id="exclusion-list-does-not-block-service"),
    pytest.param([REGISTERED, OBJECTION, call("2026-02-02T10:00:00+01:00"),
                  call("2026-02-03T10:00:00+01:00", outcome="not_interested")],
                 {"at": "2026-02-07T22:00:00+01:00", "position": 1, "head": 2},
                 ["stale", "objection", "no_legal_basis", "cooldown", "quiet_hours", "frequency_cap"],
                 id="every-reason-is-listed"),
]


@pytest.mark.parametrize(("history", "request_", "expected"), CASES)
def test_rules(history: list[dict[str, Any]], request_: dict[str, Any], expected: list[str]) -> None:
    assert codes(history, **request_) == expected


def test_reasons_name_the_events_their_dates_and_departments() -> None:
    early = call("2026-02-02T10:00:00+01:00", "movil", department="outsourced_callcenter")
    late = call("2026-02-03T10:00:00+01:00")
    history = [REGISTERED, CONTRACT, OBJECTION, early, late]
    decision = decide(list(reversed(history)), channel="phone", purpose="commercial",
                      at=datetime.fromisoformat(WED_11), campaign="fibra", policy=POLICY)
    by_code = {r.code: r for r in decision.reasons}
    assert by_code["objection"].event_ids == [OBJECTION["event_id"]]
    assert "2026-02-02 09:30 +01:00" in by_code["objection"].message
    assert "(by customer care)" in by_code["objection"].message and "_" not in by_code["objection"].message
    cap = by_code["frequency_cap"]
    assert cap.event_ids == [early["event_id"], late["event_id"]]
    assert "by the outsourced call centre, campaign movil" in cap.message and "2026-02-03 10:00" in cap.message
    assert "already 2 commercial contacts by phone in the last 7 days" in cap.message
    assert decision.to_json()["reasons"][0] == {"code": "objection", "message": by_code["objection"].message,
                                                "event_ids": [OBJECTION["event_id"]]}


def test_reasons_read_as_sentences_without_codes() -> None:
    """People read the reasons in the console and the CLI: channels, days, departments and
    answers in words, counts with their plural, never a code like customer_care or sms."""
    sunday = "2026-02-08T10:00:00+01:00"
    quiet = decide([REGISTERED, CONTRACT], channel="phone", purpose="commercial",
                   at=datetime.fromisoformat(sunday), policy=POLICY).reasons
    assert [r.code for r in quiet] == ["quiet_hours"]
    assert quiet[0].message.startswith("contact by phone on Sunday 8 February 2026 at 10:00 local time "
                                       "is not allowed: Sunday is not a working day (the working days "
                                       "are Monday to Friday)")
    assert "recorded without a department" in quiet[0].message
    withdrawn = fact("consent.withdrawn", "2026-01-12T10:00:00+01:00", "social_media", channel="sms",
                     purpose="commercial")
    no = decide([REGISTERED, CONTRACT, withdrawn], channel="sms", purpose="commercial",
                at=datetime.fromisoformat(WED_11), policy=POLICY).reasons
    assert "consent to commercial contact by SMS was withdrawn on 2026-01-12 10:00 +01:00 (by social media)" in [
        r.message for r in no]
    answered = call("2026-02-03T10:00:00+01:00", outcome="not_interested")
    cool = {r.code: r.message for r in decide([REGISTERED, CONTRACT, answered], channel="phone",
                                              purpose="commercial", at=datetime.fromisoformat(WED_11),
                                              campaign="fibra", policy=POLICY).reasons}
    assert "answered “not interested” to campaign fibra" in cool["cooldown"]
    one = Policy(version="one", frequency_caps=(FrequencyCap("phone", "commercial", 1, 1),))
    capped = {r.code: r.message for r in decide([REGISTERED, CONTRACT, call("2026-02-04T09:00:00+01:00")],
                                                channel="phone", purpose="commercial",
                                                at=datetime.fromisoformat(WED_11), policy=one).reasons}
    assert "already 1 commercial contact by phone in the last 1 day (at most 1" in capped["frequency_cap"]
    stale = decide([REGISTERED, CONTRACT], channel="email", purpose="commercial",
                   at=datetime.fromisoformat(WED_11), policy=Policy(version="lag", max_lag=0),
                   position=1, head=2).reasons
    assert stale[0].message.startswith("the customer history is 1 event behind the ledger")


def test_a_contact_is_judged_on_the_history_before_it() -> None:
    first = call("2026-02-02T10:00:00+01:00", outcome="not_interested")
    history = ContactHistory([REGISTERED, CONTRACT, first])
    at = datetime.fromisoformat(first["occurred_at"])
    assert decide(history, channel="phone", purpose="commercial", at=at, campaign="fibra",
                  policy=POLICY, before_event=first["event_id"]).allowed
    # Asked at the same instant without before_event, the call's own outcome counts.
    assert not decide(history, channel="phone", purpose="commercial", at=at, campaign="fibra",
                      policy=POLICY).allowed


def test_bad_requests_are_refused() -> None:
    with pytest.raises(ValueError, match="offset"):
        decide([], channel="phone", purpose="commercial", at=datetime(2026, 1, 1), policy=POLICY)
    with pytest.raises(ValueError, match="channel"):
        decide([], channel="fax", purpose="commercial", at=datetime.now(UTC), policy=POLICY)


# ----------------------------------------------------------------------------- policy file


def test_default_policy_file_holds_the_documented_defaults() -> None:
    policy = load_policy(DEFAULT_PATH)
    assert policy.version == "2026-11-1"
    assert policy.legitimate_interest_months == 12
    assert policy.call_windows == ((time(9), time(21)),)
    assert policy.working_days == frozenset(range(5))
    assert policy.frequency_caps == (FrequencyCap("phone", "commercial", 2, 7),)
    assert policy.cooldown_days == 90
    assert policy.cooldown_outcomes == frozenset({"not_interested", "knows_offers"})
    assert policy.max_lag == 0
    assert not policy.quiet_hours_for_service
    assert policy.closed_days == frozenset()  # public holidays come from the calendar, not the file
    christmas = decide(BASE, channel="phone", purpose="commercial",
                       at=datetime.fromisoformat("2026-12-25T11:00:00+01:00"), policy=policy)
    assert [r.code for r in christmas.reasons] == ["quiet_hours"]
    assert "2026-12-25 is a public holiday in Spain (Natividad del Señor)" in christmas.reasons[0].message


def test_env_and_flag_choose_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = tmp_path / "env.toml"
    env_file.write_text('version = "env"\n')
    flag_file = tmp_path / "flag.toml"
    flag_file.write_text('version = "flag"\n[quiet_hours]\nwindows = ["10:00-15:00", "16:00-21:00"]\n')
    monkeypatch.setenv("JOURNEY_POLICY", str(env_file))
    assert load_policy(Settings.load(str(tmp_path)).policy).version == "env"
    assert load_policy().version != "env"  # the environment is read by Settings only
    flagged = load_policy(flag_file)
    assert flagged.version == "flag"
    assert flagged.call_windows == ((time(10), time(15)), (time(16), time(21)))


@pytest.mark.parametrize(("text", "error"), [
    pytest.param("version = ", "not valid TOML", id="broken-toml"),
    pytest.param("max_lag = 1\n", "version: missing", id="no-version"),
    pytest.param('version = "x"\nfrequncy_cap = 1\n', "frequncy_cap: unknown setting", id="typo"),
    pytest.param('version = "x"\n[quiet_hours]\nwindows = ["21:00-09:00"]\n', "ends before it starts",
                 id="window-backwards"),
    pytest.param('version = "x"\n[quiet_hours]\nwindows = ["9-21"]\n', "not a window", id="window-format"),
    pytest.param('version = "x"\n[quiet_hours]\nworking_days = ["monday"]\n', "'monday' is not one of",
                 id="day-name"),
    pytest.param('version = "x"\n[quiet_hours]\ndefault_timezone = "Mars/Base"\n', "not a timezone",
                 id="timezone"),
    pytest.param('version = "x"\n[[frequency_cap]]\nchannel = "phone"\npurpose = "commercial"\nlimit = 2\n',
                 "frequency_cap[0].days: missing", id="cap-incomplete"),
    pytest.param('version = "x"\n[cooldown]\ndays = -1\n', "cooldown.days: expected a number > 0",
                 id="negative-days"),
])
def test_a_bad_policy_file_says_where_and_what(tmp_path: Path, text: str, error: str) -> None:
    path = tmp_path / "p.toml"
    path.write_text(text)
    with pytest.raises(PolicyError, match=r"contact policy .*p\.toml: ") as caught:
        load_policy(path)
    assert error in str(caught.value)


def test_missing_policy_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="no such file"):
        load_policy(tmp_path / "nope.toml")


def test_parse_policy_rejects_a_section_that_is_not_a_table() -> None:
    with pytest.raises(PolicyError, match="cooldown: expected a table"):
        parse_policy({"version": "x", "cooldown": 3})


# ----------------------------------------------------------------------------- exclusions


def test_exclusion_import_normalises_plain_lines_and_keeps_hashes(tmp_path: Path) -> None:
    hashed = identity_hash("email", "someone@example.com")
    source = tmp_path / "robinson.txt"
    source.write_text(f"# list\n600 000 001\nAna@Example.com\n{hashed.upper()}\n\nnot-a-phone\n")
    store = ExclusionStore(tmp_path / "exclusions.sqlite")
    summary = store.import_file(source, date(2026, 1, 1))
    assert (summary.imported, summary.duplicates) == (3, 0)
    assert [line for line, _, _ in summary.rejected] == [6]
    again = store.import_file(source, date(2026, 1, 1))
    assert (again.imported, again.duplicates) == (0, 3)
    found = store.entries_for([identity_hash("phone", "+34600000001"), hashed, entry_hash("x@y.zz")])
    assert {e.hash for e in found} == {identity_hash("phone", "+34600000001"), hashed}
    assert all(e.list_date == date(2026, 1, 1) and e.source == "robinson.txt" for e in found)
    store.close()


# ----------------------------------------------------------------------------- properties

START = datetime(2026, 1, 5, tzinfo=UTC)
ZONES = ("+01:00", "+02:00", "-05:00", "+00:00")


@st.composite
def instants(draw: st.DrawFn) -> str:
    minutes = draw(st.integers(0, 60 * 24 * 60))
    zone = draw(st.sampled_from(ZONES))
    moment = (START + timedelta(minutes=minutes)).astimezone(datetime.fromisoformat(f"2026-01-01T00:00{zone}").tzinfo)
    return moment.isoformat()


CHANNEL_CHOICES = ("phone", "sms", "email", "any")


@st.composite
def policy_facts(draw: st.DrawFn) -> dict[str, Any]:
    when = draw(instants())
    department = draw(st.sampled_from(("sales", "customer_care", "outsourced_callcenter", None)))
    purpose = draw(st.sampled_from(("commercial", "service")))
    kind = draw(st.sampled_from(("consent.given", "consent.withdrawn", "objection.recorded",
                                 "contract.started", "contract.ended", "call.outbound", "sms.sent",
                                 "email.sent", "customer.registered")))
    if kind.startswith("consent."):
        return fact(kind, when, department, channel=draw(st.sampled_from(CHANNEL_CHOICES)),
                    purpose=purpose, text="t")
    if kind == "objection.recorded":
        channels = draw(st.one_of(st.just("all"), st.lists(st.sampled_from(CHANNEL_CHOICES), min_size=1,
                                                           max_size=2, unique=True)))
        return fact(kind, when, department, channels=channels, purpose=purpose)
    if kind.startswith("contract."):
        return fact(kind, when, department, contract_id=draw(st.sampled_from(("C1", "C2"))), service="s")
    if kind == "customer.registered":
        return fact(kind, when, None, name="x", phone="+34600000001",
                    timezone=draw(st.sampled_from(("Europe/Madrid", "America/New_York"))))
    return fact(kind, when, department, purpose=purpose, campaign=draw(st.sampled_from(("fibra", "movil"))),
                outcome=draw(st.sampled_from(("no_answer", "not_interested", "knows_offers"))))


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    return {"channel": draw(st.sampled_from(("phone", "sms", "email"))),
            "purpose": draw(st.sampled_from(("commercial", "service"))),
            "at": datetime.fromisoformat(draw(instants())),
            "campaign": draw(st.sampled_from(("fibra", "movil", None))), "policy": POLICY,
            "exclusions": [Exclusion(identity_hash("phone", "+34600000001"), date(2026, 2, 1))]}


HISTORIES = st.lists(policy_facts(), max_size=25)


@settings(max_examples=300, deadline=None)
@given(HISTORIES, requests(), st.data())
def test_adding_an_objection_never_turns_a_deny_into_an_allow(
        history: list[dict[str, Any]], request: dict[str, Any], data: st.DataObject) -> None:
    before = decide(history, **request)
    objection = data.draw(policy_facts().filter(lambda f: f["type"] == "objection.recorded"))
    after = decide([*history, objection], **request)
    if not before.allowed:
        assert not after.allowed
    assert {r.code for r in before.reasons} <= {r.code for r in after.reasons} | {"objection"}


@settings(max_examples=300, deadline=None)
@given(HISTORIES, HISTORIES, requests())
def test_a_decision_depends_only_on_events_up_to_its_instant(
        history: list[dict[str, Any]], later: list[dict[str, Any]], request: dict[str, Any]) -> None:
    at = request["at"]
    future = [f for f in later if datetime.fromisoformat(f["occurred_at"]) > at]
    alone = decide(history, **request)
    with_future = decide([*future, *history], **request)
    assert alone == with_future


@settings(max_examples=300, deadline=None)
@given(HISTORIES, requests(), st.sampled_from(("no_answer", "not_interested", "knows_offers", "sale")))
def test_recording_a_contact_never_makes_the_next_identical_request_more_permissive(
        history: list[dict[str, Any]], request: dict[str, Any], outcome: str) -> None:
    before = decide(history, **request)
    kind = {"phone": "call.outbound", "sms": "sms.sent", "email": "email.sent"}[request["channel"]]
    contact = fact(kind, request["at"].isoformat(), "sales", purpose=request["purpose"],
                   campaign=request["campaign"], outcome=outcome)
    after = decide([*history, contact], **request)
    if before.allowed:  # the contact was allowed and made: asking again is no more permissive
        assert after.allowed or after.reasons
    if not before.allowed:
        assert not after.allowed
    assert {r.code for r in before.reasons} <= {r.code for r in after.reasons}


def test_one_index_serves_many_decisions_with_the_same_answers() -> None:
    history = [REGISTERED, CONTRACT, OBJECTION, call("2026-02-02T10:00:00+01:00"),
               call("2026-02-03T10:00:00+01:00", outcome="not_interested")]
    index = ContactHistory(history)
    for hours in range(0, 24 * 10, 7):
        at = datetime(2026, 1, 31, tzinfo=UTC) + timedelta(hours=hours)
        for channel, purpose in itertools.product(("phone", "email"), ("commercial", "service")):
            args: dict[str, Any] = {"channel": channel, "purpose": purpose, "at": at,
                                    "campaign": "fibra", "policy": POLICY}
            assert decide(index, **args) == decide(history, **args)
