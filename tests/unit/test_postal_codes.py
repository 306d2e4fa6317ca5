"""Spanish postal codes: malformed codes and codes that disagree with the city are flagged."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from domain.postal_codes import MALFORMED, MISMATCH, PLACES, PROVINCES, check, province, provinces_of


def addr(postal_code: object, city: str = "Madrid", **extra: object) -> dict[str, object]:
    return {"street": "Calle Mayor", "number": "5", "postal_code": postal_code, "city": city, **extra}


def test_a_good_address_has_no_flags() -> None:
    assert check(addr("28013", "Madrid")) == []
    assert check(addr("08907", "L'Hospitalet de Llobregat")) == []
    assert check(addr("41004", "Sevilla")) == []
    assert check(addr("46004", "València")) == []
    assert check(addr("51001", "Ceuta")) == []


def test_malformed_codes() -> None:
    for code in ("2801", "280133", "28O13", "", " ", "28 013", "00123", "53001", "99999", 8013, None):
        assert check(addr(code)) == [MALFORMED], code


def test_a_city_known_under_another_province_is_a_mismatch() -> None:
    assert check(addr("08013", "Madrid")) == [MISMATCH]
    assert check(addr("28013", "Badalona")) == [MISMATCH]
    assert check(addr("46001", "Sevilla")) == [MISMATCH]


def test_an_unknown_city_is_not_flagged() -> None:
    assert check(addr("28013", "Villaconejos de Abajo")) == []
    assert check(addr("08013", "")) == []


def test_city_names_are_compared_without_case_accents_or_punctuation() -> None:
    assert check(addr("08901", "l hospitalet de llobregat")) == []
    assert check(addr("28001", "HOSPITALET DE LLOBREGAT")) == [MISMATCH]
    assert check(addr("29001", "malaga")) == [] and check(addr("29001", " Málaga ")) == []
    assert check(addr("15001", "La Coruña")) == check(addr("15001", "A Coruña")) == []


def test_only_spanish_addresses_are_checked() -> None:
    assert check(addr("75001", "Paris", country="FR")) == []
    assert check(addr("1000", "Lisboa", country="PT")) == []
    for spain in ("ES", "es", "ESP", "España", "Spain"):
        assert check(addr("08013", "Madrid", country=spain)) == [MISMATCH]
    assert check(None) == []


def test_the_table_covers_every_province_and_no_name_is_ambiguous() -> None:
    assert sorted(PROVINCES) == [f"{n:02d}" for n in range(1, 53)]
    assert all(len(prefixes) == 1 for prefixes in PLACES.values())
    assert province("28013") == "Madrid" and province("08013") == "Barcelona" and province("53000") is None
    assert provinces_of("Badalona") == {"08"} and provinces_of("Atlantis") == frozenset()


@given(st.integers(1, 52), st.integers(0, 999))
def test_any_code_of_a_province_fits_its_own_cities(prefix: int, rest: int) -> None:
    code = f"{prefix:02d}{rest:03d}"
    province_name, cities = PROVINCES[code[:2]]
    for city in (province_name, *cities):
        assert check(addr(code, city)) == []
    other = PROVINCES["28" if code[:2] != "28" else "08"][0]
    assert check(addr(code, other)) == [MISMATCH]


@given(st.text(max_size=8))
def test_anything_but_five_digits_of_a_province_is_malformed(code: str) -> None:
    flags = check(addr(code, "Nowhere"))
    good = len(code.strip()) == 5 and code.strip().isascii() and code.strip().isdigit() \
        and 1 <= int(code.strip()[:2]) <= 52
    assert flags == ([] if good else [MALFORMED])
