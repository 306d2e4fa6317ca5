"""The compiled fast path (domain/schemas.py) judges a line exactly as the Python validator does.

Whatever a source sends, the fact ``parse_line`` returns, or the reason it refuses the line,
is the Python validator's: the fast path returns a fact only when it is that validator's fact
(same values, same key order, hence the same stored digest), and leaves every line it refuses
or doubts to the validator, which says why. And it is the path the common fact takes.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from consumers.jsonl_ingest import fact_parser, may_repeat_keys, parse_line, validate_text
from domain import catalogue, schemas
from domain.errors import InvalidFact
from domain.limits import DEFAULT_LIMITS, JSON_SAFE_INTEGER, Limits, check_name, limits_from
from journey import demo_data
from tests.strategies import fact_lists
from tests.unit.test_catalogue import EXAMPLES

#: Narrow limits, so that generated values reach every bound (sizes, depth, keys, items).
NARROW = Limits(max_string=40, max_name=12, max_depth=3, max_keys=6, max_items=3,
                max_warranty_months=60, max_duration_s=600)
#: The configured instant range of a ledger that accepts only this century.
CENTURY = limits_from("2000-01-01T00:00:00+00:00", "2100-01-01T00:00:00+00:00")

STRINGS = [
    "", " ", "\t", "all", "any", "phone", "email", "sms", "letter", "store", "commercial", "service",
    "complaint", "yes", "info", "national_id", "loyalty_card", "customer_id", "twitter",
    "2026-01-01", "20260101", "2026-W01-1", "1899-12-31", "1900-01-01", "2200-01-01", "2200-01-02",
    "2026-02-30", "2026-01-01T10:00:00+01:00", "2026-01-01T10:00:00Z", "2026-01-01T10:00:00-00:00",
    "2026-01-01T10:00:00.5+01:00", "2026-01-01T10:00:00.000000+01:00", "2026-01-01T10:00+01:00",
    "2026-01-01T10:00:00+01:00:30", "2026-01-01T10:00:00+19:00", "2026-01-01T10:00:00",
    "2199-12-31T23:00:00-05:00", "1900-01-01T00:30:00+01:00", "1901-06-01T00:00:00+00:00",
    "2026-01-01T24:00:00+01:00", "9999-12-31T23:59:59-18:00",
    "Europe/Madrid", "Europe", "Mars/Base", "UTC", "+34600000001", "600 00 00 02", "0034600000003",
    "call me", "+1", "p1@example.com", "nobody", "@Ana_B", "ana b", "12345678Z", "12345678A",
    "X1234567L", "AB123456", "C-1", "  C-2 ", "6f1d8c52-3a0e-5b7c-9d4f-2e8a1b0c7d35",
    "id\x01", "tab\there", "nel\x85", "\u2028", "\ufeff", "caf\u00e9", "x" * 13, "y" * 41, "z" * 600,
]
scalars = (st.none() | st.booleans() | st.sampled_from(STRINGS) | st.text(max_size=6)
           | st.sampled_from([-1, 0, 1, 24, 60, 61, 600, 601, 1200, 1201, 86_400, 86_401,
                              JSON_SAFE_INTEGER, JSON_SAFE_INTEGER + 1, 2**64])
           | st.integers(-5, 100_000) | st.floats(allow_nan=False, allow_infinity=False)
           | st.sampled_from([0.5, 1.0, -0.0, 1e300]))
ADDRESS_KEYS = ["street", "number", "postal_code", "city", "floor"]
values = st.recursive(
    scalars,
    lambda inner: (st.lists(inner, max_size=4)
                   | st.dictionaries(st.sampled_from([*ADDRESS_KEYS, "phone", "customer_id", "x"]) | st.text(max_size=4),
                                     inner, max_size=5)),
    max_leaves=12)
addresses = st.fixed_dictionaries(
    {"street": st.sampled_from(["Calle Mayor", " "]), "postal_code": st.just("28001"),
     "city": st.just("Madrid")},
    optional={"number": st.sampled_from(["7", 7, 7.5, None, "7B"]), "floor": st.just("2")})
channel_lists = st.lists(st.sampled_from([*catalogue.CHANNELS, "fax", "all", 3]), max_size=4)


def _field_names(type_name: object) -> list[str]:
    spec = catalogue.TYPES.get(type_name) if isinstance(type_name, str) else None
    return [f.name for f in spec.fields] if spec else []


@st.composite
def raw_facts(draw: st.DrawFn) -> bytes | str:
    """A line as a source might write it: a documented or generated fact, often broken."""
    base = draw(st.sampled_from(sorted(EXAMPLES)))
    fact: dict[str, Any] = json.loads(json.dumps(EXAMPLES[base]))
    for _ in range(draw(st.integers(0, 3))):
        where = draw(st.sampled_from(["data", "data", "data", "top", "type", "drop", "customer"]))
        data = fact.get("data") if isinstance(fact.get("data"), dict) else None
        if where == "data" and data is not None:
            name = draw(st.sampled_from([*_field_names(fact.get("type", "")), "colour", "Email"]))
            data[name] = draw(values | addresses | channel_lists)
        elif where == "top":
            name = draw(st.sampled_from([*sorted(catalogue.TOP_LEVEL), "extra"]))
            fact[name] = draw(values)
        elif where == "type":
            fact["type"] = draw(st.sampled_from([*catalogue.TYPES, "call.outgoing", 7]))
        elif where == "customer":
            fact["customer"] = draw(st.dictionaries(
                st.sampled_from(["phone", "email", "twitter", "customer_id", "national_id",
                                 "loyalty_card", "fax"]), st.sampled_from(STRINGS) | scalars, max_size=3))
        elif where == "drop":
            target = data if data and draw(st.booleans()) else fact
            if target:
                target.pop(draw(st.sampled_from(sorted(target))), None)
    text = json.dumps(fact, ensure_ascii=draw(st.booleans()),
                      separators=draw(st.sampled_from([(",", ":"), (", ", ": ")])))
    if draw(st.integers(0, 9)) == 0:  # a key written twice
        text = "{" + draw(st.sampled_from(['"id": "again", ', '"type": "call.inbound", ', '"data": {}, '])) + text[1:]
    if draw(st.integers(0, 9)) == 0 and '"data": {' in text:  # a data field written twice
        text = text.replace('"data": {', '"data": {"subject": "one", "subject": "two", ', 1)
    if draw(st.integers(0, 19)) == 0:  # a quote escaped before a colon inside a value
        text = text.replace('"id": "', '"id": "\\": ', 1)
    return text.encode("utf-8", "surrogatepass") if draw(st.booleans()) else text


def _outcome(judge: Any, raw: bytes | str, limits: Limits) -> tuple[str, Any]:
    try:
        return "fact", orjson.dumps(judge(raw, limits))  # the bytes: key order counts too
    except InvalidFact as refused:
        return "refused", str(refused)


def _fast_fact(raw: bytes | str, limits: Limits) -> dict[str, Any] | None:
    try:
        return schemas.compiled(limits).judge(raw, may_repeat_keys)
    except Exception:
        return None


#: What every door judges with: fact_parser of the ledger's settings (the limits it stands for).
PARSERS = {id(DEFAULT_LIMITS): fact_parser(),
           id(CENTURY): fact_parser("2000-01-01T00:00:00+00:00", "2100-01-01T00:00:00+00:00")}


def _agree(raw: bytes | str, limits: Limits) -> None:
    expected = _outcome(validate_text, raw, limits)
    fast = _fast_fact(raw, limits)
    if fast is not None:
        assert expected == ("fact", orjson.dumps(fast)), raw
    assert _outcome(parse_line, raw, limits) == expected, raw
    door = PARSERS.get(id(limits))
    if door is not None:
        assert _outcome(lambda line, _: door(line), raw, limits) == expected, raw


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw_facts(), st.sampled_from([DEFAULT_LIMITS, NARROW, CENTURY]))
@example(b'{"type":"call.inbound","id":"a","source":"s","customer":{"phone":"1"},"customer":{"phone":"2"},'
         b'"occurred_at":"2026-01-01T10:00:00+01:00"}', DEFAULT_LIMITS)
@example('{"type":"purchase.recorded","id":"p","source":"s","customer":{"customer_id":"C-1"},'
         '"occurred_at":"2026-01-01T10:00:00+01:00","data":{"product":"TV","extra":{"a":{"b":{"c":{}}}}}}',
         NARROW)
def test_the_fast_path_gives_the_python_validators_fact_or_reason(raw: bytes | str, limits: Limits) -> None:
    _agree(raw, limits)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fact_lists(max_size=8))
def test_generated_facts_take_the_fast_path_to_the_same_fact(facts: list[dict[str, Any]]) -> None:
    for fact in facts:
        raw = orjson.dumps(fact)
        assert _fast_fact(raw, DEFAULT_LIMITS) is not None, raw
        _agree(raw, DEFAULT_LIMITS)


def test_every_documented_example_and_demo_fact_takes_the_fast_path() -> None:
    """The fast path is the path: a common fact is never left to the Python validator."""
    facts = [*EXAMPLES.values(), *demo_data.generate(200, seed=3)]
    assert {f["type"] for f in facts} == set(schemas.input_types())
    for fact in facts:
        raw = orjson.dumps(fact)
        fast = _fast_fact(raw, DEFAULT_LIMITS)
        assert fast is not None, raw
        assert orjson.dumps(fast) == orjson.dumps(validate_text(raw, DEFAULT_LIMITS))


def test_data_fields_the_catalogue_does_not_know_are_kept_in_place() -> None:
    """Sources know more than the catalogue: their own fields stay, in the order sent."""
    line = (b'{"type":"purchase.recorded","id":"p-1","source":"shop","customer":{"customer_id":"C-1"},'
            b'"occurred_at":"2026-01-01T10:00:00+01:00","data":{"colour":"black","product":"TV",'
            b'"extra":{"a":[1,{"b":2}]},"serial":null}}')
    fast = _fast_fact(line, DEFAULT_LIMITS)
    assert fast is not None
    assert list(fast["data"].items()) == [("colour", "black"), ("product", "TV"),
                                         ("extra", {"a": [1, {"b": 2}]}), ("warranty_months", 24)]
    assert orjson.dumps(fast) == orjson.dumps(validate_text(line, DEFAULT_LIMITS))
    deep = line.replace(b'{"b":2}', b'{"b":{"c":{"d":{"e":{}}}}}')
    assert _fast_fact(deep, NARROW) is None  # beyond the narrow depth: the validator says why
    with pytest.raises(InvalidFact, match=r"data\.extra\.a\[1\]: nested deeper than 3 levels"):
        parse_line(deep, NARROW)


def test_a_refused_line_keeps_its_reason() -> None:
    """What the fast path refuses, the Python validator explains (its reasons, unchanged)."""
    line = orjson.dumps({**EXAMPLES["call.outbound"], "data": {"purpose": "spam"}})
    with pytest.raises(InvalidFact, match=r"data\.purpose: 'spam' is not one of commercial, service"):
        parse_line(line)
    dup = (b'{"type":"call.inbound","id":"a","id":"b","source":"s","customer":{"phone":"+34600000001"},'
           b'"occurred_at":"2026-01-01T10:00:00+01:00"}')
    with pytest.raises(InvalidFact, match="id: the key appears more than once"):
        parse_line(dup)


def test_the_configured_range_holds_on_the_fast_path() -> None:
    parse = fact_parser("2000-01-01T00:00:00+00:00", "2100-01-01T00:00:00+00:00")
    early = orjson.dumps({**EXAMPLES["call.inbound"], "occurred_at": "1999-12-31T10:00:00+00:00"})
    with pytest.raises(InvalidFact, match="is before 2000-01-01T00:00:00"):
        parse(early)
    born = orjson.dumps({**EXAMPLES["customer.registered"],
                         "data": {**EXAMPLES["customer.registered"]["data"], "birthday": "1980-05-17"}})
    with pytest.raises(InvalidFact, match=r"data\.birthday: 1980-05-17 is before 2000-01-01"):
        parse(born)


@given(st.text(max_size=6) | st.sampled_from(STRINGS))
def test_the_published_name_pattern_is_the_validators_rule(text: str) -> None:
    """``id`` and ``source`` in the schema: printable and not blank, as the validator says."""
    try:
        accepted = bool(text.strip()) and check_name(text, "id") == text
    except InvalidFact:
        accepted = False
    pattern = schemas.PRINTABLE_NOT_BLANK.replace("$", r"\Z")  # JSON Schema's $ ends the text
    within = len(text) <= DEFAULT_LIMITS.max_name  # the schema's maxLength
    assert (re.match(pattern, text) is not None and within) == accepted


offsets = st.integers(-19 * 60, 19 * 60).map(lambda m: timezone(timedelta(minutes=m)))


@settings(max_examples=400)
@given(st.datetimes(datetime(1, 1, 2), datetime(9999, 12, 30)), offsets,
       st.sampled_from([DEFAULT_LIMITS, CENTURY]), st.sampled_from(["seconds", "auto", "minutes"]))
@example(datetime(1901, 12, 31, 23, 0), timezone(timedelta(hours=-18)), DEFAULT_LIMITS, "seconds")
@example(datetime(2198, 1, 1, 0, 0), timezone(timedelta(hours=18)), DEFAULT_LIMITS, "seconds")
@example(datetime(2002, 1, 1, 0, 0), timezone(timedelta(hours=18)), CENTURY, "seconds")
def test_an_instant_is_normalised_as_the_validator_does(moment: datetime, zone: timezone, limits: Limits,
                                                         spec: str) -> None:
    """Instants near every bound of the range and of the offsets: kept, rewritten or refused alike."""
    text = moment.replace(tzinfo=zone).isoformat(timespec=spec)
    try:
        expected: str | None = catalogue.parse_instant(text, "occurred_at", limits).isoformat()
    except InvalidFact:
        expected = None
    try:
        got: str | None = schemas.compiled(limits).instant(text)
    except (InvalidFact, ValueError):
        got = None
    assert got == expected, text


def test_an_instant_in_its_normal_form_is_kept_as_written() -> None:
    c = schemas.compiled(DEFAULT_LIMITS)
    for text in ("2026-01-01T10:00:00+01:00", "2026-01-01T10:00:00-00:00", "2026-01-01T10:00:00Z",
                 "2026-01-01T10:00:00.250000+01:00", "1901-06-01T00:00:00+00:00"):
        assert c.instant(text) == datetime.fromisoformat(text).isoformat()
    assert datetime.fromisoformat(c.instant("2026-01-01T10:00:00Z")).tzinfo == UTC
