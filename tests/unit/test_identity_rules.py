"""Phones and national ids as kept libraries judge them (phonenumbers, python-stdnum), and the
ledgers recorded under the earlier hand-written rules, which must keep finding the same people."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import phonenumbers
import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain import catalogue, identity
from domain.contact_policy import Exclusion, Policy, decide
from domain.errors import InvalidFact
from journey.references import reference_key
from tests.ledgers import append, open_journey
from tests.legacy_identity import normalised_by_old_rules, old_normalise


@pytest.fixture
def region() -> Iterator[None]:
    """Restores the default region a test changes (the module keeps it for the process)."""
    yield
    identity.set_phone_region(identity.DEFAULT_PHONE_REGION)


# ----------------------------------------------------------------------------- phones


@pytest.mark.parametrize(("raw", "e164"), [
    ("600 000 001", "+34600000001"),
    ("600-00-00-01", "+34600000001"),
    ("600.000.001", "+34600000001"),
    ("(+34) 600 000 001", "+34600000001"),
    ("0034 600 000 001", "+34600000001"),
    ("912 345 678", "+34912345678"),  # a Madrid landline, which the earlier rules also read
    ("710 000 000", "+34710000000"),
    ("+44 20 7946 0000", "+442079460000"),
    ("+1 (202) 555-0100", "+12025550100"),
])
def test_phones_become_e164_from_national_and_international_spellings(raw: str, e164: str) -> None:
    assert identity.normalise("phone", raw, "customer.phone") == e164


def test_national_formats_are_read_in_the_region_given_or_configured(region: None) -> None:
    assert identity.normalise("phone", "020 7946 0000", "x", region="GB") == "+442079460000"
    with pytest.raises(InvalidFact, match="possible in Spain"):
        identity.normalise("phone", "020 7946 0000", "x")
    identity.set_phone_region("gb")
    assert identity.normalise("phone", "020 7946 0000", "x") == "+442079460000"
    # An international spelling means the same whatever the region, "00" included.
    assert identity.normalise("phone", "0034 600 000 001", "x") == "+34600000001"
    assert identity.normalise("phone", "+34 600 000 001", "x") == "+34600000001"
    with pytest.raises(ValueError, match="'XX' is not a region"):
        identity.set_phone_region("XX")
    assert identity.normalise("phone", "020 7946 0000", "x") == "+442079460000"


@pytest.mark.parametrize(("raw", "reason"), [
    ("+34 123", "customer.phone: '+34 123' is not a phone number possible in Spain (too short)"),
    ("+34 6000 000 010", "customer.phone: '+34 6000 000 010' is not a phone number possible in Spain "
                         "(too long)"),
    ("+34 500 000 000", "customer.phone: '+34 500 000 000' is not a phone number in use in Spain "
                        "(no numbers are given out in that range)"),
    ("+1 999 555 0100", "customer.phone: '+1 999 555 0100' is not a phone number in use in United States "
                        "(no numbers are given out in that range)"),
    ("12", "customer.phone: '12' is not a phone number possible in Spain (too short)"),
    ("+999 1234567", "customer.phone: '+999 1234567' is not a phone number: it starts with no country "
                     "code (write it like +34600000001)"),
    ("600 ABC DEF", "customer.phone: '600 ABC DEF' is not a phone number: only digits, spaces, dashes, "
                    "dots and brackets after an optional + (write it like +34600000001)"),
    ("600000001 ext. 5", "customer.phone: '600000001 ext. 5' is not a phone number: only digits"),
])
def test_impossible_and_unassigned_numbers_are_refused_with_the_reason(raw: str, reason: str) -> None:
    with pytest.raises(InvalidFact) as raised:
        identity.normalise("phone", raw, "customer.phone")
    assert str(raised.value).startswith(reason)


def test_the_door_names_the_field_that_holds_a_refused_phone() -> None:
    base = {"id": "f1", "source": "cc", "occurred_at": "2026-01-05T10:00:00+01:00"}
    cases = [
        ({**base, "type": "call.inbound", "customer": {"phone": "+34 123"}}, "customer.phone: "),
        ({**base, "type": "customer.registered", "customer": {"customer_id": "C-1"},
          "data": {"name": "Ana", "phone": "+34 500 000 000"}}, "data.phone: "),
        ({**base, "type": "identity.linked", "customer": {"customer_id": "C-1"},
          "data": {"kind": "national_id", "value": "12345678A"}}, "data.value: "),
    ]
    for raw, where in cases:
        with pytest.raises(InvalidFact) as raised:
            catalogue.validate(raw)
        assert str(raised.value).startswith(where)


# ----------------------------------------------------------------------------- national ids


@pytest.mark.parametrize(("raw", "canonical"), [
    ("12345678Z", "12345678Z"),
    ("12345678-z", "12345678Z"),
    ("12.345.678 Z", "12345678Z"),
    ("00000001R", "00000001R"),
    ("x-1234567-l", "X1234567L"),
    ("Y1234567X", "Y1234567X"),
    ("Z7654321H", "Z7654321H"),
    # Not a Spanish document: nothing here can check it, so it is kept as written.
    ("ab 123456", "AB123456"),
    ("123456789", "123456789"),
])
def test_dni_and_nie_are_checked_and_other_documents_kept(raw: str, canonical: str) -> None:
    assert identity.normalise("national_id", raw, "customer.national_id") == canonical


@pytest.mark.parametrize(("raw", "reason"), [
    ("12345678A", "'12345678A' is not a valid DNI (wrong check letter: it does not match the digits"),
    ("1234567Z", "'1234567Z' is not a valid DNI (wrong length: a DNI is 8 digits and a check letter"),
    ("12345678", "'12345678' is not a valid DNI (wrong length: a DNI is 8 digits and a check letter"),
    ("X1234567A", "'X1234567A' is not a valid NIE (wrong check letter: it does not match the digits"),
    ("Y12345", "'Y12345' is not a valid NIE (wrong length: an NIE is X, Y or Z, 7 digits and a check"),
    ("PASAPORTE", "'PASAPORTE' is not a national id: a DNI (12345678Z), an NIE (X1234567L) or another "
                  "document's number (letters and digits)"),
    ("12345678Ñ", "'12345678Ñ' is not a national id"),
])
def test_a_bad_national_id_is_refused_naming_the_failing_check(raw: str, reason: str) -> None:
    with pytest.raises(InvalidFact) as raised:
        identity.normalise("national_id", raw, "customer.national_id")
    assert str(raised.value).startswith("customer.national_id: " + reason)


# ----------------------------------------------------------------------------- earlier keys


def _example_numbers() -> list[str]:
    """A valid number of every kind in every region phonenumbers knows, as E.164."""
    out = set()
    for code in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in (phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.MOBILE,
                     phonenumbers.PhoneNumberType.TOLL_FREE):
            number = phonenumbers.example_number_for_type(code, kind)
            if number is not None and phonenumbers.is_valid_number(number):
                out.add(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
    return sorted(out)


def test_every_valid_number_keeps_the_key_the_earlier_rules_gave_it() -> None:
    numbers = _example_numbers()
    assert len(numbers) > 500
    for e164 in numbers:
        for spelling in (e164, "00" + e164[1:], f"{e164[:3]} {e164[3:6]}-{e164[6:]}"):
            assert identity.normalise("phone", spelling, "x") == old_normalise("phone", spelling, "x") == e164


_SPANISH = st.one_of(st.from_regex(r"6[0-9]{8}", fullmatch=True),
                     st.from_regex(r"7[1-48][0-9]{7}", fullmatch=True),
                     st.from_regex(r"9[1-8][1-8][0-9]{6}", fullmatch=True))  # 929, 989 unused


@given(_SPANISH, st.sampled_from(["{n}", "+34{n}", "0034{n}", "+34 {a} {b} {c}", "{a}-{b}-{c}",
                                  "{a}.{b}.{c}", "(+34) {a} {b} {c}", " 0034 {a} {b} {c} "]))
def test_spanish_numbers_keep_their_keys_however_they_are_written(number: str, form: str) -> None:
    text = form.format(n=number, a=number[:3], b=number[3:6], c=number[6:])
    new = identity.normalise("phone", text, "x")
    assert new == old_normalise("phone", text, "x") == "+34" + number


@given(st.from_regex(r"[0-9]{8}", fullmatch=True), st.sampled_from(["{n}{l}", "{n}-{l}", "{n} {l}"]),
       st.booleans())
def test_valid_dnis_keep_their_keys(number: str, form: str, lower: bool) -> None:
    letter = "TRWAGMYFPDXBNJZSQVHLCKE"[int(number) % 23]
    text = form.format(n=number, l=letter.lower() if lower else letter)
    assert identity.normalise("national_id", text, "x") == old_normalise("national_id", text, "x")


def fact(fid: str, kind: str, customer: dict[str, str], data: dict[str, Any], day: int = 5) -> dict[str, Any]:
    return {"type": kind, "id": fid, "source": "crm", "customer": customer,
            "occurred_at": f"2026-01-{day:02d}T10:00:00+01:00", "data": data}


EARLIER = [
    fact("r1", "customer.registered", {"customer_id": "C-1"},
         {"name": "Ana", "phone": "600 000 001", "email": "ana@example.com"}, 1),
    fact("n1", "identity.linked", {"customer_id": "C-1"}, {"kind": "national_id", "value": "12345678-z"}, 2),
    # What only the earlier rules took: an unassigned range and a DNI with a wrong letter.
    fact("r2", "customer.registered", {"customer_id": "C-2"}, {"name": "Luis", "phone": "+34 500 000 000"}, 1),
    fact("n2", "identity.linked", {"customer_id": "C-2"}, {"kind": "national_id", "value": "12345678a"}, 2),
    fact("c1", "call.inbound", {"phone": "0034 500 000 000"}, {"reason": "billing"}, 3),
]


def test_a_ledger_recorded_under_the_earlier_rules_finds_the_same_people(tmp_path: Path) -> None:
    with normalised_by_old_rules():
        journey = open_journey(tmp_path)
        try:
            assert not append(journey, EARLIER).rejected
        finally:
            journey.close()
    journey = open_journey(tmp_path)
    try:
        journey.project()
        ana = journey.projections.resolve("customer_id:C-1")
        luis = journey.projections.resolve("customer_id:C-2")
        assert ana is not None and luis is not None and ana != luis
        for ref in ("600000001", "+34 600 00 00 01", "0034600000001", "phone:600-000-001",
                    "national_id:12345678Z", "national_id:12.345.678-z"):
            view = journey.customer(ref)
            assert view is not None and view["customer_id"] == ana, ref
        # A lookup by what today's rules refuse still finds what the earlier ones recorded.
        for ref in ("+34500000000", "+34 500 000 000", "0034 500 000 000", "national_id:12345678a"):
            assert reference_key(ref) in ("phone:+34500000000", "national_id:12345678A")
            view = journey.customer(ref)
            assert view is not None and view["customer_id"] == luis, ref
        with pytest.raises(InvalidFact, match="possible in Spain"):
            reference_key("+34 123")  # too short for either rule: refused with today's reason

        summary = append(journey, [
            fact("c2", "call.inbound", {"phone": "+34 600-000-001"}, {"reason": "question"}, 6),
            fact("c3", "call.inbound", {"phone": "+34 500 000 000"}, {"reason": "question"}, 6),
            fact("c4", "call.inbound", {"national_id": "12345678A"}, {"reason": "question"}, 6),
        ])
        assert [r.reason for r in summary.rejected] == [
            "customer.phone: '+34 500 000 000' is not a phone number in use in Spain "
            "(no numbers are given out in that range)",
            "customer.national_id: '12345678A' is not a valid DNI (wrong check letter: it does not "
            "match the digits, one of them is mistyped)",
        ]
        view = journey.customer("+34600000001")
        assert view is not None and view["customer_id"] == ana
        assert "c2" in [e["source_id"] for e in view["timeline"]]
        count = journey.projections.con.execute("SELECT count(*) FROM customers").fetchone()
        assert count is not None and count[0] == 2  # the new call found Ana: nobody new
    finally:
        journey.close()


def test_an_exclusion_entry_for_a_number_only_the_earlier_rules_took_still_applies() -> None:
    registered = {"type": "customer.registered", "event_id": "e-1", "department": None,
                  "occurred_at": "2026-01-10T10:00:00+01:00",
                  "data": {"name": "Luis", "phone": "+34500000000", "timezone": "Europe/Madrid"}}
    listed = Exclusion(hashlib.sha256(b"+34500000000").hexdigest(), date(2026, 1, 1), "robinson")
    decision = decide([registered], channel="phone", purpose="commercial",
                      at=datetime.fromisoformat("2026-02-04T11:00:00+01:00"), campaign="fibra",
                      policy=Policy(version="test"), exclusions=[listed])
    assert "excluded_list" in [r.code for r in decision.reasons]


def test_forgetting_looks_for_every_way_a_source_writes_a_phone() -> None:
    spanish = identity.phone_spellings("+34600000001")
    assert {"34600000001", "0034600000001", "600000001", "600 00 00 01"} <= spanish
    # The national number of another country is not its last nine digits.
    assert {"442079460000", "2079460000", "02079460000", "020 7946 0000"} <= identity.phone_spellings(
        "+442079460000")
    assert "079460000" not in identity.phone_spellings("+442079460000")
    assert {"34500000000", "500000000"} <= identity.phone_spellings("+34500000000")  # earlier rules
