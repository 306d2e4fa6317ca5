"""Hostile input at every door: each kind of bad fact is refused with its reason, its neighbours
are recorded, and every reader still answers afterwards.

One table of hostile lines drives ``journey append`` (a real process on a file mixing them
with good lines), ``POST /api/facts`` (the app in-process, a real ledger) and, for a subset,
the Kafka ingest consumer against a real broker (the dead-letter topic and its reasons).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from journey.api.app import create_app
from journey.config import Settings
from tests.api.conftest import auth, make_tokens
from tests.harness.conftest_kafka import KafkaEndpoint

CUSTOMER = {"customer_id": "C-H1"}
WHEN = "2026-03-01T10:00:00+01:00"


def fact(fid: str, kind: str = "call.inbound", *, at: str = WHEN, data: Any = None,
         source: str = "callcenter", **top: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"type": kind, "id": fid, "source": source, "customer": CUSTOMER,
                            "occurred_at": at, "data": {"reason": "billing"} if data is None else data}
    return {**body, **top}


def line(value: dict[str, Any]) -> bytes:
    return orjson.dumps(value)


def nested(levels: int) -> bytes:
    """A call whose data holds a list nested ``levels`` deep (built as text: orjson would refuse it)."""
    head = line(fact("deep", data={"reason": "x"}))[:-2]  # cut the closing "}}" of data and fact
    return head + b',"extra":' + b"[" * levels + b"]" * levels + b"}}"


def spliced(fid: str, data_text: bytes) -> bytes:
    """A call whose data is ``data_text`` as written (repeated keys, big numbers, NaN...)."""
    return line(fact(fid, data={"__data__": 0})).replace(b'{"__data__":0}', data_text)


@dataclass(frozen=True)
class Hostile:
    name: str
    text: bytes
    #: What the reason says (lower case substring); None: the line is accepted (an edge value).
    reason: str | None
    #: What POST /api/facts answers for it in a list with good facts: 422 for that fact,
    #: 400 when the body is no longer JSON, 413 when the body is too large.
    api: int = 422
    #: Sent through Kafka ingest too.
    kafka: bool = False


HUGE_FACT = line(fact("huge", data={"reason": "x" * (40 * 1024 * 1024)}))

HOSTILE = [
    Hostile("year 1 with a positive offset", line(fact("t1", at="0001-01-01T00:00:00+01:00")),
            "occurred_at: 0001-01-01t00:00:00+01:00 is before 1900-01-01", kafka=True),
    Hostile("year 9999 with a negative offset", line(fact("t2", at="9999-12-31T23:00:00-05:00")),
            "occurred_at: 9999-12-31t23:00:00-05:00 is after 2200-01-01", kafka=True),
    Hostile("the first instant, one hour east", line(fact("t3", at="1900-01-01T00:00:00+01:00")),
            "is before 1900-01-01"),
    Hostile("the last instant, one minute west", line(fact("t4", at="2200-01-01T00:00:00-00:01")),
            "is after 2200-01-01"),
    Hostile("an offset of almost a day", line(fact("t5", at="2026-03-01T10:00:00+23:59")),
            "utc offset +23:59 is beyond ±18:00"),
    Hostile("an offset with seconds", line(fact("t6", at="2026-03-01T10:00:00+01:00:30")),
            "not a whole number of minutes"),
    Hostile("the first instant accepted", line(fact("e1", at="1900-01-01T00:00:00+00:00")), None),
    Hostile("the last instant with the longest warranty",
            line(fact("e2", "purchase.recorded", at="2200-01-01T00:00:00Z",
                      data={"product": "Router", "serial": "EDGE-1", "warranty_months": 1200})), None),
    Hostile("a warranty that overflows the calendar",
            line(fact("w1", "purchase.recorded", data={"product": "Router", "warranty_months": 10**12})),
            "data.warranty_months: 1,000,000,000,000 is more than 1,200", kafka=True),
    Hostile("a call of eleven days", line(fact("d1", data={"duration_s": 10**6})),
            "data.duration_s: 1,000,000 is more than 86,400"),
    Hostile("a promise due in year 9999",
            line(fact("p1", "promise.made", data={"promise_id": "P-9", "what": "call back",
                                                  "due_by": "9999-12-31"})),
            "data.due_by: 9999-12-31 is after 2200-01-01"),
    Hostile("a birthday in year 1",
            line(fact("b1", "customer.registered", customer={"customer_id": "C-H2"},
                      data={"name": "Old", "birthday": "0001-01-01"})),
            "data.birthday: 0001-01-01 is before 1900-01-01"),
    Hostile("a time zone that is a directory",
            line(fact("z1", "customer.registered", customer={"customer_id": "C-H3"},
                      data={"name": "Zed", "timezone": "Europe"})),
            "data.timezone: 'europe' is not an iana time zone"),
    Hostile("an identity kind that is a list",
            line(fact("ik", "identity.linked", data={"kind": ["phone"], "value": "+34600000009"})),
            "data.kind: list ['phone'] is not one of"),
    Hostile("data nested 300 levels deep", nested(300), "nested deeper than 16 levels", kafka=True),
    Hostile("data nested beyond the parser", nested(2000), "not valid json", api=400),
    Hostile("a 40 MB fact", HUGE_FACT, "bytes; a fact is at most 262,144 bytes", api=413, kafka=False),
    Hostile("a 100 KB string", line(fact("s1", data={"reason": "y" * 100_000})),
            "data.reason: a string of 100,000 characters; at most 65,536", kafka=True),
    Hostile("a list of 20,000 items", line(fact("l1", data={"tags": list(range(20_000))})),
            "data.tags: a list of 20,000 items"),
    Hostile("a 1,000-character key", line(fact("k1", data={"k" * 1000: 1})),
            "data: a key of 1,000 characters"),
    Hostile("a control character in id", line(fact("b\x1fc", source="a")),
            "id: contains the control character u+001f", kafka=True),
    Hostile("a control character in source", line(fact("c", source="a\x1fb")),
            "source: contains the control character u+001f"),
    Hostile("a newline in id", line(fact("x\ny")), "id: contains the control character u+000a"),
    Hostile("a 600-character id", line(fact("i" * 600)), "id: 600 characters; at most 512"),
    Hostile("a 10,000-character phone", line(fact("ph", customer={"phone": "6" * 10_000})),
            "customer.phone: 10,000 characters; at most 512"),
    Hostile("a 10,000-character identity linked",
            line(fact("il", "identity.linked", data={"kind": "loyalty_card", "value": "L" * 10_000})),
            "data.value: 10,000 characters; at most 512"),
    Hostile("a repeated top-level key",
            line(fact("r1")).replace(b'"type":"call.inbound"',
                                     b'"type":"call.inbound","type":"call.outbound"'),
            "type: the key appears more than once", kafka=True),
    Hostile("a repeated key inside data", spliced("r2", b'{"reason":"a","reason":"b"}'),
            "reason: the key appears more than once"),
    Hostile("a repeated key written with spaces", spliced("r3", b'{"reason" : "a", "reason" : "b"}'),
            "reason: the key appears more than once"),
    Hostile("an integer beyond 64 bits", spliced("n1", b'{"amount":18446744073709551616}'),
            "data.amount: 1.8446744073709552e+19 is outside ±9,007,199,254,740,991", kafka=True),
    Hostile("an integer beyond 2^53", spliced("n2", b'{"amount":9007199254740993}'),
            "data.amount: 9007199254740993 is outside"),
    Hostile("a negative integer beyond 2^53", spliced("n3", b'{"amount":-9007199254740993}'),
            "data.amount: -9007199254740993 is outside"),
    Hostile("NaN", spliced("n4", b'{"amount":NaN}'), "not valid json", api=400),
    Hostile("Infinity", spliced("n5", b'{"amount":Infinity}'), "not valid json", api=400),
    Hostile("a number that overflows a double", spliced("n6", b'{"amount":1e400}'),
            "not valid json", api=400),
    Hostile("invalid UTF-8", line(fact("u1", data={"reason": "caf"})).replace(b"caf", b"caf\xe9"),
            "not utf-8 text (byte 0xe9", api=400, kafka=True),
    Hostile("a lone surrogate", line(fact("u2")).replace(b'"billing"', b'"\\ud800"'),
            "not valid json", api=400),
]
#: The pair whose idempotency keys were equal ("a" + U+001F + "b" + U+001F + "c"), and the
#: honest fact next to them.
COLLISION_NEIGHBOUR = line(fact("b", source="a"))


def good(n: int) -> bytes:
    return line(fact(f"good-{n}", data={"reason": f"question {n}"}))


REGISTRATION = line(fact("reg", "customer.registered", data={"name": "Hana", "birthday": "1900-01-01"}))


def mixed_file() -> tuple[bytes, dict[int, Hostile], set[int]]:
    """The file's bytes (a BOM, then good and hostile lines in turns), the hostile lines by line
    number and the numbers of the good lines."""
    lines = [REGISTRATION, COLLISION_NEIGHBOUR]
    hostile: dict[int, Hostile] = {}
    for i, case in enumerate(HOSTILE):
        lines.append(good(i))
        lines.append(case.text)
        hostile[len(lines)] = case
    lines.append(good(len(HOSTILE)))
    goods = set(range(1, len(lines) + 1)) - set(hostile)
    return b"\xef\xbb\xbf" + b"\n".join(lines) + b"\n", hostile, goods


def journey(home: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "journey.cli", "--data-dir", str(home), *args],
                          capture_output=True, text=True, timeout=timeout)


def rejects_of(path: Path) -> dict[int, dict[str, Any]]:
    return {r["line"]: r for r in map(orjson.loads, path.read_bytes().splitlines())}


# ------------------------------------------------------------------------ journey append


@dataclass
class AppendRun:
    home: Path
    code: int
    out: str
    err: str
    rejects: dict[int, dict[str, Any]]
    hostile: dict[int, Hostile]
    goods: set[int]


@pytest.fixture(scope="module")
def appended(tmp_path_factory: pytest.TempPathFactory) -> AppendRun:
    tmp = tmp_path_factory.mktemp("hostile")
    text, hostile, goods = mixed_file()
    source = tmp / "hostile.jsonl"
    source.write_bytes(text)
    home = tmp / "ledger"
    done = journey(home, "append", str(source), "--rejects", str(tmp / "rejects.jsonl"), "--json")
    return AppendRun(home, done.returncode, done.stdout, done.stderr, rejects_of(tmp / "rejects.jsonl"),
                     hostile, goods)


def test_append_records_exactly_the_good_and_edge_lines_and_exits_1(appended: AppendRun) -> None:
    assert appended.code == 1, appended.err
    assert "Traceback" not in appended.err
    summary = orjson.loads(appended.out)
    accepted = {n for n, case in appended.hostile.items() if case.reason is None}
    rejected = set(appended.hostile) - accepted
    assert set(appended.rejects) == rejected
    assert summary["recorded"] == len(appended.goods) + len(accepted)
    assert summary["rejected"] == len(rejected)


@pytest.mark.parametrize("case", [c for c in HOSTILE if c.reason is not None], ids=lambda c: c.name)
def test_append_rejects_each_hostile_line_with_its_reason(appended: AppendRun, case: Hostile) -> None:
    [number] = [n for n, c in appended.hostile.items() if c is case]
    reject = appended.rejects[number]
    assert case.reason is not None and case.reason in reject["reason"].lower(), reject["reason"]
    assert "Traceback" not in reject["reason"]
    if len(case.text) > 256 * 1024:  # kept cut, with a note saying so
        assert len(reject["text"]) < 2048 and "cut: the line has" in reject["text"]
    elif b"\xe9" not in case.text:
        assert reject["text"].encode() == case.text


def test_readers_answer_after_the_hostile_file(appended: AppendRun) -> None:
    status = journey(appended.home, "status", "--json")
    assert status.returncode == 0, status.stderr
    counts = orjson.loads(status.stdout)
    assert counts["projection_position"] == counts["store_position"]

    projected = journey(appended.home, "project")
    assert projected.returncode == 0, projected.stderr

    shown = journey(appended.home, "customer", "C-H1", "--json")
    assert shown.returncode == 0, shown.stderr
    view = orjson.loads(shown.stdout)
    ids = {e["source_id"] for e in view["timeline"]}
    assert {f"good-{i}" for i in range(len(HOSTILE) + 1)} | {"reg", "b", "e1", "e2"} == ids
    assert view["birthday"] == "1900-01-01"
    [router] = [p for p in view["products"] if p["serial"] == "EDGE-1"]
    assert router["warranty_ends"] == "2300-01-01"

    warranty = journey(appended.home, "warranty", "EDGE-1", "--json")
    assert warranty.returncode == 0, warranty.stderr


@pytest.mark.parametrize("ending", [b"\r\n", b"\r"], ids=["CRLF", "CR only"])
def test_spreadsheet_line_ends_are_read_as_lines(tmp_path: Path, ending: bytes) -> None:
    lines = [REGISTRATION, good(1), line(fact("bad", at="0001-01-01T00:00:00+01:00")), good(2), b"", good(3)]
    source = tmp_path / "export.jsonl"
    source.write_bytes(b"\xef\xbb\xbf" + ending.join(lines) + ending)
    home = tmp_path / "ledger"
    done = journey(home, "append", str(source), "--rejects", str(tmp_path / "r.jsonl"), "--json")
    assert done.returncode == 1, done.stderr
    assert orjson.loads(done.stdout)["recorded"] == 4
    [(number, reject)] = rejects_of(tmp_path / "r.jsonl").items()
    assert number == 3 and "is before 1900-01-01" in reject["reason"]
    shown = journey(home, "customer", "C-H1", "--json")
    assert {e["source_id"] for e in orjson.loads(shown.stdout)["timeline"]} == {"reg", "good-1", "good-2", "good-3"}


def test_dlq_replay_of_a_corrected_file_judges_it_like_append(tmp_path: Path) -> None:
    """Lines that are still hostile are not sent; a file of nothing but those needs no broker."""
    from consumers import dlq

    source = tmp_path / "corrected.jsonl"
    source.write_bytes(b"\xef\xbb\xbf" + b"\r".join([HOSTILE[0].text, b"", HUGE_FACT, nested(300)]) + b"\r")
    with source.open("rb") as handle:
        result = dlq.replay_lines("127.0.0.1:1", "journey.touchpoints", handle, origin=source.name)
    assert result.sent == 0
    assert [n for n, _ in result.invalid] == [1, 3, 4]
    assert "is before 1900-01-01" in result.invalid[0][1]
    assert "a fact is at most 262,144 bytes" in result.invalid[1][1]
    assert "nested deeper than 16 levels" in result.invalid[2][1]


# ------------------------------------------------------------------------ POST /api/facts


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, dict[str, str], Path]]:
    home = tmp_path_factory.mktemp("hostile-api") / "ledger"
    home.mkdir()
    secrets = make_tokens(home)
    with TestClient(create_app(Settings(data_dir=home), duties=[])) as client:
        assert client.post("/api/facts", content=REGISTRATION, headers={
            **auth(secrets["admin"]), "Content-Type": "application/json"}).status_code == 201
        yield client, secrets, home


@pytest.mark.parametrize("case", HOSTILE, ids=lambda c: c.name)
def test_api_reports_each_hostile_fact_and_records_its_neighbours(
        api: tuple[TestClient, dict[str, str], Path], case: Hostile) -> None:
    client, secrets, _ = api
    index = HOSTILE.index(case)
    before, after = line(fact(f"api-{index}-a")), line(fact(f"api-{index}-b"))
    body = b"[" + before + b"," + case.text + b"," + after + b"]"
    answer = client.post("/api/facts", content=body,
                         headers={**auth(secrets["admin"]), "Content-Type": "application/json"})
    if case.reason is None:
        assert answer.status_code == 201, answer.text
        return
    assert answer.status_code == case.api, answer.text[:500]
    document = answer.json()
    if case.api == 422:
        assert document["detail"]["recorded"] == 2
        [problem] = document["detail"]["rejected"]
        assert problem["index"] == 1
        assert case.reason in problem["reason"].lower(), problem["reason"]
    elif case.api == 413:
        assert document["detail"]["max_bytes"] == 32 * 1024 * 1024
    else:
        assert "not valid json" in document["error"].lower()


def test_api_a_fact_over_the_size_limit_in_a_small_request_is_one_problem(
        api: tuple[TestClient, dict[str, str], Path]) -> None:
    client, secrets, _ = api
    big = fact("big", data={f"note{i}": "z" * 60_000 for i in range(10)})  # 600 KB, each string allowed
    answer = client.post("/api/facts", content=orjson.dumps([fact("big-a"), big]),
                         headers={**auth(secrets["admin"]), "Content-Type": "application/json"})
    assert answer.status_code == 422, answer.text[:300]
    [problem] = answer.json()["detail"]["rejected"]
    assert problem["index"] == 1 and "a fact is at most 262,144 bytes" in problem["reason"]
    assert answer.json()["detail"]["recorded"] == 1


def test_api_a_body_sent_in_chunks_is_refused_past_the_limit(
        api: tuple[TestClient, dict[str, str], Path]) -> None:
    client, secrets, _ = api

    def chunks() -> Iterator[bytes]:
        yield b"["
        for _ in range(40):  # 40 MiB in all, without a Content-Length
            yield b'"' + b"c" * (1024 * 1024) + b'",'
        yield b"1]"

    answer = client.post("/api/facts", content=chunks(),
                         headers={**auth(secrets["admin"]), "Content-Type": "application/json"})
    assert answer.status_code == 413, answer.text[:300]


def test_api_readers_answer_after_the_hostile_requests(api: tuple[TestClient, dict[str, str], Path]) -> None:
    client, secrets, _ = api
    for case in HOSTILE:  # whatever order the table's tests ran in, all of it went in
        body = b"[" + line(fact("after-a")) + b"," + case.text + b"]"
        assert client.post("/api/facts", content=body, headers={
            **auth(secrets["admin"]), "Content-Type": "application/json"}).status_code < 500
    answer = client.get("/api/customers/C-H1", headers=auth(secrets["admin"]))
    assert answer.status_code == 200, answer.text[:300]
    assert any(e["source_id"] == "after-a" for e in answer.json()["timeline"])


# ------------------------------------------------------------------------ Kafka ingest


@pytest.mark.kafka
def test_kafka_ingest_dead_letters_the_hostile_messages_with_their_reasons(
        kafka_broker: KafkaEndpoint, kafka_topic_prefix: str, tmp_path: Path) -> None:
    from consumers import dlq
    from tests.kafka.test_ingest import create_topic, produce, run_ingest
    from tests.ledgers import open_journey

    bootstrap, topic, dlq_topic = (kafka_broker.bootstrap, kafka_topic_prefix + "tp",
                                   kafka_topic_prefix + "dlq")
    cases = [c for c in HOSTILE if c.kafka]
    cases.append(Hostile("a 300 KB message", line(fact("big", data={
        f"note{i}": "z" * 60_000 for i in range(5)})), "a fact is at most 262,144 bytes"))
    accepted = [REGISTRATION, b"\xef\xbb\xbf" + good(1), good(2) + b"\r\n", good(3) + b"\r"]
    values = [*accepted, *(c.text for c in cases)]
    create_topic(bootstrap, topic, partitions=1)
    produce(bootstrap, topic, [(0, value, None, []) for value in values])

    journey = open_journey(tmp_path / "ledger")
    try:
        stats = run_ingest(journey, bootstrap, topic, dlq_topic)
        assert (stats.recorded, stats.dead_lettered) == (len(accepted), len(cases))
    finally:
        journey.close()
    letters = {e.source_offset: e for e in dlq.read_dead_letters(bootstrap, dlq_topic)}
    assert set(letters) == set(range(len(accepted), len(values)))
    for offset, case in enumerate(cases, start=len(accepted)):
        assert case.reason is not None and case.reason in letters[offset].reason.lower(), (
            case.name, letters[offset].reason)
        assert letters[offset].value == case.text  # the original bytes, for a replay
