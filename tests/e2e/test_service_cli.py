"""``journey inbox`` and ``journey warranty`` on a scenario played through ``journey append``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from journey.cli import main
from tests.ledgers import open_journey

BRAND = "@ondaluz"


def _f(fid: str, kind: str, at: str, customer: dict[str, str], data: dict[str, Any],
       department: str | None = None, agent: str | None = None, source: str = "social-listener",
       ) -> dict[str, Any]:
    fact: dict[str, Any] = {"type": kind, "id": fid, "source": source, "customer": customer,
                            "occurred_at": at, "data": data}
    if department:
        fact["department"] = department
    if agent:
        fact["agent"] = agent
    return fact


ANA = {"twitter": "@ana_m"}
SCENARIO = [
    _f("reg-1", "customer.registered", "2024-12-01T10:00:00+01:00", {"customer_id": "C-1001"},
       {"name": "Ana Martín", "phone": "+34600111001", "twitter": "@ana_m"}, "sales", source="crm"),
    _f("case-1", "case.opened", "2026-05-01T09:00:00+02:00", {"customer_id": "C-1001"},
       {"case_id": "K-77", "kind": "incident", "subject": "no internet"}, "technical_service",
       source="ticketing"),
    # tweets to the brand: one names the open case, two are answered by different departments
    _f("tw-1", "social.mention", "2026-05-04T10:00:00+02:00", ANA,
       {"network": "twitter", "handle": "@ana_m", "to": BRAND,
        "text": f"{BRAND} case K-77: still no internet after three days"}),
    _f("rp-1", "social.reply", "2026-05-04T10:30:00+02:00", ANA,
       {"in_reply_to": "tw-1", "text": "Sorry Ana, a technician comes tomorrow"}, "social_media",
       "SM-2", source="social-desk"),
    _f("tw-2", "social.mention", "2026-05-05T09:00:00+02:00", ANA,
       {"network": "twitter", "handle": "@ana_m", "to": BRAND, "text": f"{BRAND} charged twice?"}),
    _f("rp-2", "social.reply", "2026-05-05T11:00:00+02:00", ANA,
       {"in_reply_to": "tw-2", "text": "We refund it today"}, "billing", "B-4", source="social-desk"),
    _f("tw-3", "social.mention", "2026-05-06T08:00:00+02:00", {"twitter": "@pedro_r"},
       {"network": "twitter", "handle": "@pedro_r", "to": BRAND, "text": f"{BRAND} anyone there?"}),
    _f("ig-1", "social.mention", "2026-05-03T20:00:00+02:00", ANA,
       {"network": "instagram", "handle": "@ana_m", "to": BRAND, "text": "still waiting on K-77"}),
    _f("tw-4", "social.mention", "2026-05-08T18:00:00+02:00", ANA,
       {"network": "twitter", "handle": "@ana_m", "text": "their ads are everywhere"}),
    # a purchase without paper invoice, an old one, then three claims
    _f("pos-1", "purchase.recorded", "2025-01-15T18:00:00+01:00", {"phone": "+34600111001"},
       {"product": "Router X200", "serial": "X200-5581-AB", "store": "Madrid Gran Vía",
        "price": 89.9}, "stores", "S-12", source="pos-mad"),
    _f("pos-2", "purchase.recorded", "2023-03-01T12:00:00+01:00", {"phone": "+34600111001"},
       {"product": "TV Lumo 50", "serial": "TV9-0001", "store": "Madrid Gran Vía",
        "invoice": "F-2023-0042", "warranty_months": 24, "price": 499.0}, "stores", "S-3",
       source="pos-mad"),
    _f("wc-1", "warranty.claim_filed", "2026-05-10T11:00:00+02:00", {"phone": "+34600111001"},
       {"claim_id": "W-1", "serial": "x200 5581-ab", "issue": "no Wi-Fi"}, "stores", "S-31",
       source="pos-mad"),
    _f("wd-1", "warranty.claim_decided", "2026-05-12T13:00:00+02:00", {"customer_id": "C-1001"},
       {"claim_id": "W-1", "approved": True, "reason": "within warranty per purchase history"},
       "technical_service", "T-4", source="warranty-svc"),
    _f("wc-2", "warranty.claim_filed", "2026-05-10T11:10:00+02:00", {"phone": "+34600111001"},
       {"claim_id": "W-2", "serial": "TV9-0001", "issue": "no picture"}, "stores", "S-31",
       source="pos-mad"),
    _f("wc-3", "warranty.claim_filed", "2026-05-10T11:20:00+02:00", {"phone": "+34600111001"},
       {"claim_id": "W-3", "serial": "ZZ-404", "issue": "broken screen"}, "stores", "S-31",
       source="pos-mad"),
]

NOW = "2026-05-08T12:00:00+02:00"


def run(capsys: pytest.CaptureFixture[str], home: Path, *args: str) -> tuple[int, str, str]:
    code = main(["--data-dir", str(home), *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def home(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    source = tmp_path / "scenario.jsonl"
    source.write_text("".join(orjson.dumps(f).decode() + "\n" for f in SCENARIO))
    home = tmp_path / "ledger"
    code, out, err = run(capsys, home, "append", str(source))
    assert code == 0, err
    assert out.strip() == f"recorded {len(SCENARIO)}, duplicates 0, rejected 0"
    return home


def test_inbox_lists_unanswered_mentions_to_the_brand_oldest_first_with_their_age(
        capsys: pytest.CaptureFixture[str], home: Path) -> None:
    code, out, _ = run(capsys, home, "inbox", "--now", NOW, "--json")
    assert code == 0
    doc = orjson.loads(out)
    assert doc["now"] == "2026-05-08T10:00:00Z" and doc["all"] is False
    waiting = doc["waiting"]
    assert [m["mention_id"] for m in waiting] == ["ig-1", "tw-3"]
    ig, tw = waiting
    assert ig["age_s"] == (4 * 24 + 16) * 3600
    assert tw["age_s"] == 2 * 24 * 3600 + 4 * 3600
    assert (ig["customer_number"], ig["name"], ig["handle"]) == ("C-1001", "Ana Martín", "@ana_m")
    assert ig["case_id"] == "K-77" and ig["case_status"] == "open"
    assert (tw["customer_number"], tw["name"], tw["handle"]) == (None, None, "@pedro_r")
    assert tw["occurred_at"] == "2026-05-06T08:00:00+02:00" and tw["to"] == BRAND

    by_network = {g["network"]: g for g in doc["by_network"]}
    assert by_network["twitter"]["answered"] == 2 and by_network["twitter"]["waiting"] == 1
    assert by_network["twitter"]["median_s"] == (1800 + 7200) / 2
    assert by_network["instagram"]["answered"] == 0 and by_network["instagram"]["median_s"] is None
    by_department = {g["department"]: g for g in doc["by_department"]}
    assert by_department["social_media"]["answered"] == 1
    assert by_department["social_media"]["median_s"] == by_department["social_media"]["p90_s"] == 1800
    assert by_department["billing"]["median_s"] == 7200
    assert by_department[None]["waiting"] == 2
    assert doc["overall"]["answered"] == 2 and doc["overall"]["waiting"] == 2


def test_the_answered_mention_naming_an_open_case_is_linked_in_the_mentions_table(
        capsys: pytest.CaptureFixture[str], home: Path) -> None:
    journey = open_journey(home)
    try:
        rows = journey.projections.con.execute(
            "SELECT mention_id, case_id, reply_department, reply_agent, response_s "
            "FROM mentions WHERE replied_at IS NOT NULL ORDER BY occurred_at").fetchall()
    finally:
        journey.close()
    assert rows == [("tw-1", "K-77", "social_media", "SM-2", 1800.0),
                    ("tw-2", None, "billing", "B-4", 7200.0)]


def test_inbox_scope_all_network_and_the_clock(capsys: pytest.CaptureFixture[str], home: Path) -> None:
    doc = orjson.loads(run(capsys, home, "inbox", "--now", NOW, "--all", "--json")[1])
    assert [m["mention_id"] for m in doc["waiting"]] == ["ig-1", "tw-3"]  # tw-4 is after NOW
    doc = orjson.loads(run(capsys, home, "inbox", "--now", "2026-05-09T00:00:00+02:00", "--all",
                           "--json")[1])
    assert [m["mention_id"] for m in doc["waiting"]] == ["ig-1", "tw-3", "tw-4"]
    doc = orjson.loads(run(capsys, home, "inbox", "--now", NOW, "--network", "instagram", "--json")[1])
    assert [m["mention_id"] for m in doc["waiting"]] == ["ig-1"]
    assert [g["network"] for g in doc["by_network"]] == ["instagram"]
    # before the replies: both tweets of Ana were still waiting
    doc = orjson.loads(run(capsys, home, "inbox", "--now", "2026-05-05T10:00:00+02:00", "--json")[1])
    assert [m["mention_id"] for m in doc["waiting"]] == ["ig-1", "tw-2"]
    assert doc["overall"]["answered"] == 1


def test_inbox_text_and_bad_usage(capsys: pytest.CaptureFixture[str], home: Path) -> None:
    code, out, _ = run(capsys, home, "inbox", "--now", NOW)
    assert code == 0
    assert "2 waiting for an answer" in out
    assert out.index("@ana_m (C-1001 Ana Martín)") < out.index("@pedro_r (prospect)")
    assert "waiting   4d 16h" in out and "[case K-77]" in out
    assert "First response by network" in out and "First response by department" in out
    code, _, err = run(capsys, home, "inbox", "--now", "2026-05-08 12:00")
    assert code == 2 and "--now" in err


def test_warranty_by_serial_shows_buyer_store_date_end_and_claims_without_an_invoice(
        capsys: pytest.CaptureFixture[str], home: Path) -> None:
    code, out, _ = run(capsys, home, "warranty", "X200-5581-AB", "--at", "2026-06-01", "--json")
    assert code == 0
    doc = orjson.loads(out)
    assert doc["kind"] == "serial" and doc["at"] == "2026-06-01"
    (product,) = doc["products"]
    assert (product["product"], product["store"]) == ("Router X200", "Madrid Gran Vía")
    assert (product["customer_number"], product["name"]) == ("C-1001", "Ana Martín")
    assert product["purchased_at"] == "2025-01-15T18:00:00+01:00"
    assert (product["warranty_ends"], product["in_warranty"], product["invoice"]) == ("2027-01-15", True, None)
    (claim,) = doc["claims"]
    assert (claim["claim_id"], claim["status"], claim["flags"]) == ("W-1", "approved", [])
    assert claim["in_warranty_when_filed"] is True

    later = orjson.loads(run(capsys, home, "warranty", "x2005581ab", "--at", "2027-01-16", "--json")[1])
    assert later["products"][0]["in_warranty"] is False

    code, out, _ = run(capsys, home, "warranty", "X200-5581-AB", "--at", "2026-06-01")
    assert code == 0
    assert "Router X200 serial X200-5581-AB bought by C-1001 Ana Martín on 2025-01-15" in out
    assert "until 2027-01-15: IN WARRANTY" in out and "no invoice on record" in out
    assert "W-1" in out and "APPROVED" in out


def test_warranty_flags_out_of_warranty_and_unknown_serials(capsys: pytest.CaptureFixture[str],
                                                            home: Path) -> None:
    doc = orjson.loads(run(capsys, home, "warranty", "TV9-0001", "--at", "2026-06-01", "--json")[1])
    assert doc["products"][0]["in_warranty"] is False
    (claim,) = doc["claims"]
    assert claim["flags"] == ["out_of_warranty"] and claim["warranty_ends"] == "2025-03-01"
    assert claim["status"] == "open"

    code, out, _ = run(capsys, home, "warranty", "ZZ-404", "--json")
    assert code == 0
    doc = orjson.loads(out)
    assert doc["kind"] == "serial" and doc["products"] == []
    (claim,) = doc["claims"]
    assert claim["flags"] == ["unknown_product"] and claim["customer_number"] == "C-1001"
    code, out, _ = run(capsys, home, "warranty", "ZZ-404")
    assert "no purchase of this serial is recorded" in out and "[unknown_product]" in out


def test_warranty_by_customer_reference_lists_every_product_and_claim(
        capsys: pytest.CaptureFixture[str], home: Path) -> None:
    code, out, _ = run(capsys, home, "warranty", "+34 600 111 001", "--at", "2026-06-01", "--json")
    assert code == 0
    doc = orjson.loads(out)
    assert doc["kind"] == "customer"
    assert (doc["customer"]["customer_number"], doc["customer"]["name"]) == ("C-1001", "Ana Martín")
    assert [p["serial"] for p in doc["products"]] == ["TV9-0001", "X200-5581-AB"]
    assert [p["in_warranty"] for p in doc["products"]] == [False, True]
    assert {c["claim_id"]: c["flags"] for c in doc["claims"]} == {
        "W-1": [], "W-2": ["out_of_warranty"], "W-3": ["unknown_product"]}
    by_number = orjson.loads(run(capsys, home, "warranty", "C-1001", "--at", "2026-06-01", "--json")[1])
    assert by_number == doc | {"query": "C-1001"}


def test_warranty_unknown_query_and_bad_date(capsys: pytest.CaptureFixture[str], home: Path) -> None:
    code, _, err = run(capsys, home, "warranty", "NOPE-1")
    assert code == 3 and "no product with serial 'NOPE-1' and nobody known as 'NOPE-1'" in err
    code, _, _ = run(capsys, home, "warranty", "+34 699 999 999")
    assert code == 3
    code, _, err = run(capsys, home, "warranty", "C-1001", "--at", "June")
    assert code == 2 and "--at" in err
