"""The ``mentions``, ``products`` and ``warranty_claims`` rows computed by SQL
(projections/sql/service.py) are exactly the rows the Python rules (projections/inbox.py,
projections/warranty.py) give, on real ledgers.

Each ledger is projected and its three tables replaced by the rows the Python rules give for
each customer's view (tests/python_oracle.py: the oracle); the SQL then rewrites every
customer's rows from the ``events`` table in a transaction that is rolled back, and the two
sets of rows must be equal: every column, times as instants, response times to the last bit.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

import duckdb
import hypothesis.strategies as st
import orjson
import pytest
from hypothesis import HealthCheck, given, settings

from benchmarks.rows import workload
from domain.identity import event_uuid
from journey import demo_data
from journey.bootstrap import Journey
from journey.references import reference_key
from projections import inbox, warranty
from projections.cases import tracking_key
from projections.rules import Rules
from projections.sql import service
from tests import python_oracle
from tests.ledgers import append, open_journey

Rows = dict[str, list[tuple[Any, ...]]]

#: Real SQLite and DuckDB files, on a RAM disk where there is one.
FAST_DIR = "/dev/shm" if Path("/dev/shm").is_dir() else None


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def rows(con: duckdb.DuckDBPyConnection) -> Rows:
    """The three tables' rows, sorted, for an exact comparison."""
    return {table: sorted((tuple(map(_hashable, r)) for r in
                           con.execute(f"SELECT * FROM {table}").fetchall()), key=repr)
            for table in service.TABLES}


def refreshed(con: duckdb.DuckDBPyConnection, rules: Rules, touched: list[str] | None = None,
              prepare: str = "") -> Rows:
    """The rows after ``refresh`` of the customers ``touched`` (default: everybody), read inside
    the transaction, which is then rolled back (the file stays as projected). ``prepare`` runs
    after ``touched`` is made, before the refresh."""
    con.begin()
    try:
        if touched is None:
            con.execute("CREATE TEMP TABLE touched AS SELECT DISTINCT customer_id FROM events")
        else:
            con.execute("CREATE TEMP TABLE touched AS SELECT unnest(?::VARCHAR[]) AS customer_id",
                        [touched])
        if prepare:
            con.execute(prepare)
        service.refresh(con, rules)
        return rows(con)
    finally:
        con.rollback()


def assert_same_rows(journey: Journey) -> Rows:
    journey.project()
    store = journey.projections
    python_oracle.rewrite(store.con, store.rules)
    expected = rows(store.con)
    assert refreshed(store.con, store.rules) == expected
    return expected


# ----------------------------------------------------------------------------- whole ledgers


def test_the_bench_workload_gives_the_rows_of_the_python_rules(tmp_path: Path) -> None:
    journey = open_journey(tmp_path)
    try:
        append(journey, workload(20000), batch_size=5000)
        expected = assert_same_rows(journey)
        assert len(expected["mentions"]) > 100 and len(expected["products"]) > 100
        assert any(r[11] is not None for r in expected["mentions"])  # some were answered
    finally:
        journey.close()


def test_the_demo_gives_the_rows_of_the_python_rules(tmp_path: Path) -> None:
    journey = open_journey(tmp_path)
    try:
        append(journey, demo_data.stories())
        append(journey, list(demo_data.generate(400, seed=11)))
        expected = assert_same_rows(journey)
        assert expected["products"] and expected["warranty_claims"]
        assert any(r[11] is not None for r in expected["mentions"])  # some were answered
    finally:
        journey.close()


def test_a_refresh_of_some_customers_leaves_the_others_rows_alone(tmp_path: Path) -> None:
    journey = open_journey(tmp_path)
    try:
        append(journey, list(demo_data.generate(200, seed=4)))
        journey.project()
        con = journey.projections.con
        python_oracle.rewrite(con, journey.projections.rules)
        expected = rows(con)
        owners = sorted({r[0] for table in expected.values() for r in table})
        some, others = owners[::2], owners[1::2]
        assert some and others
        # The others' rows are marked: a refresh that rewrote them would lose the marks.
        marks = "; ".join(f"UPDATE {t} SET {c} = 'untouched' WHERE customer_id NOT IN "
                          "(SELECT customer_id FROM touched)"
                          for t, c in (("mentions", "agent"), ("products", "agent"),
                                       ("warranty_claims", "reason")))
        got = refreshed(con, journey.projections.rules, some, prepare=marks)
        for table, index in (("mentions", 19), ("products", 16), ("warranty_claims", 23)):
            mine = [r for r in got[table] if r[0] in some]
            assert mine == [r for r in expected[table] if r[0] in some]
            theirs = [r for r in got[table] if r[0] not in some]
            assert len(theirs) == len([r for r in expected[table] if r[0] not in some])
            assert all(r[index] == "untouched" for r in theirs)
    finally:
        journey.close()


def _fact(kind: str, fact_id: str, at: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "id": fact_id, "source": "crm", "customer": {"customer_id": "C-1"},
            "occurred_at": at, "department": "social_media", "data": data}


def test_every_rule_on_one_customer(tmp_path: Path) -> None:
    """A reply stamped before its mention, two replies, a reply to nothing, cases named by id
    and by tracking key (a closed one passed over), 31 Jan + 1 month, a claim out of warranty,
    one filed before the purchase, one of an unknown serial, a decision without a filing."""
    key = tracking_key("A-12").lower().replace("-", " ")
    journey = open_journey(tmp_path)
    try:
        append(journey, [
            _fact("customer.registered", "r", "2024-01-01T09:00:00+01:00", {"name": "Ana"}),
            _fact("case.opened", "k1", "2024-01-10T09:00:00+01:00", {"case_id": "A-1", "kind": "complaint"}),
            _fact("case.resolved", "k2", "2024-01-20T09:00:00+01:00", {"case_id": "A-1"}),
            _fact("case.opened", "k3", "2024-01-05T09:00:00+01:00", {"case_id": "A-12", "kind": "request"}),
            _fact("social.mention", "m1", "2024-01-15T09:00:00+01:00",
                  {"network": "x", "text": "about A-12x, A-1 and A-12", "to": "@brand"}),
            _fact("social.mention", "m2", "2024-01-25T09:00:00+01:00",
                  {"network": "x", "text": f"A-1 again, see {key}", "case_id": "A-1"}),
            _fact("social.reply", "p1", "2024-01-14T09:00:00+01:00", {"in_reply_to": "m1", "text": "hi"}),
            _fact("social.reply", "p2", "2024-01-16T09:00:00+01:00",
                  {"in_reply_to": str(event_uuid("crm", "m1")), "text": "again"}),
            _fact("social.reply", "p3", "2024-01-16T09:00:00+01:00", {"in_reply_to": "nothing", "text": "?"}),
            _fact("purchase.recorded", "b1", "2024-01-31T10:00:00+01:00",
                  {"product": "TV", "serial": "X200-5581-AB", "warranty_months": 1, "price": 19.99}),
            _fact("warranty.claim_filed", "c1", "2024-03-01T10:00:00+01:00",
                  {"claim_id": "CL-1", "serial": "x200 5581-ab"}),
            _fact("warranty.claim_decided", "d1", "2024-03-02T10:00:00+01:00",
                  {"claim_id": "CL-1", "approved": False}),
            _fact("warranty.claim_filed", "c2", "2024-01-02T10:00:00+01:00",
                  {"claim_id": "CL-2", "serial": "X2005581AB"}),
            _fact("warranty.claim_decided", "d2", "2024-03-02T10:00:00+01:00",
                  {"claim_id": "CL-3", "approved": True}),
            _fact("warranty.claim_filed", "c4", "2024-02-10T10:00:00+01:00",
                  {"claim_id": "CL-4", "serial": "nope"}),
        ])
        assert_same_rows(journey)
        con = journey.projections.con
        assert con.execute("SELECT mention_id, replies, reply_id, response_s, case_id, case_status, to_brand "
                           "FROM mentions ORDER BY mention_id").fetchall() == [
            ("m1", 2, "p1", 0.0, "A-1", "resolved", True), ("m2", 0, None, None, "A-12", "open", False)]
        assert con.execute("SELECT warranty_ends::VARCHAR, serial_key FROM products").fetchall() == [
            ("2024-02-29", "X2005581AB")]
        assert con.execute("SELECT claim_id, status, flags FROM warranty_claims ORDER BY claim_id").fetchall() == [
            ("CL-1", "refused", ["out_of_warranty"]), ("CL-2", "open", ["filed_before_purchase"]),
            ("CL-3", "approved", ["not_filed"]), ("CL-4", "open", ["unknown_product"])]
    finally:
        journey.close()


# ----------------------------------------------------------------------------- the property

PEOPLE = [{"customer_id": f"C-{i}", "phone": f"+3460000000{i}", "twitter": f"@person{i}"}
          for i in range(1, 4)]
PEOPLE_NUMBERS = [1, 2, 3]
CASES = {1: ["A-1", "A-12", "a-1x"], 2: ["B-7", "\u0130D-\u0131"], 3: ["C-3"]}
#: Serials in groups of spellings of one serial (letters and digits compared, any case).
SERIALS = [["X200-5581-AB", "x200 5581-ab", "X2005581AB"], ["straße-1", "STRASSE1", "strasse 1"],
           ["SN-1"], ["---"], ["Ǆ-ﬁ 2", "ǅfi2"]]
#: Instants around months' ends (31 Jan, 29 Feb of a leap year, 30 Apr), and offsets that put
#: the local date on another day than the UTC one; equal instants in other spellings.
DAYS = ["2024-01-31", "2024-02-29", "2024-03-31", "2024-04-30", "2023-01-31", "2024-12-31",
        "2026-01-31", "2025-02-28"]
TIMES = ["00:30:00+02:00", "12:00:00+00:00", "23:30:00-05:00", "12:00:00.250000+00:00",
         "13:00:00+01:00"]


@st.composite
def mention_text(draw: st.DrawFn, person: int) -> str:
    """A message that may name a case: its id or tracking key, in any case and spacing, inside
    words or hyphenated runs that must not count."""
    parts = draw(st.lists(st.sampled_from(["hola", "K", "-", " ", "(", ")", ".", "_", "x", "9"]),
                          max_size=4))
    for _ in range(draw(st.integers(0, 2))):
        case_id = draw(st.sampled_from(CASES[person] + CASES[draw(st.integers(1, 3))]))
        key = tracking_key(case_id)
        name = draw(st.sampled_from([case_id, case_id.lower(), case_id.upper(), key, key.lower(),
                                     key.replace("-", " "), key.replace("-", ""),
                                     key.replace("-", "\u3000"), key.replace("-", "--")]))
        parts.insert(draw(st.integers(0, len(parts))), name)
    return draw(st.sampled_from(["", " ", "-"])).join(parts)


@st.composite
def service_facts(draw: st.DrawFn) -> list[dict[str, Any]]:
    facts: list[dict[str, Any]] = []
    mentions: dict[int, list[tuple[str, str]]] = {1: [], 2: [], 3: []}  # (source, id) by person
    serials = {p: draw(st.lists(st.sampled_from(range(len(SERIALS))), min_size=1, max_size=2))
               for p in PEOPLE_NUMBERS}
    for n in range(draw(st.integers(6, 36))):
        person = draw(st.sampled_from(PEOPLE_NUMBERS))
        who = PEOPLE[person - 1]
        kind = "customer.registered" if n < 3 and draw(st.booleans()) else draw(st.sampled_from(
            ["social.mention"] * 3 + ["social.reply"] * 3 + ["case.opened"] * 2
            + ["case.resolved", "case.reopened", "case.note"] + ["purchase.recorded"] * 2
            + ["warranty.claim_filed"] * 2 + ["warranty.claim_decided", "customer.merged"]))
        ref = {"customer_id": who["customer_id"]} if kind.startswith(("case.", "customer.")) else {
            k: who[k] for k in [draw(st.sampled_from(["customer_id"] * 6 + ["phone", "twitter"]))]}
        source = draw(st.sampled_from(["tw", "crm"]))
        fact_id = f"f{n}"
        data: dict[str, Any]
        if kind == "social.mention":
            fact_id = draw(st.sampled_from([f"m{n}", "m1", "m2"]))
            mentions[person].append((source, fact_id))
            data = {"network": "twitter", "text": draw(mention_text(person))}
            if draw(st.booleans()):
                data["handle"] = who["twitter"]
            to = draw(st.sampled_from([None, "@brand", ""]))
            if to is not None:
                data["to"] = to
            if draw(st.integers(0, 4)) == 0:
                data["case_id"] = draw(st.sampled_from(CASES[person] + ["Z-9"]))
        elif kind == "social.reply":
            named = "nothing"
            mine = mentions[person] or mentions[draw(st.sampled_from(PEOPLE_NUMBERS))]
            if mine and draw(st.integers(0, 5)) > 0:
                m_source, m_id = draw(st.sampled_from(mine))
                named = draw(st.sampled_from([m_id, str(event_uuid(m_source, m_id))]))
            data = {"in_reply_to": named, "text": f"reply {n}"}
        elif kind.startswith("case."):
            data = {"case_id": draw(st.sampled_from(CASES[person]))}
            if kind == "case.opened":
                data["kind"] = "complaint"
            elif kind == "case.note":
                data["text"] = "note"
        elif kind == "purchase.recorded":
            data = {"product": draw(st.sampled_from(["TV", "Phone"])),
                    "serial": draw(st.sampled_from(SERIALS[draw(st.sampled_from(serials[person]))]))}
            if draw(st.booleans()):
                data["warranty_months"] = draw(st.sampled_from([0, 1, 12, 13, 24, 36]))
            if draw(st.booleans()):
                data["price"] = draw(st.sampled_from([10, 19.99, 0.1, 1e-7, 123456789.123]))
            if draw(st.booleans()):
                data["store"] = "Madrid"
        elif kind == "warranty.claim_filed":
            group = draw(st.sampled_from(serials[person])) if draw(st.integers(0, 4)) else 0
            data = {"claim_id": draw(st.sampled_from(["CL-1", "CL-2", "CL-3"])),
                    "serial": draw(st.sampled_from(SERIALS[group]))}
            if draw(st.booleans()):
                data["issue"] = "broken"
        elif kind == "warranty.claim_decided":
            data = {"claim_id": draw(st.sampled_from(["CL-1", "CL-2", "CL-3"])),
                    "approved": draw(st.booleans())}
            if draw(st.booleans()):
                data["reason"] = "checked"
        elif kind == "customer.registered":
            data = {"name": f"Person {person}", "phone": who["phone"], "twitter": who["twitter"]}
        else:  # a merge or an unmerge of another person's record
            other = PEOPLE[draw(st.integers(1, 3)) - 1]
            data = {"from": {"customer_id": other["customer_id"]}, "reason": "same person"}
        fact = {"type": kind, "id": fact_id, "source": source, "customer": ref,
                "occurred_at": f"{draw(st.sampled_from(DAYS))}T{draw(st.sampled_from(TIMES))}",
                "data": data}
        if draw(st.integers(0, 3)):
            fact["department"] = draw(st.sampled_from(["social_media", "customer_care", "stores"]))
        if draw(st.booleans()):
            fact["agent"] = draw(st.sampled_from(["A-1", "A-2"]))
        facts.append(fact)
        if kind == "customer.merged" and draw(st.booleans()):  # and a wrong merge undone
            facts.append({**fact, "type": "customer.unmerged", "id": f"u{n}",
                          "occurred_at": f"{draw(st.sampled_from(DAYS))}T{draw(st.sampled_from(TIMES))}"})
    return facts


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(facts=service_facts(), batch=st.integers(1, 10), forget=st.sampled_from([None, *PEOPLE]))
def test_generated_ledgers_give_the_rows_of_the_python_rules(
        facts: list[dict[str, Any]], batch: int, forget: dict[str, str] | None) -> None:
    with tempfile.TemporaryDirectory(dir=FAST_DIR) as directory:
        journey = open_journey(Path(directory))
        try:
            for start in range(0, len(facts), batch):  # late uploads between projections
                append(journey, facts[start:start + batch], batch_size=batch)
                journey.project()
            if forget is not None:
                journey.ledger.forget(reference_key(forget["customer_id"]), "asked")
            assert_same_rows(journey)
        finally:
            journey.close()


# ----------------------------------------------------------------------------- the pieces


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    for macro in service._macros():
        connection.execute(macro)
    return connection


def _sql_search(con: duckdb.DuckDBPyConnection, text: str, pattern: str) -> tuple[int, int] | None:
    [(before, found)] = con.execute("SELECT length(regexp_extract(?, p, 1)), length(regexp_extract(?, p, 2)) "
                                    f"FROM (SELECT {pattern} AS p)", [text, text]).fetchall()
    return (before, found) if found else None


def _py_search(pattern: re.Pattern[str], text: str) -> tuple[int, int] | None:
    match = pattern.search(text)
    return (match.start(), len(match.group())) if match else None


#: Letters Python's IGNORECASE folds differently from RE2 (dotted and dotless i, long s,
#: Kelvin sign), word characters, hyphens, Python's unusual whitespace.
NAME_CHARS = st.sampled_from([*"Kk1-_iIsS.", "\u0131", "\u0130", "\u017f", "\u212a", "ß", "é", " "])
TEXT_CHARS = st.sampled_from([*"Kk1-_iIsS. x9(", "\u0131", "\u0130", "\u017f", "\u212a", "\u3000",
                              "\xa0", "\n", "\t", "\x0b", "é", "\u2028"])


@settings(max_examples=300, deadline=None)
@given(name=st.text(NAME_CHARS, min_size=1, max_size=4), text=st.text(TEXT_CHARS, max_size=14),
       loose=st.booleans(), at=st.integers(-1, 14))
def test_a_case_is_found_in_a_text_where_python_finds_it(con: duckdb.DuckDBPyConnection, name: str,
                                                        text: str, loose: bool, at: int) -> None:
    """Where a name is found (its start and length), as projections/inbox.py's regex finds it."""
    macro = "service_loose_pattern" if loose else "service_pattern"
    if loose:  # a tracking key: two groups of letters and digits (a name never matches nothing)
        name = "-".join(part for part in re.split(r"[^0-9A-Za-z]+", name + "-K1") if part)
    quoted = name.replace("'", "''")
    if at >= 0:  # the name itself somewhere in the text
        text = text[:at] + name + text[at:]
    assert _sql_search(con, text, f"{macro}('{quoted}')") == _py_search(inbox._pattern(name, loose), text)


def test_tracking_keys_are_those_of_the_cases_module(con: duckdb.DuckDBPyConnection) -> None:
    ids = ["K-1", "CASE-2026-000123", "é ü", "x" * 80, "İı", "a'b\"c", "ﬁ"]
    got = con.execute("SELECT list(service_tracking_key(i) ORDER BY n) FROM unnest(?::VARCHAR[]) "
                      "WITH ORDINALITY AS t(i, n)", [ids]).fetchall()[0][0]
    assert got == [tracking_key(i) for i in ids]


def test_every_character_keys_a_serial_as_python_does(con: duckdb.DuckDBPyConnection) -> None:
    """warranty.serial_key of each Unicode character, and of runs mixing them, through the
    same statements the refresh runs."""
    chars = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    serials = [*chars, "x200 5581-ab", "Straße 7", "ǆ-ﬁ_2", "ŉ½", "---", "ΐ𝟘"]
    con.execute("CREATE OR REPLACE TEMP TABLE service_facts AS SELECT 'purchase.recorded' AS type, "
                "json_object('serial', s) AS data FROM unnest(?::VARCHAR[]) t(s)", [serials])
    service.serial_keys(con)
    got = dict(con.execute("SELECT serial, serial_key FROM service_serials").fetchall())
    assert {s: got[s] for s in serials} == {s: warranty.serial_key(s) for s in serials}


@pytest.mark.parametrize("value", [True, False, 0, 1, -7, 2**64 - 1, 0.0, 2.5, "", "a", "é\"\\", [], [0],
                                   {}, {"a": 1}, None])
def test_json_values_read_as_python_reads_them(con: duckdb.DuckDBPyConnection, value: Any) -> None:
    """``str()`` (for texts, booleans, integers and null) and ``bool()`` of a fact's value."""
    data = orjson.dumps({"v": value}).decode()
    [(text, truthy)] = con.execute("SELECT service_py_str(d->'v'), service_truthy(d->'v') "
                                   "FROM (SELECT ?::JSON AS d)", [data]).fetchall()
    assert truthy == bool(value)
    if value is None or isinstance(value, str | bool | int):
        assert text == (None if value is None else str(value))


def _case_groups() -> list[set[str]]:
    """Characters that a case mapping (lower, upper, title, folding; of a mapping to several
    characters, its first, which takes in the simple lower case ``re`` compares U+0130 by) ties
    together: the only ones IGNORECASE can match with another (the groups are wider than
    needed, never narrower)."""
    parent: dict[str, str] = {}

    def root(c: str) -> str:
        while parent.get(c, c) != c:
            c = parent[c]
        return c

    for code in range(0x110000):
        if 0xD800 <= code <= 0xDFFF:
            continue
        c = chr(code)
        for mapped in (c.lower(), c.upper(), c.casefold(), c.title()):
            other = mapped[0]
            if other != c and root(other) != root(c):
                parent[root(c)] = root(other)
    groups: dict[str, set[str]] = {}
    for c in list(parent):
        groups.setdefault(root(c), {root(c)}).add(c)
    return list(groups.values())


def test_a_case_id_matches_the_letters_python_matches_it_with(con: duckdb.DuckDBPyConnection) -> None:
    """Each character of a case id, against every character of its case group: RE2's folding
    with the macros' corrections is Python's IGNORECASE."""
    pairs = [(c, t) for group in _case_groups() for c in group for t in group]
    got = con.execute("SELECT list(regexp_full_match(t, '(?i)' || service_literal(c)) ORDER BY n) FROM "
                      "(SELECT unnest(?::VARCHAR[]) AS c, unnest(?::VARCHAR[]) AS t, unnest(range(?)) AS n)",
                      [[c for c, _ in pairs], [t for _, t in pairs], len(pairs)]).fetchall()[0][0]
    assert len(pairs) > 5000
    assert got == [bool(re.fullmatch(re.escape(c), t, re.IGNORECASE)) for c, t in pairs]


def test_the_boundaries_of_a_name_are_pythons_for_every_character(con: duckdb.DuckDBPyConnection) -> None:
    """What may stand before and after a case's name, for each Unicode character."""
    chars = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    pattern = con.execute("SELECT service_pattern('K1')").fetchall()[0][0]
    got = con.execute("SELECT list(length(regexp_extract(c || 'K1', ?, 2)) > 0 ORDER BY n), "
                      "list(length(regexp_extract('K1' || c, ?, 2)) > 0 ORDER BY n), "
                      "list(length(regexp_extract('K1-' || c, ?, 2)) > 0 ORDER BY n) "
                      "FROM unnest(?::VARCHAR[]) WITH ORDINALITY AS t(c, n)",
                      [pattern, pattern, pattern, chars]).fetchall()[0]
    python = inbox._pattern("K1")
    assert list(got) == [[python.search(text) is not None for text in texts] for texts in (
        [c + "K1" for c in chars], ["K1" + c for c in chars], ["K1-" + c for c in chars])]
