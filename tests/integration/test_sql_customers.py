"""The ``customers`` and ``identities`` rows derived by SQL equal what the Python fold writes.

The oracle is the Python rules: each customer's view built from their rows
(projections/view_rows.py) and ``customer_view.summary`` of it (tests/python_oracle.py). Each
test builds a real ledger, projects it, replaces both tables with the oracle's rows, runs
:func:`projections.sql.customers.refresh` for every customer over the same ``events`` rows,
and compares every column of every row exactly.
"""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.rows import workload
from domain import catalogue, identity
from journey import demo_data
from journey.bootstrap import Journey
from journey.usecases import erasure
from ledger.application import decode_notifications
from projections import customer_view, duckdb_store
from projections.rules import DEFAULT_RULES
from projections.sql import customers as sql_customers
from tests import python_oracle
from tests.ledgers import append, open_journey

FAST_DIR = "/dev/shm" if Path("/dev/shm").is_dir() else None
PROPERTY = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

Rows = list[tuple[Any, ...]]


def _rows(con: duckdb.DuckDBPyConnection, table: str) -> Rows:
    return sorted(con.execute(f"SELECT * FROM {table}").fetchall(), key=repr)


def _tables(con: duckdb.DuckDBPyConnection) -> tuple[Rows, Rows]:
    return _rows(con, "customers"), _rows(con, "identities")


def _refresh(con: duckdb.DuckDBPyConnection, customers: list[str] | None = None) -> None:
    """What the engine does: ``touched`` in the transaction, then the module's statements."""
    con.begin()
    if customers is None:
        # Every record the projection wrote: those with facts, and those with facts set aside.
        con.execute("CREATE OR REPLACE TEMP TABLE touched AS SELECT customer_id FROM events "
                    "UNION SELECT customer_id FROM quarantine WHERE customer_id IS NOT NULL")
    else:
        wanted = pa.table({"customer_id": pa.array(customers, pa.string())})  # noqa: F841 (scanned)
        con.execute("CREATE OR REPLACE TEMP TABLE touched AS SELECT customer_id FROM wanted")
    sql_customers.refresh(con, DEFAULT_RULES)
    con.execute("DROP TABLE touched")
    con.commit()


def _assert_sql_rewrites_the_same_rows(con: duckdb.DuckDBPyConnection) -> None:
    python_oracle.rewrite(con)
    expected = _tables(con)
    con.execute("DELETE FROM customers")
    con.execute("DELETE FROM identities")
    _refresh(con)
    customers, identities = _tables(con)
    assert customers == expected[0]
    assert identities == expected[1]


def test_the_bench_workload(tmp_path: Path) -> None:
    journey = open_journey(tmp_path)
    try:
        append(journey, workload(20_000))
        journey.project()
        _assert_sql_rewrites_the_same_rows(journey.projections.con)
    finally:
        journey.close()


def test_the_demo_with_its_stories(tmp_path: Path) -> None:
    journey = open_journey(tmp_path)
    try:
        append(journey, list(demo_data.generate(400, seed=5)), batch_size=300)
        journey.project()
        con = journey.projections.con
        # The stories' merges and unlinks are there, so their rules are compared too.
        kinds = {r[0] for r in con.execute("SELECT DISTINCT type FROM events").fetchall()}
        assert {"customer.merged", "identity.linked"} <= kinds
        _assert_sql_rewrites_the_same_rows(con)
    finally:
        journey.close()


def test_a_refresh_rewrites_only_the_touched_customers(tmp_path: Path) -> None:
    journey = open_journey(tmp_path)
    try:
        append(journey, list(demo_data.generate(60, seed=2)))
        journey.project()
        con = journey.projections.con
        python_oracle.rewrite(con)
        expected = _tables(con)
        ids = sorted(r[0] for r in con.execute("SELECT DISTINCT customer_id FROM events").fetchall())
        touched, others = ids[::3], [cid for cid in ids if cid not in ids[::3]]
        gone = str(uuid.uuid4())  # touched, but without rows any more (merged away)
        con.execute("UPDATE customers SET name = 'left alone', events = -1")
        con.execute("INSERT INTO customers (customer_id, events) VALUES (?, 7)", [gone])
        con.execute("INSERT INTO identities VALUES ('phone:+34600999999', ?), (?, ?)",
                    [gone, f"ledger:{gone}", gone])
        marked = [r for r in _rows(con, "customers") if r[0] in others]

        _refresh(con, [*touched, gone])

        customers, identities = _tables(con)
        assert [r for r in customers if r[0] in touched] == [r for r in expected[0] if r[0] in touched]
        assert [r for r in customers if r[0] in others] == marked
        assert identities == expected[1]
        assert not [r for r in customers if r[0] == gone]
    finally:
        journey.close()


# ----------------------------------------------------------------------- forgotten customers


def _events_copy(con: duckdb.DuckDBPyConnection, path: Path,
                 replace: dict[int, tuple[str | None, str | None]] | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB file of its own holding the ``events`` rows of ``con`` (with ``ref`` and ``data``
    of the positions in ``replace`` replaced)."""
    rows = con.sql("SELECT * FROM events").to_arrow_table()
    if replace:
        positions = rows.column("position").to_pylist()
        refs, datas = rows.column("ref").to_pylist(), rows.column("data").to_pylist()
        for i, position in enumerate(positions):
            if position in replace:
                refs[i], datas[i] = replace[position]
        rows = rows.set_column(rows.schema.get_field_index("ref"), "ref", pa.array(refs, pa.string()))
        rows = rows.set_column(rows.schema.get_field_index("data"), "data", pa.array(datas, pa.string()))
    copy = duckdb.connect(str(path))
    copy.execute(next(s for s in duckdb_store.SCHEMA if "TABLE IF NOT EXISTS events" in s))
    copy.execute("INSERT INTO events SELECT * FROM rows")
    return copy


def _remembered(copy: duckdb.DuckDBPyConnection) -> pa.Table:
    """The tombstones :func:`remember_forgotten` counts over the rows of ``copy``."""
    copy.begin()
    copy.execute("CREATE TEMP TABLE touched AS SELECT DISTINCT customer_id FROM events")
    sql_customers.remember_forgotten(copy)
    copy.commit()
    return copy.sql("SELECT * FROM tombstones").to_arrow_table()


def _forget(journey: Journey, key: str, workdir: Path) -> pa.Table:
    """Forget whoever ``key`` names through the ledger's use case (the projection of the forget
    nulls their rows' ``ref`` and ``data`` and writes their tombstone row), and return the
    tombstones :func:`remember_forgotten` counts.

    The engine calls ``remember_forgotten`` once the forget's row is in and before it nulls the
    forgotten customer's ``ref`` and ``data``, inside one projection, so the rows as they are at
    that moment are put together here from two honest parts: a copy of the events rows taken
    before the forget was projected, plus the ``customer.forgotten`` row the projection of the
    forget added."""
    before = _events_copy(journey.projections.con, workdir / "before.duckdb")
    try:
        result = erasure.forget(journey, key, "asked to be forgotten")
        assert result is not None and result.projected
        forgets = journey.projections.con.sql(  # noqa: F841 (scanned below)
            "SELECT * FROM events WHERE type = 'customer.forgotten'").to_arrow_table()
        before.execute("INSERT INTO events SELECT * FROM forgets "
                       "WHERE position NOT IN (SELECT position FROM events)")
        return _remembered(before)
    finally:
        before.close()


def _store_tombstones(con: duckdb.DuckDBPyConnection, remembered: pa.Table) -> None:
    con.execute(sql_customers.TOMBSTONES_DDL)
    con.execute("DELETE FROM tombstones")
    con.execute("INSERT INTO tombstones SELECT * FROM remembered")


def _public_rows(journey: Journey) -> dict[int, tuple[str | None, str | None]]:
    """Each stored fact's ``ref`` and ``data`` as a rebuild reads them now: a forgotten
    customer's facts erased (every personal value None), everybody else's in clear."""
    app = journey.app
    head = app.recorder.max_notification_id() or 0
    facts = decode_notifications(app, app.recorder.select_notifications(0, head + 1, inclusive_of_start=False))
    return {sf.position: (orjson.dumps(catalogue.upcast(sf.fact)["customer"]).decode(),
                          orjson.dumps(catalogue.upcast(sf.fact).get("data", {})).decode())
            for sf in facts}


def _assert_forgotten_rows_match(journey: Journey, remembered: pa.Table, workdir: Path) -> None:
    """The tombstones counted live equal those a rebuild after the erasure counts (its rows hold
    only the public fields), and ``refresh`` with them writes the rows the fold wrote."""
    rebuilt = _events_copy(journey.projections.con, workdir / "rebuilt.duckdb", _public_rows(journey))
    try:
        assert sorted(_remembered(rebuilt).to_pylist(), key=repr) == sorted(remembered.to_pylist(), key=repr)
    finally:
        rebuilt.close()
    con = journey.projections.con
    _store_tombstones(con, remembered)
    _assert_sql_rewrites_the_same_rows(con)


def _fact(kind: str, n: int, ref: dict[str, str], at: str, data: dict[str, Any],
          department: str | None = "customer_care") -> dict[str, Any]:
    fact: dict[str, Any] = {"type": kind, "id": f"{kind}-{n}", "source": "crm", "customer": ref,
                            "occurred_at": at, "data": data}
    if department is not None:
        fact["department"] = department
    return catalogue.validate(fact)


def test_a_forgotten_customer_keeps_the_counts_and_nothing_personal(tmp_path: Path) -> None:
    """A person with cases, promises, objections, purchases and two records merged into them is
    forgotten through the ledger (journey/usecases/erasure.py). Their tombstone counts are
    taken by ``remember_forgotten`` from their rows as the new engine has them when it calls
    it: the rows before the forget (a copy taken before it was projected) plus the forget's
    row (see :func:`_forget`); and again from the rows a rebuild after the erasure would hold
    (the stored facts' public parts, see :func:`_public_rows`): both must match. ``refresh``
    with them must write the tombstone row the fold wrote, and no identities."""
    journey = open_journey(tmp_path / "ledger")
    ana = {"customer_id": "C-1"}
    day = "2026-01-{:02d}T10:00:00+01:00".format
    story = [
        _fact("call.inbound", 1, {"phone": "+34600000077"}, day(1), {}, "sales"),  # a prospect
        _fact("customer.registered", 2, ana, day(2), {
            "name": "Ana", "phone": "+34600000001", "email": "ana@example.com",
            "address": {"street": "Calle Mayor", "number": "7", "postal_code": "28013", "city": "Madrid"}}),
        _fact("customer.registered", 3, {"customer_id": "C-2"}, day(2), {"name": "Ana M."}, "billing"),
        _fact("identity.linked", 4, ana, day(3), {"kind": "phone", "value": "+34600000077"}),  # merges it
        _fact("customer.merged", 5, ana, day(4), {"from": {"customer_id": "C-2"}, "reason": "same person"}),
        _fact("case.opened", 6, ana, day(5), {"case_id": "K-1", "kind": "complaint"}),
        _fact("case.resolved", 7, ana, day(6), {"case_id": "K-1"}),
        _fact("case.reopened", 8, ana, day(7), {"case_id": "K-1"}),
        _fact("case.opened", 9, ana, day(5), {"case_id": "K-2", "kind": "request"}),
        _fact("case.resolved", 10, ana, day(8), {"case_id": "K-2"}),
        _fact("promise.made", 11, ana, day(5), {"promise_id": "P-1", "what": "call", "due_by": day(9)}),
        _fact("promise.made", 12, ana, day(5), {"promise_id": "P-2", "what": "fix", "due_by": day(9)}),
        _fact("promise.kept", 13, ana, day(6), {"promise_id": "P-2"}),
        _fact("objection.recorded", 14, ana, day(5), {"channels": ["phone"]}),
        _fact("objection.recorded", 15, ana, day(5), {"purpose": "service"}),
        _fact("consent.given", 16, ana, day(6), {"channel": "phone", "purpose": "service", "text": "ok"}),
        _fact("consent.given", 17, ana, day(6), {"channel": "email", "purpose": "commercial", "text": "ok"}),
        _fact("purchase.recorded", 18, ana, day(5), {"product": "TV", "serial": "SN1"}),
        _fact("purchase.recorded", 19, ana, day(6), {"product": "Radio", "serial": "SN2"}),
        _fact("customer.registered", 20, {"customer_id": "C-3"}, day(3), {"name": "Eva"}),  # somebody else
    ]
    story[-1]["data"]["timezone"] = None  # stored by a writer that kept a null, not the default
    try:
        assert not journey.ledger.append(list(enumerate(story))).rejected
        journey.project()
        ana_id = str(identity.customer_uuid("C-1"))
        prospect = journey.projections.con.execute(
            "SELECT merged_from FROM customers WHERE customer_id = ?", [ana_id]).fetchall()[0][0]
        assert len(prospect) == 2  # the prospect and C-2

        remembered = _forget(journey, "customer_id:C-1", tmp_path)

        assert remembered.to_pylist() == [{
            "customer_id": ana_id, "forgotten_at": remembered["forgotten_at"][0].as_py(),
            "kind": "customer", "cases": 2, "open_cases": 1, "open_promises": 1, "products": 2,
            "active_objections": 1, "merged_from": prospect}]
        con = journey.projections.con
        [(at,)] = con.execute("SELECT occurred_local FROM events WHERE type = 'customer.forgotten'").fetchall()
        assert remembered["forgotten_at"][0].as_py() == customer_view.utc_key(at)
        _assert_forgotten_rows_match(journey, remembered, tmp_path)
        row = con.execute("SELECT name, phone, street, identities, kind, events FROM customers "
                          "WHERE customer_id = ?", [ana_id]).fetchall()
        # Every fact of the story but the other person's, the merge the link made, the forget.
        assert row == [(None, None, None, [], "customer", len(story) - 1 + 2)]
        assert not con.execute("SELECT * FROM identities WHERE customer_id = ?", [ana_id]).fetchall()
        assert con.execute("SELECT name, timezone FROM customers WHERE customer_number = 'C-3'"
                           ).fetchall() == [("Eva", None)]
    finally:
        journey.close()


def test_a_record_known_only_by_facts_set_aside(tmp_path: Path) -> None:
    """A fact the readers cannot use (stored by a writer that skipped the door) is quarantined,
    but its record is known: the fold keeps a view for it, with no facts, so it has a
    ``customers`` row and can be found by its ledger id. The SQL reads that from the quarantine."""
    journey = open_journey(tmp_path)
    at = "2026-01-01T10:00:00+01:00"
    unusable = [_fact("consent.given", n, {"phone": phone}, at,
                      {"channel": "email", "purpose": "commercial", "text": "ok"})
                for n, phone in ((1, "+34600000031"), (2, "+34600000032"))]
    for fact in unusable:
        del fact["data"]["channel"]
    try:
        result = journey.ledger.append(list(enumerate(
            [*unusable, _fact("call.inbound", 3, {"phone": "+34600000032"}, at, {})])))
        assert not result.rejected
        journey.project()
        con = journey.projections.con
        assert journey.projections.quarantine_count() == 2
        assert con.execute(
            "SELECT kind, events FROM customers WHERE customer_id IN (SELECT customer_id FROM quarantine) "
            "ORDER BY events").fetchall() == [("prospect", 0), ("prospect", 1)]
        _assert_sql_rewrites_the_same_rows(con)
    finally:
        journey.close()


# --------------------------------------------------------------------- generated ledgers

PEOPLE = 4
#: Instants with ties: 10:00+01:00 and 09:00Z are the same moment.
MOMENTS = [f"2026-01-0{d}T{t}" for d in (1, 2, 3) for t in ("10:00:00+01:00", "09:00:00Z", "12:30:00+02:00")]
DEPARTMENTS = [None, "sales", "billing", "customer_care"]


def _phone(p: int) -> str:
    return f"+3460000{p:04d}"


@st.composite
def _ledgers(draw: st.DrawFn) -> tuple[list[list[dict[str, Any]]], int | None]:
    """Batches of facts about a few people and prospects (known only by a phone), and maybe the
    person to forget at the end. Facts are checked by the door, then some are roughened the
    way an older writer stored them (defaults left out, optional fields null)."""
    registered = draw(st.lists(st.integers(1, PEOPLE), min_size=2, unique=True))
    facts = [_fact("customer.registered", 100 + p, {"customer_id": f"C-{p}"}, draw(st.sampled_from(MOMENTS)),
                   {"name": f"Person {p}", "phone": _phone(p)})
             for p in registered]
    prelude = len(facts)
    merges: list[tuple[dict[str, str], dict[str, str]]] = []
    for n in range(draw(st.integers(1, 28))):
        p = draw(st.integers(1, PEOPLE))
        who = {"customer_id": f"C-{p}"}
        ref = draw(st.sampled_from([
            who, {"phone": _phone(p)}, {"email": f"p{p}@example.com"},
            {"phone": _phone(draw(st.integers(50, 52)))},
            {"customer_id": str(identity.customer_uuid(f"C-{p}"))},  # a ledger id: not an identity
            {"customer_id": f"C-{p}", "email": f"p{p}@example.com", "loyalty_card": f"L{p}"}]))
        kind = draw(st.sampled_from([
            "customer.registered", "identity.linked", "address.changed", "consent.given",
            "consent.withdrawn", "objection.recorded", "case.opened", "case.resolved",
            "case.reopened", "case.note", "promise.made", "promise.kept", "promise.broken",
            "purchase.recorded", "call.inbound", *["identity.linked", "customer.merged",
                                                   "customer.unmerged"] * 2]))
        other = draw(st.integers(1, PEOPLE))
        channel = st.sampled_from(["phone", "email", "sms", "any"])
        data: dict[str, Any]
        if kind == "customer.registered":
            ref = who
            data = {"name": f"Person {p}.{n}"}
            for field, value in (("phone", _phone(draw(st.sampled_from([p, other, 50, 51])))),
                                 ("email", f"p{draw(st.sampled_from([p, other]))}@example.com"),
                                 ("twitter", f"@person{p}"), ("language", "es"),
                                 ("timezone", "Europe/Lisbon"), ("birthday", f"1990-05-0{p}"),
                                 ("address", {"street": f"Calle {n}", "postal_code": "28013", "city": "Madrid"})):
                if draw(st.booleans()):
                    data[field] = value
        elif kind == "identity.linked":
            data = draw(st.sampled_from([
                {"kind": "phone", "value": _phone(draw(st.sampled_from([p, other, 50, 52])))},
                {"kind": "email", "value": f"p{other}@example.com"},
                {"kind": "twitter", "value": f"@person{other}"},
                {"kind": "loyalty_card", "value": f"L{other}"}]))
        elif kind == "address.changed":
            data = {"address": {"street": f"Calle {n}", "number": str(n), "postal_code": "28001", "city": "Madrid"}}
        elif kind.startswith("consent."):
            data = {"channel": draw(channel), "purpose": draw(st.sampled_from(["commercial", "service"])),
                    "text": "yes"}
        elif kind == "objection.recorded":
            data = draw(st.sampled_from([{}, {"channels": ["phone"]}, {"channels": ["email", "sms"]},
                                         {"channels": ["any"]}, {"purpose": "service"}]))
        elif kind.startswith("case."):
            ref = who
            data = {"case_id": f"{p}-K{draw(st.integers(0, 1))}"}
            if kind == "case.opened":
                data["kind"] = "complaint"
            elif kind == "case.note":
                data["text"] = "note"
        elif kind.startswith("promise."):
            data = {"promise_id": f"P{draw(st.integers(0, 1))}"}
            if kind == "promise.made":
                data.update(what="call back", due_by="2026-02-01")
        elif kind == "purchase.recorded":
            data = {"product": "TV", "serial": f"SN{n}"}
        elif kind == "customer.unmerged" and merges:  # mostly undoing a merge drawn before
            ref, source = draw(st.sampled_from(merges))
            data = {"from": source}
        elif kind in ("customer.merged", "customer.unmerged"):
            ref = who
            data = {"from": draw(st.sampled_from([{"customer_id": f"C-{other}"},
                                                  {"phone": _phone(draw(st.integers(50, 52)))}]))}
            if kind == "customer.merged":
                merges.append((who, data["from"]))
        else:
            data = {"reason": "question"}
        fact = _fact(kind, n, ref, draw(st.sampled_from(MOMENTS)), data, draw(st.sampled_from(DEPARTMENTS)))
        if kind == "customer.registered" and draw(st.booleans()):
            fact["data"].pop("timezone", None)  # an older writer kept no default, or a null
            if draw(st.booleans()):
                fact["data"]["timezone"] = None
            for field in ("language", "email"):
                if field not in fact["data"] and draw(st.booleans()):
                    fact["data"][field] = None
        if kind == "objection.recorded" and draw(st.booleans()):
            fact["data"].pop("channels", None)
            fact["data"]["purpose"] = draw(st.sampled_from([None, "commercial"]))
            if fact["data"]["purpose"] == "commercial" and draw(st.booleans()):
                del fact["data"]["purpose"]
        facts.append(fact)
    # A merge of two registered people, maybe undone and done again, among the other facts.
    at = prelude - 1
    for kind in draw(st.sampled_from([(), ("customer.merged",), ("customer.merged", "customer.unmerged"),
                                      ("customer.merged", "customer.unmerged", "customer.merged")])):
        at = draw(st.integers(at + 1, len(facts)))
        facts.insert(at, _fact(kind, 200 + at, {"customer_id": f"C-{registered[0]}"},
                               draw(st.sampled_from(MOMENTS)), {"from": {"customer_id": f"C-{registered[1]}"}}))
    cuts = sorted(draw(st.lists(st.integers(1, len(facts)), max_size=3, unique=True)))
    batches = [facts[a:b] for a, b in zip([0, *cuts], [*cuts, len(facts)], strict=True) if facts[a:b]]
    forget = draw(st.one_of(st.none(), st.integers(1, PEOPLE)))
    return batches, forget


@PROPERTY
@given(ledger=_ledgers())
def test_generated_ledgers(ledger: tuple[list[list[dict[str, Any]]], int | None]) -> None:
    batches, forget = ledger
    with tempfile.TemporaryDirectory(dir=FAST_DIR) as tmp:
        journey = open_journey(Path(tmp) / "ledger")
        try:
            for batch in batches:
                journey.ledger.append(list(enumerate(batch)))
                journey.project()
            con = journey.projections.con
            if forget is not None and journey.projections.resolve(f"customer_id:C-{forget}"):
                remembered = _forget(journey, f"customer_id:C-{forget}", Path(tmp))
                assert remembered.num_rows == 1
                _assert_forgotten_rows_match(journey, remembered, Path(tmp))
            else:
                _assert_sql_rewrites_the_same_rows(con)
        finally:
            journey.close()


# ----------------------------------------------------------------------- the ledger-id test


_PIECES = st.lists(st.sampled_from(["0", "a", "F", "-", "{", "}", "urn:", "uuid:", " ", "\u00a0", "\x1c",
                                     "+", "_", "0x", "\u0663", "g", "0123456789abcdef"]), max_size=14)
#: Texts around the shapes ``uuid.UUID`` reads: canonical ones, and odd pieces before, inside and
#: after 32 or 36 characters of hex.
_TEXTS = st.one_of(
    st.uuids().map(str), st.uuids().map(lambda u: u.hex),
    st.uuids().map(lambda u: "urn:uuid:" + u.hex), st.uuids().map(lambda u: "{" + str(u) + "}"),
    st.builds("".join, _PIECES),
    st.builds(lambda before, u, after, size: ("".join(before) + u.hex + str(u) + "".join(after))[:size],
              _PIECES, st.uuids(), _PIECES, st.sampled_from([32, 36])),
    st.builds(lambda before, u, after, size: ("".join(before) + str(u) + "".join(after))[-size:],
              _PIECES, st.uuids(), _PIECES, st.sampled_from([32, 36])))


@settings(max_examples=60, deadline=None)
@given(texts=st.lists(_TEXTS, min_size=1, max_size=40))
def test_the_ledger_id_test_reads_what_python_reads(texts: list[str]) -> None:
    con = duckdb.connect()
    try:
        found = con.execute(f"SELECT t, {sql_customers.ledger_uuid_sql('t')} FROM unnest(?::VARCHAR[]) AS u(t)",
                            [texts]).fetchall()
    finally:
        con.close()
    assert sorted(found) == sorted((text, identity.ledger_uuid(text) is not None) for text in texts)
