"""The demo/benchmark dataset generator: deterministic, contract-shaped, realistic enough."""

from __future__ import annotations

import io
import json
import re
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from journey.demo_data import (
    BRAND_HANDLE,
    CATALOGUE,
    DEPARTMENTS,
    bad_lines,
    generate,
    recorded,
    stories,
    write_jsonl,
)

Fact = dict[str, Any]

TOP_LEVEL = {"type", "id", "source", "customer", "occurred_at", "department", "agent", "data"}
REQUIRED = {"type", "id", "source", "customer", "occurred_at"}
IDENTITY_KEYS = {"customer_id", "phone", "email", "twitter", "loyalty_card", "national_id"}
CHANNELS = {"phone", "sms", "email", "letter", "social", "any"}
PURPOSES = {"commercial", "service"}
OUTCOMES = {"answered", "no_answer", "not_interested", "knows_offers", "hung_up", "voicemail",
            "sale"}

# required data fields per type, as the brief's contract states them
REQUIRED_DATA: dict[str, tuple[str, ...]] = {
    "customer.registered": ("name",),
    "identity.linked": ("kind", "value"),
    "address.changed": ("address",),
    "consent.given": ("channel", "purpose", "text"),
    "consent.withdrawn": ("channel", "purpose"),
    "call.outbound": ("purpose",),
    "social.mention": ("network", "text"),
    "social.reply": ("in_reply_to", "text"),
    "store.visit": ("store",),
    "email.sent": ("purpose",),
    "letter.sent": ("purpose",),
    "sms.sent": ("purpose",),
    "purchase.recorded": ("product",),
    "warranty.claim_filed": ("claim_id", "serial"),
    "warranty.claim_decided": ("claim_id", "approved"),
    "case.opened": ("case_id", "kind"),
    "case.transferred": ("case_id", "to"),
    "case.note": ("case_id", "text"),
    "case.responded": ("case_id", "text"),
    "case.resolved": ("case_id",),
    "case.reopened": ("case_id",),
    "promise.made": ("promise_id", "what", "due_by"),
    "promise.kept": ("promise_id",),
    "promise.broken": ("promise_id",),
    "contract.started": ("contract_id", "service"),
    "contract.ended": ("contract_id",),
}

PROVINCE = {
    "Madrid": "28", "Barcelona": "08", "Sevilla": "41", "Valencia": "46", "Bilbao": "48",
    "Zaragoza": "50", "Málaga": "29", "Las Palmas de Gran Canaria": "35", "A Coruña": "15",
    "Valladolid": "47", "Murcia": "30", "Palma": "07", "Alicante": "03", "Granada": "18",
    "Donostia-San Sebastián": "20", "Santander": "39", "Oviedo": "33", "Pamplona": "31",
}
PHONE = re.compile(r"^\+346\d{8}$")
TWITTER = re.compile(r"^@[a-z0-9_]{1,15}$")
CUSTOMER_ID = re.compile(r"^C-\d{6}$")
HOUR = 3600


@pytest.fixture(scope="module")
def timed() -> list[tuple[int, Fact]]:
    """(recording instant, fact) in the order the demo's ledger records them."""
    return list(recorded(2000))


@pytest.fixture(scope="module")
def facts(timed: list[tuple[int, Fact]]) -> list[Fact]:
    return [f for _, f in timed]


def _lag(at: int, f: Fact) -> int:
    """Seconds between the fact happening and its recording."""
    return at - int(datetime.fromisoformat(f["occurred_at"]).timestamp())


def _key(f: Fact) -> tuple[str, str]:
    return f["source"], f["id"]


def _ident(f: Fact) -> tuple[str, str]:
    (kind, value), *_ = f["customer"].items()
    return kind, value


# ------------------------------------------------------------------------ determinism


def test_same_seed_same_output() -> None:
    a = [orjson.dumps(f) for f in generate(300, seed=3)]
    b = [orjson.dumps(f) for f in generate(300, seed=3)]
    assert a == b
    c = [orjson.dumps(f) for f in generate(300, seed=4)]
    assert a != c


def test_start_and_days_bound_generated_facts() -> None:
    start = date(2025, 10, 1)
    out = list(generate(200, start=start, days=30, with_stories=False))
    assert out
    lo = datetime(2025, 10, 1).date()
    hi = lo + timedelta(days=30)
    for f in out:
        assert lo <= datetime.fromisoformat(f["occurred_at"]).date() < hi


# ------------------------------------------------------------------------ the contract


def test_every_fact_has_the_contract_shape(facts: list[Fact]) -> None:
    for f in facts:
        assert REQUIRED <= f.keys() <= TOP_LEVEL, f
        for k in ("type", "id", "source"):
            assert isinstance(f[k], str) and f[k], f
        assert f["type"] in CATALOGUE, f
        cust = f["customer"]
        assert isinstance(cust, dict) and cust and cust.keys() <= IDENTITY_KEYS, f
        assert all(isinstance(v, str) and v for v in cust.values()), f
        moment = datetime.fromisoformat(f["occurred_at"])
        assert moment.tzinfo is not None, f
        # Europe/Madrid: +01:00 in winter, +02:00 in summer
        assert f["occurred_at"][-6:] in ("+01:00", "+02:00"), f
        assert f.get("department", "sales") in DEPARTMENTS, f
        assert isinstance(f.get("agent", ""), str), f
        data = f.get("data", {})
        assert isinstance(data, dict), f
        for name in REQUIRED_DATA.get(f["type"], ()):
            assert data.get(name) is not None, (name, f)
        # everything must survive JSON
        assert json.loads(orjson.dumps(f)) == f


def test_offsets_follow_madrid_dst(facts: list[Fact]) -> None:
    for f in facts:
        moment = datetime.fromisoformat(f["occurred_at"])
        summer = date(moment.year, 3, 29) <= moment.date() < date(moment.year, 10, 25)
        if moment.year == 2026:  # DST 2026: Mar 29 - Oct 25
            assert moment.utcoffset() == timedelta(hours=2 if summer else 1), f


def test_data_field_types(facts: list[Fact]) -> None:
    for f in facts:
        t, data = f["type"], f.get("data", {})
        if t == "call.outbound":
            assert data["purpose"] in PURPOSES
            assert data.get("outcome", "answered") in OUTCOMES
            assert isinstance(data.get("duration_s", 0), int)
            if data["purpose"] == "commercial" and f["source"] != "story":
                assert data["campaign"] in ("fibra", "movil", "tv", "energia")
        elif t in ("consent.given", "consent.withdrawn"):
            assert data["channel"] in CHANNELS and data["purpose"] in PURPOSES
        elif t == "objection.recorded":
            ch = data["channels"]
            assert ch == "all" or (isinstance(ch, list) and set(ch) <= CHANNELS)
        elif t in ("email.sent", "letter.sent", "sms.sent"):
            assert data["purpose"] in PURPOSES
        elif t == "purchase.recorded":
            assert isinstance(data.get("warranty_months", 24), int)
            assert isinstance(data.get("price", 0.0), int | float)
        elif t == "warranty.claim_decided":
            assert isinstance(data["approved"], bool)
        elif t == "promise.made":
            date.fromisoformat(data["due_by"])
        elif t == "case.opened":
            assert data["kind"] in ("complaint", "incident", "request", "warranty")
        elif t == "case.transferred":
            assert data["to"] in DEPARTMENTS
        elif t == "identity.linked":
            assert data["kind"] in IDENTITY_KEYS - {"customer_id"}


def test_identities_look_real(facts: list[Fact]) -> None:
    for f in facts:
        c = f["customer"]
        if "phone" in c:
            assert PHONE.match(c["phone"]), f
        if "email" in c:
            assert c["email"] == c["email"].lower() and "@" in c["email"], f
        if "twitter" in c:
            assert TWITTER.match(c["twitter"]), f
        if "customer_id" in c:
            assert CUSTOMER_ID.match(c["customer_id"]), f
        if f["type"] == "customer.registered":
            d = f["data"]
            assert PHONE.match(d["phone"]) and d["email"] == d["email"].lower()
            assert "twitter" not in d or TWITTER.match(d["twitter"])
            date.fromisoformat(d["birthday"])
            addr = d["address"]
            assert re.fullmatch(r"\d{5}", addr["postal_code"])
            assert addr["postal_code"][:2] == PROVINCE[addr["city"]], addr
        if f["type"] == "address.changed":
            addr = f["data"]["address"]
            assert addr["postal_code"][:2] == PROVINCE[addr["city"]], addr


def test_source_and_id_are_unique(facts: list[Fact]) -> None:
    keys = Counter(_key(f) for f in facts)
    assert keys.most_common(1)[0][1] == 1


def test_all_catalogue_types_appear(facts: list[Fact]) -> None:
    seen = {f["type"] for f in facts}
    assert seen == set(CATALOGUE)


def test_size_and_mix(facts: list[Fact]) -> None:
    assert 15_000 < len(facts) < 40_000  # ~12 per customer
    depts = Counter(f.get("department") for f in facts)
    assert set(DEPARTMENTS) <= depts.keys()
    campaigns = Counter(f["data"].get("campaign") for f in facts if f["type"] == "call.outbound")
    assert {"fibra", "movil", "tv", "energia"} <= campaigns.keys()
    sources = {f["source"] for f in facts}
    assert len(sources) > 15
    mentions = {f["id"] for f in facts if f["type"] == "social.mention"}
    replied = {f["data"]["in_reply_to"] for f in facts if f["type"] == "social.reply"}
    assert replied <= mentions and 0 < len(replied) < len(mentions)


# ------------------------------------------------------------------------ order


def test_late_fraction(timed: list[tuple[int, Fact]]) -> None:
    """0.5-5% of the facts are late uploads, recorded hours to days after they happened: the
    call centres' batches and the stores' offline days; the others within minutes."""
    late = [(lag, f) for at, f in timed if (lag := _lag(at, f)) > HOUR]
    assert 0.005 <= len(late) / len(timed) <= 0.05
    sources = {f["source"] for _, f in late}
    assert any(s.startswith("callcenter") for s in sources)
    assert any(s.startswith("pos-") for s in sources)
    assert max(lag for lag, _ in late) > 24 * HOUR  # a call centre's upload days later
    assert min(lag for lag, _ in late) < 24 * HOUR  # a store's night batch
    prompt = sorted(_lag(at, f) for at, f in timed if _lag(at, f) <= HOUR)
    assert prompt[0] >= 1 and prompt[len(prompt) // 2] < 5 * 60 and prompt[-1] <= 15 * 60


def test_recorded_in_order_and_never_before_happening(timed: list[tuple[int, Fact]]) -> None:
    instants = [at for at, _ in timed]
    assert instants == sorted(instants)
    assert all(_lag(at, f) > 0 for at, f in timed)
    assert [f for _, f in timed] == list(generate(2000))


def test_a_persons_facts_on_time_come_in_the_order_they_happened(timed: list[tuple[int, Fact]]) -> None:
    """Only a late upload is recorded after something that happened later (by the same
    reference): one source's queue never overtakes itself."""
    newest: dict[tuple[str, str], datetime] = {}
    for at, f in timed:
        if _lag(at, f) > HOUR:
            continue
        moment = datetime.fromisoformat(f["occurred_at"])
        ref = _ident(f)
        assert ref not in newest or newest[ref] <= moment, f
        newest[ref] = moment


def test_same_seed_same_recording() -> None:
    assert list(recorded(200, seed=3)) == list(recorded(200, seed=3))
    assert [at for at, _ in recorded(200, seed=3)] != [at for at, _ in recorded(200, seed=4)]


def test_address_changes_say_who_asked(facts: list[Fact]) -> None:
    """Customer care changes an address because the customer asked; billing on its own."""
    changes = [f for f in facts if f["type"] == "address.changed"]
    by = Counter((f["department"], f["data"]["requested_by"]) for f in changes)
    assert by.keys() == {("customer_care", "customer"), ("billing", "company")}
    assert by["customer_care", "customer"] > 0 and by["billing", "company"] > 0


def test_registration_comes_first_except_prospects(facts: list[Fact]) -> None:
    known: set[tuple[str, str]] = set()
    early: list[Fact] = []
    for f in facts:
        if f["type"] == "customer.registered":
            d = f["data"]
            known.add(_ident(f))
            known.update((k, d[k]) for k in ("phone", "email", "twitter") if k in d)
        elif f["type"] == "identity.linked":
            assert _ident(f) in known, f
            known.add((f["data"]["kind"], f["data"]["value"]))
        elif _ident(f) not in known:
            early.append(f)
    # only prospects appear before registering, and only by phone or handle
    for f in early:
        assert f["type"] in ("call.outbound", "social.mention", "social.reply"), f
        assert _ident(f)[0] in ("phone", "twitter"), f
    prospects = {_ident(f) for f in early}
    assert 0.01 * 2000 < len(prospects) < 0.1 * 2000
    registered_later = prospects & known
    assert 0 < len(registered_later) < len(prospects)


def test_case_facts_follow_their_opening(facts: list[Fact]) -> None:
    opened: set[str] = set()
    for f in facts:
        if f["type"] == "case.opened":
            opened.add(f["data"]["case_id"])
        elif f["type"].startswith("case."):
            assert f["data"]["case_id"] in opened, f


# ------------------------------------------------------------------------ stories


def test_stories_are_in_the_stream(facts: list[Fact]) -> None:
    by_key = {_key(f): f for f in facts}
    told = stories()
    assert len({_key(f) for f in told}) == len(told)
    for s in told:
        assert s["source"] == "story"
        assert by_key[_key(s)] == s
    assert not [f for f in generate(50, with_stories=False) if f["source"] == "story"]


def test_story_calls_after_objection() -> None:
    told = stories()
    ph = "+34600900001"
    objection = next(f for f in told if f["type"] == "objection.recorded"
                     and f["customer"] == {"customer_id": "C-900001"})
    assert objection["data"] == {"channels": "all", "purpose": "commercial"}
    assert objection["department"] == "customer_care"
    calls = [f for f in told if f["type"] == "call.outbound" and f["customer"] == {"phone": ph}]
    when = datetime.fromisoformat(objection["occurred_at"])
    before = [c for c in calls if datetime.fromisoformat(c["occurred_at"]) < when]
    after = [c for c in calls if datetime.fromisoformat(c["occurred_at"]) > when]
    assert len(before) == 1 and len(after) == 6
    assert all(c["data"]["purpose"] == "commercial" for c in calls)
    moments = sorted(datetime.fromisoformat(c["occurred_at"]) for c in after)
    assert moments[-1].date() - moments[0].date() == timedelta(days=2)  # three days
    assert {c["department"] for c in after} == {"sales", "outsourced_callcenter"}
    assert len({c["data"]["campaign"] for c in after}) == 2
    assert "2026-03-09T22:00:00+01:00" in {c["occurred_at"] for c in after}
    reg = next(f for f in told if f["type"] == "customer.registered"
               and f["customer"] == {"customer_id": "C-900001"})
    assert reg["data"]["phone"] == ph


def test_other_stories() -> None:
    told = stories()
    by_type: dict[str, list[Fact]] = {}
    for f in told:
        by_type.setdefault(f["type"], []).append(f)
    # 2. operator address change
    (change,) = by_type["address.changed"]
    assert change["department"] == "billing" and change["data"]["reason"] == "data cleanup"
    assert change["data"]["requested_by"] == "company"  # nobody asked: the ledger tells her
    # 3. warranty 14 months after purchase, by serial, no invoice
    (purchase,) = by_type["purchase.recorded"]
    (claim,) = by_type["warranty.claim_filed"]
    assert claim["data"]["serial"] == purchase["data"]["serial"]
    assert "invoice" not in purchase["data"]
    bought = datetime.fromisoformat(purchase["occurred_at"])
    filed = datetime.fromisoformat(claim["occurred_at"])
    assert (filed.year - bought.year) * 12 + filed.month - bought.month == 14
    # 4. contradictory answers
    (promise,) = by_type["promise.made"]
    (transfer,) = by_type["case.transferred"]
    (response,) = by_type["case.responded"]
    assert promise["department"] == "customer_care" and response["department"] == "sales"
    assert transfer["data"]["to"] == "sales"
    assert promise["data"]["case_id"] == transfer["data"]["case_id"] == response["data"]["case_id"]
    # 5. two unanswered tweets, one answered
    mentions = by_type["social.mention"]
    replies = by_type["social.reply"]
    assert all(m["data"]["to"] == BRAND_HANDLE for m in mentions)
    answered = {r["data"]["in_reply_to"] for r in replies}
    assert len(answered) == 1 and len([m for m in mentions if m["id"] not in answered]) == 2
    # 6. the outsourced call centre learns the customer moved
    notes = [n for n in by_type["case.note"] if n["department"] == "outsourced_callcenter"]
    assert notes and "moved" in notes[0]["data"]["text"]
    # 7. one person with two customer numbers (the README's `journey merge C-900007 C-900008`)
    twice = [f for f in by_type["customer.registered"] if f["customer"]["customer_id"] in ("C-900007", "C-900008")]
    assert len(twice) == 2 and len({f["data"]["name"] for f in twice}) == 1
    assert len({orjson.dumps(f["data"]["address"]) for f in twice}) == 1
    assert {f["data"]["phone"] for f in twice} == {"+34600900007", "+34600900008"}


# ------------------------------------------------------------------------ output


def test_write_jsonl_path_and_files(tmp_path: Path) -> None:
    sample = list(generate(30, with_stories=False))
    path = tmp_path / "facts.jsonl"
    assert write_jsonl(path, sample, chunk=7) == len(sample)
    lines = path.read_bytes().splitlines()
    assert [orjson.loads(line) for line in lines] == sample
    assert write_jsonl(str(path), sample[:3], append=True) == 3
    assert len(path.read_bytes().splitlines()) == len(sample) + 3

    text = io.StringIO()
    assert write_jsonl(text, sample) == len(sample)
    assert [json.loads(line) for line in text.getvalue().splitlines()] == sample
    binary = io.BytesIO()
    assert write_jsonl(binary, iter(sample)) == len(sample)
    assert binary.getvalue() == path.read_bytes()[: len(binary.getvalue())]


def test_bad_lines_cover_the_failures() -> None:
    cases = bad_lines()
    assert len(cases) >= 7
    keywords = {kw for _, kw in cases}
    assert {"json", "type", "occurred_at", "offset", "duration_s", "customer"} <= keywords
    broken = 0
    for line, kw in cases:
        assert "\n" not in line and kw == kw.lower()
        try:
            raw = json.loads(line)
        except ValueError:
            broken += 1
            continue
        assert isinstance(raw, dict)
    assert broken == 1
