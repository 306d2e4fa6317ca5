"""The bulk decoder (ledger/decoding.py) gives every reader of the log what eventsourcing's mapper
gives: the same facts, erased where the key is gone, and a forgotten key no longer used once the
reader meets the ``customer.forgotten`` event. Real SQLite files, facts written by the ledger."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import datetime
from pathlib import Path
from typing import Any
from unittest import mock
from uuid import UUID

import orjson
import pytest
from eventsourcing.compressor import ZlibCompressor
from eventsourcing.persistence import Mapper
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain import catalogue, personal
from journey.bootstrap import Journey, bootstrap
from journey.config import Settings
from journey.references import reference_key
from ledger.application import (
    JourneyApplication,
    StoredFact,
    decode_notifications,
    decode_rows,
    history_of,
    sqlite_env,
)
from ledger.decoding import Row, decode_states
from ledger.writer import Ledger
from tests.ledgers import append, open_journey, record
from tests.strategies import PEOPLE, fact_lists

#: Real SQLite files, on a RAM disk where there is one (the properties are about results).
FAST_DIR = "/dev/shm" if Path("/dev/shm").is_dir() else None
PROPERTY = settings(max_examples=15, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

NUMBER = "C-7"
REG = {"type": "customer.registered", "id": "r1", "source": "crm", "customer": {"customer_id": NUMBER},
       "occurred_at": "2026-01-01T10:00:00+01:00", "department": "sales",
       "data": {"name": "Ana Pérez", "phone": "+34600111222", "email": "ana@example.com"}}
CALL = {"type": "call.inbound", "id": "c1", "source": "cc", "customer": {"customer_id": NUMBER},
        "occurred_at": "2026-01-02T10:00:00+01:00", "department": "customer_care",
        "data": {"reason": "question", "notes": "asked about the bill"}}

#: Undeclared fields, as sources send them: sealed whatever their name, nesting or case.
_extra = st.dictionaries(
    st.sampled_from(["notes", "iban", "Email", "contact", "score"]),
    st.one_of(st.none(), st.text(max_size=12), st.integers(-5, 5),
              st.dictionaries(st.sampled_from(["mobile", "email"]), st.text(max_size=8), max_size=2)),
    max_size=3)


@contextmanager
def written_before_encryption() -> Iterator[None]:
    """Facts recorded inside are stored whole, without an envelope, as before encryption."""
    with mock.patch.object(personal, "split", lambda fact: (dict(fact), {})):
        yield


def rows_of(journey: Journey) -> list[Row]:
    return list(journey.app.recorder.select_rows(0, 1 << 30))  # type: ignore[attr-defined]


def by_mapper(journey: Journey, rows: list[Row]) -> list[tuple[Any, ...]]:
    """eventsourcing's decoding, event by event: the definition the decoder must agree with."""
    journey.app.keys.reset()
    out = []
    for n in notifications(journey, rows):
        event: Any = journey.app.mapper.to_domain_event(n)
        out.append((n.id, n.originator_id, n.originator_version, event.timestamp, event.fact))
    return out


def notifications(journey: Journey, rows: list[Row]) -> list[Any]:
    by_id = {n.id: n for n in journey.app.recorder.select_notifications(1, 1 << 30)}
    return [by_id[r[0]] for r in rows]


def assert_history_as_notifications(journey: Journey, customer: str) -> None:
    """``history_of`` (the recorder's rows of one customer) reads what decoding the
    customer's notifications reads."""
    journey.app.keys.reset()
    expected = plain(decode_notifications(journey.app, journey.app.index.facts_of(UUID(customer))))
    assert expected
    journey.app.keys.reset()
    assert plain(history_of(journey.app)(customer)) == expected


def plain(facts: list[StoredFact]) -> list[tuple[Any, ...]]:
    for sf in facts:  # the types readers rely on, not only equal values
        assert type(sf.stream_id) is UUID and isinstance(sf.recorded_at, datetime)
    return [(sf.position, sf.stream_id, sf.stream_version, sf.recorded_at, sf.fact) for sf in facts]


@PROPERTY
@given(facts=fact_lists(), extras=st.lists(_extra, min_size=30, max_size=30),
       clear=st.lists(st.booleans(), min_size=30, max_size=30),
       forget=st.one_of(st.none(), st.tuples(st.sampled_from(PEOPLE), st.sampled_from(["customer_id", "phone"]))),
       cuts=st.lists(st.integers(1, 40), max_size=4), slice_rows=st.integers(1, 6))
def test_decoded_rows_are_the_facts_the_mapper_gives(
        facts: list[dict[str, Any]], extras: list[dict[str, Any]], clear: list[bool],
        forget: tuple[dict[str, str], str] | None, cuts: list[int], slice_rows: int) -> None:
    """Sealed facts, facts stored before encryption, a forgotten customer's facts and the
    ``customer.forgotten`` itself decode alike, however the rows are cut into batches."""
    with tempfile.TemporaryDirectory(dir=FAST_DIR) as tmp:
        journey = open_journey(Path(tmp))
        try:
            written = [{**f, "data": {**f["data"], **extras[i]}} for i, f in enumerate(facts)]
            at = 0
            while at < len(written):  # runs of facts stored whole or sealed, in their order
                end = at + 1
                while end < len(written) and clear[end] == clear[at]:
                    end += 1
                with written_before_encryption() if clear[at] else nullcontext():
                    append(journey, written[at:end])
                at = end
            if forget is not None:
                who, kind = forget
                journey.ledger.forget(reference_key(who[kind]), "asked")
            rows = rows_of(journey)
            expected = by_mapper(journey, rows)
            assert expected  # something was recorded

            journey.app.keys.reset()
            assert plain(decode_notifications(journey.app, notifications(journey, rows))) == expected
            journey.app.keys.reset()
            assert plain(decode_rows(journey.app, rows)) == expected
            journey.app.keys.reset()
            batches, at = [], 0
            for cut in cuts:
                batches.append(rows[at:at + cut])
                at += cut
            batches.append(rows[at:])
            assert plain([sf for batch in batches for sf in decode_rows(journey.app, batch)]) == expected
            journey.app.keys.reset()  # parsed and decoded a few rows at a time, keys read per slice
            assert plain(decode_states(journey.app.keys, rows, slice_rows=slice_rows)) == expected

            journey.app.keys.reset()
            forgotten = {f["customer_uuid"] for *_, f in expected
                         if journey.app.keys.is_forgotten(UUID(f["customer_uuid"]))}
            assert bool(forgotten) == any(f["type"] == "customer.forgotten" for *_, f in expected)
            for row, (*_, fact) in zip(rows, expected, strict=True):
                sealed = personal.ENVELOPE in orjson.loads(row[4])["fact"]
                if fact["customer_uuid"] in forgotten and sealed:  # the forgotten person's records
                    assert fact["erased"] is True and fact["id"] == fact["event_id"]
                else:
                    assert "erased" not in fact and personal.ENVELOPE not in fact
        finally:
            journey.close()


def test_a_forgotten_customers_facts_read_back_erased(tmp_path: Path) -> None:
    journey = open_journey(tmp_path)
    try:
        record(journey, REG, CALL)
        before = decode_rows(journey.app, rows_of(journey))
        assert [sf.fact["data"].get("name") for sf in before] == ["Ana Pérez", None]
        assert before[1].fact["data"]["notes"] == "asked about the bill"
        journey.ledger.forget(reference_key(NUMBER), "art. 17 request")
        rows = rows_of(journey)
        after = decode_rows(journey.app, rows)
        assert [sf.fact["type"] for sf in after] == ["customer.registered", "call.inbound",
                                                     "customer.forgotten"]
        for sf in after[:2]:
            assert sf.fact["erased"] is True
            assert sf.fact["customer"]["customer_id"] is None and sf.fact["id"] == sf.fact["event_id"]
        assert after[0].fact["data"]["name"] is None and after[1].fact["data"]["notes"] is None
        assert b"Ana" not in orjson.dumps([sf.fact for sf in after])
        assert plain(after) == by_mapper(journey, rows)
        assert_history_as_notifications(journey, after[0].fact["customer_uuid"])
    finally:
        journey.close()


def test_a_customer_forgotten_in_a_batch_stops_the_use_of_the_key_for_the_rest_of_it(tmp_path: Path) -> None:
    """A long-running reader holds the keys it used. Once another process forgets the customer,
    the reader still opens that customer's facts with its cached key until it meets the
    ``customer.forgotten`` event; from there on, in the same batch, they read erased."""
    writer, *readers = (open_journey(tmp_path) for _ in range(4))
    try:
        record(writer, REG, CALL)
        for reader in readers:  # each reader has decoded the customer's facts: its key is cached
            assert not any(sf.fact.get("erased") for sf in decode_rows(reader.app, rows_of(reader)))
        writer.ledger.forget(reference_key(NUMBER), "asked")
        registered, call, forgotten = (r[0] for r in rows_of(writer))
        rows_reader, notes_reader, stale_reader = readers

        def batch(reader: Journey, positions: list[int]) -> list[Row]:
            found = {row[0]: row for row in reader.app.recorder.select_rows(0, 100)}  # type: ignore[attr-defined]
            return [found[p] for p in positions]

        # Without the event in the batch the cached key is still used (as eventsourcing's mapper does).
        stale = decode_rows(stale_reader.app, batch(stale_reader, [registered, call]))
        assert [sf.fact.get("erased") for sf in stale] == [None, None]

        order = [registered, forgotten, call]
        got = decode_rows(rows_reader.app, batch(rows_reader, order))
        assert [sf.fact.get("erased") for sf in got] == [None, None, True]
        assert got[0].fact["data"]["name"] == "Ana Pérez" and got[2].fact["data"]["notes"] is None
        by_notes = decode_notifications(notes_reader.app,
                                        notifications(notes_reader, batch(notes_reader, order)))
        assert plain(by_notes) == plain(got)
        # The mapper, reading the same order with a fresh ring, erases all three: the key is gone.
        assert [f.get("erased") for *_, f in by_mapper(writer, batch(writer, order))] == [True, None, True]
    finally:
        for j in (writer, *readers):
            j.close()


class _Compressed(JourneyApplication):
    """A store whose mapper compresses each stored state (what eventsourcing's COMPRESSOR_TOPIC
    configures for its own mapper)."""

    def construct_mapper(self) -> Mapper[UUID]:
        mapper = super().construct_mapper()
        mapper.compressor = ZlibCompressor()
        return mapper


def test_a_store_with_a_compressor_is_decoded_by_the_mapper(tmp_path: Path) -> None:
    """The state of a mapper with a compressor (or a cipher of the whole state) is not the
    transcoder's JSON: the decoder hands such rows to the mapper."""
    app = _Compressed(env=sqlite_env(str(tmp_path / "ledger.sqlite")))
    try:
        result = Ledger(app).append([(1, catalogue.validate(REG)), (2, catalogue.validate(CALL))])
        assert result.recorded == 2
        rows: list[Row] = list(app.recorder.select_rows(0, 100))  # type: ignore[attr-defined]
        assert not rows[0][4].startswith(b"{")  # compressed
        facts = decode_rows(app, rows)
        assert [sf.fact["data"].get("name") for sf in facts] == ["Ana Pérez", None]
        ns = app.recorder.select_notifications(1, 100)
        events: list[Any] = [app.mapper.to_domain_event(n) for n in ns]
        assert plain(facts) == [(n.id, n.originator_id, n.originator_version, e.timestamp, e.fact)
                                for n, e in zip(ns, events, strict=True)]
        assert plain(decode_notifications(app, ns)) == plain(facts)
    finally:
        app.close()


@pytest.mark.postgres
def test_postgres_rows_decode_as_its_notifications(postgres_db: Any, tmp_path: Path) -> None:
    """PostgreSQL's ``select_rows`` reads the same events as ``select_notifications`` (stream
    ids as UUIDs), and the catch-up decodes them to the mapper's facts."""
    journey = bootstrap(Settings(data_dir=tmp_path, store="postgres", postgres_url=postgres_db.url))
    try:
        record(journey, REG, CALL)
        record(journey, dict(CALL, id="c2", customer={"customer_id": "C-8"}))
        journey.ledger.forget(reference_key(NUMBER), "asked")
        rows = rows_of(journey)
        assert [r[0] for r in rows] == [n.id for n in journey.app.recorder.select_notifications(1, 100)]
        assert all(type(r[1]) is UUID and type(r[4]) is bytes for r in rows)
        between: Any = journey.app.recorder
        assert between.select_rows(rows[0][0], 100, rows[2][0]) == rows[1:3]
        assert between.select_rows(rows[0][0], 1) == rows[1:2]
        facts = decode_rows(journey.app, rows)
        assert plain(facts) == by_mapper(journey, rows)
        assert [sf.fact.get("erased") for sf in facts] == [True, True, None, None]
        for customer in {sf.fact["customer_uuid"] for sf in facts}:
            assert_history_as_notifications(journey, customer)
    finally:
        journey.close()
