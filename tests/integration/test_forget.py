"""Erasure by crypto-shredding (GDPR art. 17), on both real event stores (SQLite, PostgreSQL).

After ``forget`` the events stay where they are and the chains still verify, but no personal
field of the customer can be read anywhere: not in the store's files or tables, not in the
projections, not after a rebuild; the analysts' counts remain.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest

from domain import identity
from journey.bootstrap import Journey, bootstrap
from journey.config import Settings
from journey.references import reference_key
from ledger import chain
from ledger.application import decode_notification
from projections.customer_view import render
from replay import diff, rebuild
from tests.ledgers import open_journey, record

NAME = "Zuriñe Etxeberria"
PHONE = "+34611222333"
HANDLE = "@zurietxe"
NUMBER = "C-9071"
SECRET = (NAME.encode(), b"611222333", HANDLE.encode(), NUMBER.encode(), b"Calle Mayor")

REG = {"type": "customer.registered", "id": "r1", "source": "crm", "customer": {"customer_id": NUMBER},
       "occurred_at": "2026-01-03T10:00:00+01:00",
       "data": {"name": NAME, "phone": PHONE, "twitter": HANDLE,
                "address": {"street": "Calle Mayor", "number": "7", "postal_code": "28013", "city": "Madrid"}}}
TWEET = {"type": "social.mention", "id": "t1", "source": "tw", "customer": {"twitter": HANDLE},
         "occurred_at": "2026-01-01T10:00:00+01:00", "data": {"network": "twitter", "text": "hola, soy " + NAME}}
CALL = {"type": "call.outbound", "id": "c1", "source": "cc", "customer": {"phone": "611222333"},
        "occurred_at": "2026-01-02T10:00:00+01:00", "data": {"purpose": "commercial"}, "department": "sales"}
CASE = {"type": "case.opened", "id": "k1", "source": "crm", "customer": {"customer_id": NUMBER},
        "occurred_at": "2026-01-04T10:00:00+01:00", "data": {"case_id": "K-1", "kind": "complaint",
                                                             "subject": "broken phone of " + NAME}}
OTHER = {"type": "call.inbound", "id": "o1", "source": "cc", "customer": {"phone": "+34699000111"},
         "occurred_at": "2026-01-02T11:00:00+01:00", "data": {}}

Opener = Callable[[], Journey]


@pytest.fixture(params=[pytest.param("sqlite"), pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Opener, Any]]:
    """(kind, a function that opens a ledger on one empty store, the PostgreSQL params or None)."""
    opened: list[Journey] = []
    params = None
    if request.param == "sqlite":
        def open_one() -> Journey:
            return open_journey(tmp_path)
    else:
        params = request.getfixturevalue("postgres_db")
        url = params.url

        def open_one() -> Journey:
            return bootstrap(Settings(data_dir=tmp_path / f"ledger{len(opened)}", store="postgres",
                                      postgres_url=url))

    def opener() -> Journey:
        opened.append(open_one())
        return opened[-1]

    yield request.param, opener, params
    for j in opened:
        j.close()


def _raw_files(paths: list[Path]) -> bytes:
    return b"".join(p.read_bytes() for p in paths if p.exists())


def _postgres_dump(params: Any) -> bytes:
    """Every row of every table of the database, as text."""
    out = []
    with psycopg.connect(params.dsn) as conn:
        tables = conn.execute("SELECT table_schema, table_name FROM information_schema.tables "
                              "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')").fetchall()
        assert tables
        for schema, table in tables:
            rows = conn.execute(f'SELECT t::text FROM "{schema}"."{table}" t').fetchall()
            out.extend(r[0] for r in rows)
    return "\n".join(out).encode()


def _leaks(blob: bytes) -> list[bytes]:
    return [s for s in SECRET if s in blob]


def _channel_counts(journey: Journey) -> list[tuple[Any, ...]]:
    return journey.projections.con.execute(
        "SELECT channel, type, count(*) FROM events GROUP BY ALL ORDER BY ALL").fetchall()


def test_forget_erases_every_personal_field_and_keeps_the_counts(store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    kind, opener, params = store
    journey = opener()
    record(journey, TWEET, CALL, OTHER)
    record(journey, REG, CASE)
    journey.project()
    customer_id = str(identity.customer_uuid(NUMBER))
    projections = journey.projections
    assert projections.resolve(reference_key(PHONE)) == customer_id
    view = render(projections.load_views([customer_id])[customer_id])
    assert (view["name"], view["contact"]["phone"]) == (NAME, PHONE)
    counts_before = _channel_counts(journey)
    # Before: encrypted in the event store, readable through the mapper.
    if kind == "sqlite":
        events_blob = journey.settings.sqlite_path.read_bytes()
        assert NAME.encode() not in events_blob
    stored = [decode_notification(journey.app, n).fact for n in journey.app.index.facts_of(UUID(customer_id))]
    assert any(f["data"].get("name") == NAME for f in stored)

    result = journey.ledger.forget(reference_key(PHONE), "art. 17 request")
    assert result is not None and not result.already
    assert str(result.customer_id) == customer_id
    assert set(map(str, result.records)) == {customer_id, str(identity.prospect_uuid(f"twitter:{HANDLE}")),
                                             str(identity.prospect_uuid(f"phone:{PHONE}"))}
    journey.project()

    # The event store: events in place, nothing personal readable, chains intact.
    facts = [decode_notification(journey.app, n).fact for n in journey.app.index.facts_of(UUID(customer_id))]
    assert [f["type"] for f in facts][-1] == "customer.forgotten"
    assert all(f.get("erased") for f in facts if f["type"] != "customer.forgotten")
    assert all(f["data"].get("name") is None for f in facts)
    report = chain.verify_store(journey.app.recorder)
    assert report.intact, report.as_dict()
    if kind == "sqlite":
        path = journey.settings.sqlite_path
        assert _leaks(_raw_files([path, Path(f"{path}-wal")])) == []
    else:
        assert _leaks(_postgres_dump(params)) == []
    # Another ledger on the same store cannot read them either (no cached key).
    other = opener()
    again = [decode_notification(other.app, n).fact for n in other.app.index.facts_of(UUID(customer_id))]
    assert all(f["data"].get("name") is None and f["customer"].get("phone") is None for f in again)

    # The projections: a tombstone, counts kept, nobody found by their identities.
    assert projections.resolve(reference_key(PHONE)) is None
    assert projections.resolve(reference_key(HANDLE)) is None
    tomb = render(projections.load_views([customer_id])[customer_id])
    assert tomb["forgotten"] is True and tomb["name"] is None and tomb["identities"] == []
    assert tomb["cases"] == [] and tomb["kind"] == "customer" and tomb["kept"]["cases"] == 1
    assert tomb["counts"]["by_channel"] == {"phone": 1, "social": 1}
    row = projections.con.execute("SELECT name, phone, events, cases FROM customers WHERE customer_id = ?",
                                  [customer_id]).fetchall()
    assert row == [(None, None, 7, 1)]
    assert projections.con.execute("SELECT count(*) FROM events WHERE customer_id = ? AND "
                                   "(ref IS NOT NULL OR data IS NOT NULL)", [customer_id]).fetchall() == [(0,)]
    assert projections.con.execute("SELECT count(*) FROM cases WHERE customer_id = ?",
                                   [customer_id]).fetchall() == [(0,)]
    after = [c for c in _channel_counts(journey) if c[1] != "customer.forgotten"]
    assert after == counts_before
    # The other customer is untouched.
    assert projections.resolve(reference_key("+34699000111")) is not None

    live = Path(projections.path)
    projections.con.execute("CHECKPOINT")
    assert _leaks(_raw_files([live, Path(f"{live}.wal")])) == []

    # A rebuild (every event read again, the personal parts undecryptable) equals live.
    rebuilt = rebuild.from_store(journey.app, tmp_path / "rebuild")
    journey.close()
    result_diff = diff.diff(live, rebuilt.path)
    assert result_diff.same, [t.to_json() for t in result_diff.tables if not t.same]
    assert _leaks(_raw_files([rebuilt.path])) == []


def test_nothing_more_is_recorded_about_a_forgotten_customer(store) -> None:  # type: ignore[no-untyped-def]
    _, opener, _ = store
    journey = opener()
    record(journey, REG)
    assert journey.ledger.forget(reference_key(NUMBER), "asked") is not None
    later = dict(CALL, id="c2", customer={"customer_id": NUMBER})
    result = record(journey, later)
    assert result.recorded == 0 and "forgotten" in result.rejected[0].reason
    again = journey.ledger.forget("ledger:" + str(identity.customer_uuid(NUMBER)), "twice")
    assert again is not None and again.already
    assert journey.ledger.forget(reference_key("+34600999999"), "nobody") is None


def test_a_key_created_meanwhile_by_another_writer_is_used_after_the_retry(store) -> None:  # type: ignore[no-untyped-def]
    _, opener, _ = store
    first, second = opener(), opener()
    prospect = identity.prospect_uuid(f"phone:{PHONE}")
    second.app.keys.prefetch([prospect])  # the second writer has seen no key for the record
    record(first, CALL)
    result = record(second, dict(CALL, id="c2"))  # its new key conflicts; the retry uses the stored one
    assert result.recorded == 1
    facts = [decode_notification(first.app, n).fact for n in first.app.index.facts_of(prospect)]
    assert [f["customer"]["phone"] for f in facts] == [PHONE, PHONE]
    assert not any(f.get("erased") for f in facts)


def test_a_published_fact_matches_its_sealed_stored_event_before_and_after_forgetting(store) -> None:  # type: ignore[no-untyped-def]
    """journey verify --topic compares Kafka values with the stored bytes: the public parts."""
    import orjson

    _, opener, _ = store
    journey = opener()
    record(journey, REG)
    [n] = journey.app.index.facts_of(identity.customer_uuid(NUMBER))
    stored = orjson.loads(n.state)["fact"]
    assert "$personal" in stored and stored["data"]["name"] is None
    published = decode_notification(journey.app, n).fact
    assert published["data"]["name"] == NAME
    assert chain._same_fact(published, stored)
    assert not chain._same_fact({**published, "department": "x"}, stored)
    journey.ledger.forget(reference_key(NUMBER), "asked")
    erased = decode_notification(journey.app, n).fact
    assert erased["erased"] is True and chain._same_fact(erased, stored)
