"""The contract's limits: whatever is accepted, every reader can read; whatever is not, is refused
with a reason (never another exception)."""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from consumers import jsonl_ingest
from consumers.jsonl_ingest import (
    OverlongLine,
    may_repeat_keys,
    parse_line,
    read_lines,
    repeated_key,
    split_lines,
)
from domain import catalogue
from domain.errors import InvalidFact
from domain.limits import DEFAULT_LIMITS, JSON_SAFE_INTEGER, Limits, check_tree, limits_from
from ledger.writer import event_id
from projections.cases import due_instant
from projections.warranty import warranty_ends
from tests.ledgers import open_journey

BASE: dict[str, Any] = {"type": "call.inbound", "id": "c-1", "source": "pbx",
                        "customer": {"customer_id": "C-1"},
                        "occurred_at": "2026-03-01T10:00:00+01:00", "data": {}}

offsets = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))
instants = st.builds(lambda moment, zone: moment.replace(tzinfo=zone),
                     st.datetimes(datetime(1, 1, 2), datetime(9999, 12, 30)), offsets)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=40)


def accepted(raw: dict[str, Any]) -> dict[str, Any] | None:
    try:  # json writes integers of any size, as a sender may
        return parse_line(json.dumps(raw, ensure_ascii=False).encode("utf-8", "surrogatepass"),
                          DEFAULT_LIMITS)
    except InvalidFact:
        return None


# ------------------------------------------------------------------------ instants


@given(instants)
@example(datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))))
@example(datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5))))
def test_an_accepted_instant_converts_to_utc_inside_the_range(moment: datetime) -> None:
    fact = accepted({**BASE, "occurred_at": moment.isoformat()})
    if fact is None:
        return
    utc = datetime.fromisoformat(fact["occurred_at"]).astimezone(UTC)
    assert DEFAULT_LIMITS.earliest <= utc <= DEFAULT_LIMITS.latest


@given(instants)
def test_an_instant_is_accepted_exactly_when_within_the_range_and_offset(moment: datetime) -> None:
    offset = moment.utcoffset()
    assert offset is not None
    inside = (abs(offset) <= timedelta(hours=18) and DEFAULT_LIMITS.earliest <= moment
              <= DEFAULT_LIMITS.latest)
    assert (accepted({**BASE, "occurred_at": moment.isoformat()}) is not None) == inside


@given(instants, st.integers(0, 10**15))
def test_an_accepted_purchase_has_a_warranty_end_every_reader_can_compute(
        moment: datetime, months: int) -> None:
    fact = accepted({**BASE, "type": "purchase.recorded", "occurred_at": moment.isoformat(),
                     "data": {"product": "TV", "warranty_months": months}})
    if fact is None:
        return
    assert months <= DEFAULT_LIMITS.max_warranty_months
    assert date.fromisoformat(warranty_ends(fact)) >= datetime.fromisoformat(fact["occurred_at"]).date()


@given(st.dates(date(1, 1, 1), date(9999, 12, 31)), instants)
def test_an_accepted_promise_has_a_due_instant_every_reader_can_compute(
        due: date, made: datetime) -> None:
    fact = accepted({**BASE, "type": "promise.made", "occurred_at": made.isoformat(),
                     "data": {"promise_id": "P-1", "what": "call back", "due_by": due.isoformat()}})
    if fact is None:
        return
    datetime.fromisoformat(due_instant(fact["data"]["due_by"], fact["occurred_at"])).astimezone(UTC)


def test_dates_outside_the_range_are_refused_with_the_bound() -> None:
    with pytest.raises(InvalidFact, match=r"data.birthday: 1899-12-31 is before 1900-01-01"):
        catalogue.validate({**BASE, "type": "customer.registered",
                            "data": {"name": "A", "birthday": "1899-12-31"}})
    assert catalogue.validate({**BASE, "type": "customer.registered",
                               "data": {"name": "A", "birthday": "1900-01-01"}})


# ------------------------------------------------------------------------ values


@settings(max_examples=200)
@given(json_values)
def test_any_accepted_fact_round_trips_through_the_stores_encoder(data: Any) -> None:
    fact = accepted({**BASE, "data": {"extra": data}})
    if fact is None:
        return
    assert orjson.loads(orjson.dumps(fact)) == fact


@given(st.integers(-(2**80), 2**80))
@example(JSON_SAFE_INTEGER)
@example(JSON_SAFE_INTEGER + 1)
@example(2**64)
def test_integers_are_accepted_exactly_within_the_json_safe_range(number: int) -> None:
    line = orjson.dumps({**BASE, "data": {"n": 0}}).replace(b'"n":0', b'"n":%d' % number)
    try:
        parse_line(line, DEFAULT_LIMITS)
    except InvalidFact as error:
        assert abs(number) > JSON_SAFE_INTEGER
        assert "data.n:" in str(error) and "outside" in str(error)
    else:
        assert abs(number) <= JSON_SAFE_INTEGER


@pytest.mark.parametrize("depth", [1, 15, 16, 17, 200, 1000])
def test_nesting_inside_data_is_bounded(depth: int) -> None:
    value: Any = 1
    for _ in range(depth - 1):
        value = [value]
    raw = {**BASE, "data": {"deep": value}}  # data is level 1, "deep" and its lists the others
    if depth <= DEFAULT_LIMITS.max_depth:
        assert check_tree(raw) == 6 + 1 + 1  # the envelope's, customer's and data's keys
    else:
        with pytest.raises(InvalidFact, match=r"^data\.deep(\[0\])*: nested deeper than 16 levels"):
            check_tree(raw)


def test_sizes_are_bounded_and_named() -> None:
    small = Limits(max_string=10, max_keys=2, max_items=3, max_name=5)
    with pytest.raises(InvalidFact, match=r"^data\.a\[1\]: a string of 11 characters; at most 10$"):
        check_tree({"data": {"a": ["x", "y" * 11]}}, small)
    with pytest.raises(InvalidFact, match=r"^data: an object with 3 keys; at most 2$"):
        check_tree({"data": {"a": 1, "b": 2, "c": 3}}, small)
    with pytest.raises(InvalidFact, match=r"^data\.a: a list of 4 items; at most 3$"):
        check_tree({"data": {"a": [1, 2, 3, 4]}}, small)
    with pytest.raises(InvalidFact, match=r"^data: a key of 6 characters"):
        check_tree({"data": {"abcdef": 1}}, small)


@settings(max_examples=300)
@given(st.binary(max_size=300) | st.builds(lambda cut, junk: orjson.dumps(BASE)[:cut] + junk,
                                           st.integers(0, 200), st.binary(max_size=20)))
def test_no_line_raises_anything_but_invalid_fact(raw: bytes) -> None:
    try:
        parse_line(raw, DEFAULT_LIMITS)
    except InvalidFact as error:
        assert str(error)


# ------------------------------------------------------------------------ idempotency keys

names = st.text(st.sampled_from("ab\x1f:é\x00\x85 "), min_size=1, max_size=4)


@given(names, names, names, names)
@example("a", "b\x1fc", "a\x1fb", "c")
def test_accepted_source_and_id_pairs_never_share_an_event_id(
        source_a: str, id_a: str, source_b: str, id_b: str) -> None:
    first = accepted({**BASE, "source": source_a, "id": id_a})
    second = accepted({**BASE, "source": source_b, "id": id_b})
    if first is None or second is None:
        assert "\x1f" in source_a + id_a + source_b + id_b or not (
            source_a + id_a + source_b + id_b).isprintable() or not all(
            x.strip() for x in (source_a, id_a, source_b, id_b))
        return
    if (source_a, id_a) != (source_b, id_b):
        assert event_id(source_a, id_a) != event_id(source_b, id_b)


def test_control_characters_in_source_and_id_are_refused() -> None:
    with pytest.raises(InvalidFact, match=r"^id: contains the control character U\+001F at position 1"):
        catalogue.validate({**BASE, "source": "a", "id": "b\x1fc"})
    with pytest.raises(InvalidFact, match=r"^source: contains the control character U\+0085"):
        catalogue.validate({**BASE, "source": "a\x85b"})
    assert catalogue.validate({**BASE, "source": "tienda-Gran Vía", "id": "ñ-1"})


# ------------------------------------------------------------------------ repeated keys

keys = st.sampled_from(["a", "b", "note", "a:b", ":", "x\"y", "é"])


@settings(max_examples=300)
@given(st.lists(st.tuples(keys, st.sampled_from(['1', '":"', '"x"', '{"a":1}', '[]'])), max_size=6),
       st.sampled_from([":", " : ", ": ", "\t:"]), st.booleans())
def test_a_key_written_twice_in_one_object_is_always_found(
        pairs: list[tuple[str, str]], colon: str, ascii_only: bool) -> None:
    body = ",".join(f"{json.dumps(k, ensure_ascii=ascii_only)}{colon}{v}" for k, v in pairs)
    text = ('{"type":"call.inbound","id":"c","source":"s","customer":{"customer_id":"C-1"},'
            '"occurred_at":"2026-03-01T10:00:00+01:00","data":{' + body + "}}").encode()
    twice = len({k for k, _ in pairs}) != len(pairs)
    parsed = orjson.loads(text)
    if twice:
        assert may_repeat_keys(text, check_tree(parsed))
        assert repeated_key(text) is not None
        with pytest.raises(InvalidFact, match="appears more than once"):
            parse_line(text, DEFAULT_LIMITS)
    else:
        assert repeated_key(text) is None
        parse_line(text, DEFAULT_LIMITS)


# ------------------------------------------------------------------------ reading files


@settings(max_examples=200)
@given(st.lists(st.text(st.characters(blacklist_characters="\r\n"), max_size=12), max_size=8),
       st.lists(st.sampled_from(["\n", "\r\n", "\r"]), min_size=8, max_size=8),
       st.integers(1, 9), st.booleans())
def test_read_lines_splits_at_every_kind_of_line_end_whatever_the_reads(
        lines: list[str], ends: list[str], chunk: int, final_end: bool) -> None:
    text = "".join(line + end for line, end in zip(lines, ends, strict=False))
    if lines and not final_end:
        text = text.removesuffix(ends[len(lines) - 1])
    # A CR ending an empty line then an LF is one CRLF (as every reader of such files sees it).
    assume(text.count("\r\n") == ends[:len(lines)].count("\r\n") - (not final_end and bool(lines)
                                                                   and ends[len(lines) - 1] == "\r\n"))
    original = jsonl_ingest.READ_CHUNK
    jsonl_ingest.READ_CHUNK = chunk
    try:
        got = list(read_lines(io.BytesIO(text.encode())))
    finally:
        jsonl_ingest.READ_CHUNK = original
    expected = [line.encode() for line in lines]
    if expected and not expected[-1] and not final_end:
        expected.pop()  # an empty last line without its end is no line
    assert got == expected


def test_lines_of_a_file_object_are_split_at_a_lone_cr_too() -> None:
    handle = io.BytesIO(b"\xef\xbb\xbfa\rb\r\n\rc\n\r\nd")
    assert list(split_lines(handle)) == [b"\xef\xbb\xbfa", b"b", b"", b"c", b"", b"d"]


def test_read_lines_does_not_hold_an_overlong_line() -> None:
    text = b"short\n" + b"x" * 5000 + b"\r\nnext\r" + b"y" * 3000
    original = jsonl_ingest.READ_CHUNK
    jsonl_ingest.READ_CHUNK = 700
    try:
        got = list(read_lines(io.BytesIO(text), limit=1000))
    finally:
        jsonl_ingest.READ_CHUNK = original
    assert got[0] == b"short" and got[2] == b"next"
    assert got[1] == OverlongLine(b"x" * 1024, 5000)
    assert got[3] == OverlongLine(b"y" * 1024, 3000)


# ------------------------------------------------------------------------ configuration


def test_the_instant_range_can_be_configured() -> None:
    line = orjson.dumps({**BASE, "occurred_at": "2150-06-01T10:00:00+02:00"})
    assert jsonl_ingest.fact_parser()(line)
    with pytest.raises(InvalidFact, match="is after 2100-01-01T00:00:00"):
        jsonl_ingest.fact_parser(latest="2100-01-01T00:00:00Z")(line)


def test_a_configuration_that_cannot_be_read_refuses_every_fact() -> None:
    with pytest.raises(InvalidFact, match="JOURNEY_EARLIEST/JOURNEY_LATEST: earliest: 'last tuesday'"):
        jsonl_ingest.fact_parser(earliest="last tuesday")(orjson.dumps(BASE))


def test_the_file_door_judges_facts_by_the_parser_it_is_given(tmp_path: Path) -> None:
    late = orjson.dumps({**BASE, "id": "c-2150", "occurred_at": "2150-06-01T10:00:00+02:00"})
    journey = open_journey(tmp_path)
    try:
        summary = jsonl_ingest.ingest(journey.ledger, [orjson.dumps(BASE), late],
                                      parse=jsonl_ingest.fact_parser(latest="2100-01-01T00:00:00Z"))
        assert summary.recorded == 1
        assert [r.line for r in summary.rejected] == [2]
        assert "is after 2100-01-01T00:00:00" in summary.rejected[0].reason
        refused = jsonl_ingest.ingest(journey.ledger, [late],
                                      parse=jsonl_ingest.fact_parser(earliest="last tuesday"))
        assert refused.recorded == 0 and "JOURNEY_EARLIEST/JOURNEY_LATEST" in refused.rejected[0].reason
    finally:
        journey.close()


@pytest.mark.parametrize(("earliest", "latest", "problem"), [
    ("2000-01-01", None, "has no UTC offset"),
    ("0001-01-01T00:00:00Z", None, "outside 1000-01-01..9000-01-01"),
    ("2100-01-01T00:00:00Z", "2050-01-01T00:00:00Z", "is not before latest"),
])
def test_limits_from_names_what_is_wrong(earliest: str, latest: str | None, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        limits_from(earliest, latest)
