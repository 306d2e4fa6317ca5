"""A long append judges its lines in a parse process: the summary and the store are exactly what
judging them in the writer's process gives, whatever the lines are."""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumers import parse_pool
from consumers.jsonl_ingest import (
    IngestSummary,
    Line,
    OverlongLine,
    RefusedFact,
    fact_parser,
    ingest,
)
from consumers.parse_pool import ParseStageFailed
from journey.bootstrap import Journey
from ledger.application import decode_notification
from tests.ledgers import open_journey

RECORDED_AT = re.compile(r"recorded at \S+\)")
WHEN = "2026-03-01T10:00:00+01:00"


def fact(fid: str, kind: str = "call.inbound", *, at: str = WHEN, customer: Any = None,
         data: Any = None, source: str = "callcenter") -> dict[str, Any]:
    return {"type": kind, "id": fid, "source": source,
            "customer": {"customer_id": "C-1"} if customer is None else customer,
            "occurred_at": at, "data": {"reason": "billing"} if data is None else data}


def line(value: dict[str, Any]) -> bytes:
    return orjson.dumps(value)


def registration(n: int) -> bytes:
    return line(fact(f"reg-{n}", "customer.registered", customer={"customer_id": f"C-{n}"},
                     data={"name": f"Person {n}", "phone": f"+3460000{n:04d}", "email": f"p{n}@example.es"}))


#: Kinds of line, by name; ``{n}`` makes each use its own fact unless the kind is about repeating.
KINDS: dict[str, Any] = {
    "call": lambda n: line(fact(f"call-{n}", data={"reason": f"question {n}"})),
    "call by phone": lambda n: line(fact(f"phone-{n}", customer={"phone": "600 000 001"})),
    "registration": registration,
    "same call again": lambda n: line(fact("call-same", data={"reason": "the same"})),
    "same key, other content": lambda n: line(fact("call-same", data={"reason": f"other {n}"})),
    "as text": lambda n: line(fact(f"text-{n}")).decode(),
    "crlf": lambda n: line(fact(f"crlf-{n}")) + b"\r\n",
    "cr inside": lambda n: line(fact(f"cr-a-{n}")) + b"\r" + line(fact(f"cr-b-{n}")),
    "bom": lambda n: b"\xef\xbb\xbf" + line(fact(f"bom-{n}")),
    "blank": lambda n: b"",
    "spaces": lambda n: b"   \t ",
    "not json": lambda n: b'{"type": "call.inbound", "id": ',
    "not utf-8": lambda n: line(fact(f"u-{n}", data={"reason": "caf"})).replace(b"caf", b"caf\xe9"),
    "repeated key": lambda n: line(fact(f"r-{n}")).replace(
        b'"type":"call.inbound"', b'"type":"call.inbound","type":"call.outbound"'),
    "repeated key with spaces": lambda n: line(fact(f"rs-{n}", data={"__": 0})).replace(
        b'{"__":0}', b'{"reason" : "a", "reason" : "b"}'),
    "bad date": lambda n: line(fact(f"d-{n}", at="2026-02-30T10:00:00+01:00")),
    "year 1": lambda n: line(fact(f"y-{n}", at="0001-01-01T00:00:00+01:00")),
    "bad phone": lambda n: line(fact(f"p-{n}", customer={"phone": "not a phone"})),
    "long phone": lambda n: line(fact(f"lp-{n}", customer={"phone": "6" * 10_000})),
    "unknown type": lambda n: line(fact(f"t-{n}", "call.sideways")),
    "integer beyond 2^53": lambda n: line(fact(f"i-{n}", data={"__": 0})).replace(
        b'{"__":0}', b'{"amount":9007199254740993}'),
    "too long": lambda n: line(fact(f"big-{n}", data={"reason": "x" * 300_000})),
    "cut off": lambda n: OverlongLine(b'{"type":"call.inbound","id":"cut', 9_000_000),
    "refused": lambda n: RefusedFact(f"cannot be written as JSON (number {n})"),
}


def run(home: Path, lines: Sequence[Line | OverlongLine | RefusedFact], batch: int, workers: int,
        **kwargs: Any) -> tuple[IngestSummary, list[dict[str, Any]]]:
    journey = open_journey(home)
    try:
        summary = ingest(journey.ledger, list(lines), batch_size=batch, workers=workers, **kwargs)
        return summary, stored(journey)
    finally:
        journey.close()


def stored(journey: Journey) -> list[dict[str, Any]]:
    """The store's facts in order, without the ids the writer draws at random."""
    recorder = journey.app.recorder
    head = recorder.max_notification_id() or 0
    return [{k: v for k, v in decode_notification(journey.app, n).fact.items() if k != "event_id"}
            for n in recorder.select_notifications(1, head + 1)] if head else []


def same(summary: IngestSummary) -> tuple[Any, ...]:
    """The summary but its time, and the instant a conflicting fact was recorded at (a
    conflict's reason names it: two ledgers record at two moments)."""
    return (summary.lines, summary.recorded, summary.duplicates, summary.derived,
            [(r.line, RECORDED_AT.sub("recorded at ...", r.reason), r.text) for r in summary.rejected])


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of three lines, so a short input crosses many of them and the lines in flight."""
    monkeypatch.setattr(parse_pool, "CHUNK_LINES", 3)


@pytest.mark.usefixtures("small_chunks")
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kinds=st.lists(st.sampled_from(sorted(KINDS)), min_size=1, max_size=60),
       batch=st.integers(1, 8))
def test_a_parse_process_gives_the_summary_and_the_store_of_judging_here(
        tmp_path_factory: pytest.TempPathFactory, kinds: list[str], batch: int) -> None:
    lines = [KINDS[kind](n) for n, kind in enumerate(kinds)]
    here = run(tmp_path_factory.mktemp("here"), lines, batch, workers=0)
    there = run(tmp_path_factory.mktemp("there"), lines, batch, workers=1)
    assert same(there[0]) == same(here[0])
    assert there[1] == here[1]


@pytest.mark.usefixtures("small_chunks")
def test_every_kind_of_line_in_turn_with_repeats_and_progress(tmp_path: Path) -> None:
    """Each kind of hostile line between good ones, twice over (the second time the good ones
    are duplicates), the progress seen after each batch the same both ways."""
    kinds = [kind for name in sorted(KINDS) for kind in ("call", name)]
    lines = [KINDS[kind](n) for n, kind in enumerate(kinds)] * 2
    seen: dict[str, list[tuple[Any, ...]]] = {"here": [], "there": []}
    results = {}
    for way, workers in (("here", 0), ("there", 1)):
        results[way] = run(tmp_path / way, lines, 5, workers,
                           on_progress=lambda s, way=way: seen[way].append(same(s)))
    assert same(results["there"][0]) == same(results["here"][0])
    assert results["there"][1] == results["here"][1]
    assert seen["there"] == seen["here"] and len(seen["here"]) > 5
    summary = results["here"][0]
    assert summary.duplicates > 0 and summary.recorded > 0
    reasons = " ".join(r.reason for r in summary.rejected)
    for words in ("not valid json", "not utf-8", "more than once", "bytes; a fact is at most"):
        assert words in reasons.lower()


@pytest.mark.usefixtures("small_chunks")
def test_the_parse_process_judges_by_the_configured_range(tmp_path: Path) -> None:
    lines = [line(fact(f"c-{n}", at=f"20{10 + n}-03-01T10:00:00+00:00")) for n in range(12)]
    parse = fact_parser("2015-01-01T00:00:00+00:00", "2020-01-01T00:00:00+00:00")
    here = run(tmp_path / "here", lines, 4, 0, parse=parse)
    there = run(tmp_path / "there", lines, 4, 1, parse=parse)
    assert same(there[0]) == same(here[0])
    assert [r.line for r in there[0].rejected] == [1, 2, 3, 4, 5, 11, 12]
    assert "is before 2015-01-01" in there[0].rejected[0].reason


def test_another_parser_cannot_be_sent_but_is_used_here(tmp_path: Path) -> None:
    def strict(raw: Line) -> dict[str, Any]:
        return fact_parser()(raw)

    journey = open_journey(tmp_path)
    try:
        with pytest.raises(ValueError, match="fact_parser"):
            ingest(journey.ledger, [line(fact("a"))], parse=strict, workers=1)
        assert ingest(journey.ledger, [line(fact("a"))], parse=strict).recorded == 1
    finally:
        journey.close()


def test_a_long_input_starts_a_parse_process_and_a_short_one_does_not(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[int] = []
    real = parse_pool.ParseProcess.__init__

    def counted(self: parse_pool.ParseProcess, parse: Any) -> None:
        real(self, parse)
        started.append(self.process.pid)

    monkeypatch.setattr(parse_pool.ParseProcess, "__init__", counted)
    monkeypatch.setattr(parse_pool, "FROM_LINES", 10)
    monkeypatch.setattr(parse_pool, "CHUNK_LINES", 4)
    monkeypatch.setattr(parse_pool, "cores", lambda: 2)
    journey = open_journey(tmp_path)
    try:
        short = ingest(journey.ledger, [line(fact(f"s-{n}")) for n in range(10)], batch_size=5)
        assert (short.recorded, started) == (10, [])
        long = ingest(journey.ledger, [line(fact(f"l-{n}")) for n in range(40)], batch_size=5)
        assert long.recorded == 40 and len(started) == 1
        monkeypatch.setattr(parse_pool, "cores", lambda: 1)
        alone = ingest(journey.ledger, [line(fact(f"o-{n}")) for n in range(40)], batch_size=5)
        assert alone.recorded == 40 and len(started) == 1
    finally:
        journey.close()


def kill_parse_process() -> None:
    """Kill this process's parse process (its only child running consumers.parse_pool)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if stat[1] == str(os.getpid()) and b"consumers.parse_pool" in command:
            os.kill(int(entry.name), signal.SIGKILL)


@pytest.mark.usefixtures("small_chunks")
def test_a_parse_process_that_dies_stops_the_append_and_the_rerun_records_the_rest(tmp_path: Path) -> None:
    good = [line(fact(f"k-{n}")) for n in range(200)]

    def lines() -> Iterator[Line]:
        for n, text in enumerate(good):
            if n == 120:
                kill_parse_process()
            yield text

    journey = open_journey(tmp_path)
    try:
        with pytest.raises(ParseStageFailed, match=r"killed by SIGKILL.*append the same input again"):
            ingest(journey.ledger, lines(), batch_size=10, workers=1)
        kept = len(stored(journey))
        assert 0 < kept < len(good) and kept % 10 == 0  # whole batches
        again = ingest(journey.ledger, good, batch_size=10, workers=1)
        assert (again.duplicates, again.recorded) == (kept, len(good) - kept)
        assert len(stored(journey)) == len(good)
    finally:
        journey.close()


def test_when_no_parse_process_can_start_the_lines_are_judged_here(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr("sys.executable", str(tmp_path / "no-python-here"))
    lines = [line(fact(f"n-{n}")) for n in range(30)] + [b"not json"]
    summary, facts = run(tmp_path / "ledger", lines, 10, 1)
    assert (summary.recorded, [r.line for r in summary.rejected]) == (30, [31])
    assert len(facts) == 30
    assert "could not start a parse process" in caplog.text
