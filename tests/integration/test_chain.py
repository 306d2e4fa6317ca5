"""Tamper evidence: the hash chain written with the events, checked against edits made behind the
ledger's back (straight SQL on the store), on both stores."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import StoredEvent
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from journey import demo_data
from journey.bootstrap import Journey, bootstrap
from journey.config import Settings
from ledger import chain
from ledger.index import IndexChanges
from tests.ledgers import append, open_journey
from tests.legacy_store import legacy_journey


class Store:
    """A ledger plus a raw connection to its database, as an attacker with SQL access has."""

    def __init__(self, journey: Journey, kind: str, url: str | None = None) -> None:
        self.journey, self.kind, self.url = journey, kind, url
        self.table = journey.app.recorder.events_table_name  # type: ignore[attr-defined]
        self.pos = "rowid" if kind == "sqlite" else "notification_id"
        #: the links: on SQLite part of each event's row of journey_log (ids as 16 bytes)
        self.links_table = "journey_log" if kind == "sqlite" else "journey_chain"

    def sql(self, text: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if self.kind == "sqlite":
            con = sqlite3.connect(self.journey.settings.sqlite_path)
            try:
                rows = con.execute(text, params).fetchall()
                con.commit()
                return rows
            finally:
                con.close()
        import psycopg

        with psycopg.connect(self.url or "", autocommit=True) as conn:
            cur = conn.execute(text.replace("?", "%s"), params)  # type: ignore[arg-type]
            return list(cur.fetchall()) if cur.description else []

    def state(self, position: int) -> bytes:
        [(state,)] = self.sql(f"SELECT state FROM {self.table} WHERE {self.pos} = ?", (position,))
        return bytes(state)

    def set_state(self, position: int, state: bytes) -> None:
        self.sql(f"UPDATE {self.table} SET state = ? WHERE {self.pos} = ?", (state, position))

    def verify(self, *checkpoints: chain.Checkpoint) -> chain.Report:
        return chain.verify_store(self.journey.app.recorder, checkpoints, batch=97)

    def links(self) -> list[tuple[int, str, str, int]]:
        """(position, customer, stream, version) of every chain row, in position order."""
        # (on SQLite an event without an index entry has no customer: its stream is its chain's)
        rows = self.sql("SELECT position, coalesce(customer_id, stream_id), stream_id, stream_version "
                        f"FROM {self.links_table} ORDER BY position")
        return [(int(p), self.hex(c), self.hex(s), int(v)) for p, c, s, v in rows]

    @staticmethod
    def hex(value: Any) -> str:
        return UUID(bytes=value).hex if isinstance(value, bytes) else UUID(str(value)).hex

    def key(self, customer: str) -> Any:
        """A customer id as the links table keeps it."""
        return UUID(customer).bytes if self.kind == "sqlite" else UUID(customer)

    def rechain(self) -> None:
        """What a careful attacker does after editing: recompute journey_chain and its heads so
        that they agree with the edited events."""
        owners = chain.StoreReader(self.journey.app.recorder).fact_owners()
        rows = self.sql(f"SELECT {self.pos}, originator_id, originator_version, state FROM {self.table} "
                        f"ORDER BY {self.pos}")
        heads: dict[str, tuple[int, bytes]] = {}
        for p, o, v, state in rows:
            stream = UUID(str(o)).hex
            customer = owners.get((stream, int(v)), stream)
            prev = heads.get(customer, (0, chain.GENESIS))[1]
            digest = chain.link_hash(prev, UUID(stream), int(v), bytes(state))
            heads[customer] = (int(p), digest)
            self.sql(f"UPDATE {self.links_table} SET prev_hash = ?, hash = ? WHERE position = ?",
                     (prev, digest, p))
        for customer, (p, digest) in heads.items():
            key: Any = customer if self.kind == "sqlite" else UUID(customer)
            self.sql("UPDATE journey_chain_heads SET position = ?, hash = ? WHERE customer_id = ?",
                     (p, digest, key))


@pytest.fixture(params=[pytest.param("sqlite"), pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        journey = open_journey(tmp_path)
        url = None
    else:
        url = request.getfixturevalue("postgres_db").url
        journey = bootstrap(Settings(data_dir=tmp_path, store="postgres", postgres_url=url))
    try:
        yield Store(journey, request.param, url)
    finally:
        journey.close()


FACTS = list(demo_data.generate(12, seed=5))


@pytest.fixture
def filled(store: Store) -> Store:
    summary = append(store.journey, FACTS, batch_size=50)
    assert summary.recorded > 100 and not summary.rejected
    return store


def _customer_with_events(store: Store, at_least: int = 3) -> tuple[str, list[int]]:
    by_customer: dict[str, list[int]] = {}
    for position, customer, _, _ in store.links():
        by_customer.setdefault(customer, []).append(position)
    customer, positions = max(by_customer.items(), key=lambda kv: len(kv[1]))
    assert len(positions) >= at_least
    return customer, positions


def test_untouched_history_verifies_and_every_event_is_chained(filled: Store) -> None:
    report = filled.verify()
    assert report.intact, report.as_dict()
    head = filled.journey.app.recorder.max_notification_id()
    assert report.events == report.chained == head
    assert report.covered_from == 1
    # every link names the customer the fact resolved to
    owners = chain.StoreReader(filled.journey.app.recorder).fact_owners()
    assert all(owners[(s, v)] == c for _, c, s, v in filled.links())


def test_an_edited_event_is_named(filled: Store) -> None:
    customer, positions = _customer_with_events(filled)
    target = positions[1]
    state = filled.state(target)
    filled.set_state(target, state.replace(b'"', b"'", 1) if b'"' in state else state + b" ")
    report = filled.verify()
    assert not report.intact
    first = report.first
    assert first is not None
    assert (first.position, first.customer_id) == (target, customer)
    assert "stored bytes" in first.what
    assert report.problem_count == 2  # the link, and the stored head (no cascade down the chain)
    filled.set_state(target, state)
    assert filled.verify().intact


def test_a_deleted_event_is_found_with_or_without_its_chain_row(filled: Store) -> None:
    customer, positions = _customer_with_events(filled)
    victim, after = positions[1], positions[2]
    filled.sql(f"DELETE FROM {filled.table} WHERE {filled.pos} = ?", (victim,))
    first = filled.verify().first
    assert first is not None and (first.position, first.customer_id) == (victim, customer)
    assert "deleted" in first.what
    filled.sql(f"DELETE FROM {filled.links_table} WHERE position = ?", (victim,))
    first = filled.verify().first
    assert first is not None and (first.position, first.customer_id) == (after, customer)
    assert "prev_hash" in first.what


def test_reordered_or_edited_chain_rows_are_found(filled: Store) -> None:
    customer, positions = _customer_with_events(filled)
    a, b = positions[0], positions[1]
    rows = filled.sql(f"SELECT position, prev_hash, hash FROM {filled.links_table} "
                      "WHERE position IN (?, ?) ORDER BY position", (a, b))
    (_, prev_a, hash_a), (_, prev_b, hash_b) = rows
    filled.sql(f"UPDATE {filled.links_table} SET prev_hash = ?, hash = ? WHERE position = ?", (prev_b, hash_b, a))
    filled.sql(f"UPDATE {filled.links_table} SET prev_hash = ?, hash = ? WHERE position = ?", (prev_a, hash_a, b))
    first = filled.verify().first
    assert first is not None and (first.position, first.customer_id) == (a, customer)
    # put back, then point a link at another customer
    filled.sql(f"UPDATE {filled.links_table} SET prev_hash = ?, hash = ? WHERE position = ?", (prev_a, hash_a, a))
    filled.sql(f"UPDATE {filled.links_table} SET prev_hash = ?, hash = ? WHERE position = ?", (prev_b, hash_b, b))
    assert filled.verify().intact
    other = next(c for _, c, _, _ in filled.links() if c != customer)
    filled.sql(f"UPDATE {filled.links_table} SET customer_id = ? WHERE position = ?", (filled.key(other), b))
    first = filled.verify().first
    assert first is not None and first.position == b and "names customer" in first.what


def test_a_checkpoint_catches_an_old_edit_even_when_the_chain_was_rewritten(filled: Store,
                                                                             tmp_path: Path) -> None:
    report = filled.verify()
    path = tmp_path / "cp.json"
    chain.checkpoint_of(report).write(path)
    checkpoint = chain.read_checkpoint(path)
    assert checkpoint.position == report.head and len(checkpoint.heads) == report.customers
    with pytest.raises(FileExistsError):
        chain.checkpoint_of(report).write(path)
    # the customer whose history the checkpoint covers (chosen before more is appended: the
    # busiest customer afterwards may be a new one, with nothing the checkpoint covers)
    customer, positions = _customer_with_events(filled)
    # more history after the checkpoint: still matches
    more = list(demo_data.generate(3, seed=99))
    append(filled.journey, more, batch_size=20)
    assert filled.verify(checkpoint).intact

    target = next(p for p in positions if p <= checkpoint.position)
    state = filled.state(target)
    filled.set_state(target, state.replace(b"20", b"19", 1))
    filled.rechain()
    assert filled.verify().intact  # the attacker fooled the chain alone...
    broken = filled.verify(checkpoint)  # ...but not the checkpoint
    assert not broken.intact
    assert broken.first is not None and broken.first.customer_id == customer
    assert "was changed" in broken.first.what
    assert broken.checkpoints[0]["matches"] is False


def test_a_deleted_event_before_a_checkpoint_is_caught_after_a_rewrite(filled: Store, tmp_path: Path) -> None:
    checkpoint = chain.checkpoint_of(filled.verify())
    customer, positions = _customer_with_events(filled)
    last = positions[-1]
    filled.sql(f"DELETE FROM {filled.table} WHERE {filled.pos} = ?", (last,))
    filled.sql(f"DELETE FROM {filled.links_table} WHERE position = ?", (last,))
    filled.rechain()
    report = filled.verify(checkpoint)
    assert not report.intact
    assert any(p.customer_id == customer and "deleted or moved" in p.what for p in report.problems)


def test_an_edited_checkpoint_file_is_refused(filled: Store, tmp_path: Path) -> None:
    path = tmp_path / "cp.json"
    chain.checkpoint_of(filled.verify()).write(path)
    path.write_text(path.read_text().replace('"position": ', '"position": 1', 1))
    with pytest.raises(chain.CheckpointError, match="digest"):
        chain.read_checkpoint(path)


def test_a_store_from_before_the_chain_is_covered_from_the_first_event_after(tmp_path: Path) -> None:
    with legacy_journey(tmp_path, chained=False) as old:
        append(old, FACTS[:40], batch_size=20)
    con = sqlite3.connect(tmp_path / "ledger.sqlite")
    assert not {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE name LIKE 'journey_chain%'")}
    con.close()
    journey = open_journey(tmp_path)
    try:
        old_head = journey.app.recorder.max_notification_id() or 0
        assert old_head and journey.app.index.fact_count() == old_head  # type: ignore[attr-defined]
        assert chain.verify_store(journey.app.recorder).covered_from is None
        append(journey, FACTS[40:], batch_size=20)
        report = chain.verify_store(journey.app.recorder)
        assert report.intact and report.covered_from == old_head + 1
        assert report.chained == report.events - old_head
    finally:
        journey.close()


def test_events_written_without_an_index_entry_are_chained_under_their_stream(store: Store) -> None:
    stream = uuid4()
    recorder: Any = store.journey.app.recorder
    recorder.insert_events([StoredEvent(stream, v, "tests:Nothing", b'{"v":%d}' % v) for v in (1, 2)])
    assert [(c, s) for _, c, s, _ in store.links()] == [(stream.hex, stream.hex)] * 2
    assert store.verify().intact


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_single_byte_change_of_any_stored_event_is_found(tmp_path_factory: pytest.TempPathFactory,
                                                             data: st.DataObject) -> None:
    journey = _shared_ledger(tmp_path_factory)
    store = Store(journey, "sqlite")
    head = journey.app.recorder.max_notification_id() or 0
    position = data.draw(st.integers(1, head), label="position")
    state = store.state(position)
    index = data.draw(st.integers(0, len(state) - 1), label="byte")
    flip = data.draw(st.integers(1, 255), label="xor")
    changed = bytearray(state)
    changed[index] ^= flip
    store.set_state(position, bytes(changed))
    try:
        report = store.verify()
        assert not report.intact
        assert report.first is not None and report.first.position == position
    finally:
        store.set_state(position, state)


_LEDGERS: dict[str, Journey] = {}


def _shared_ledger(factory: pytest.TempPathFactory) -> Journey:
    """One small ledger for all the property's examples (each puts its byte back)."""
    if "j" not in _LEDGERS:
        journey = open_journey(factory.mktemp("chainprop"))
        append(journey, FACTS[:60], batch_size=25)
        _LEDGERS["j"] = journey
    return _LEDGERS["j"]


@pytest.fixture(scope="module", autouse=True)
def _close_shared() -> Iterator[None]:
    yield
    for journey in _LEDGERS.values():
        journey.close()
    _LEDGERS.clear()


def test_an_index_entry_for_an_event_the_batch_does_not_hold_fails_the_batch(tmp_path: Path) -> None:
    """On SQLite an index entry is its event's row: one naming another event has no row to go
    in, so the batch fails whole instead of losing it."""
    journey = open_journey(tmp_path)
    try:
        stream, elsewhere = uuid4(), uuid4()
        recorder: Any = journey.app.recorder
        changes = IndexChanges(facts=[(str(uuid4()), stream.hex, elsewhere.hex, 1)])
        with pytest.raises(ValueError, match="names events it does not insert"):
            recorder.insert_events([StoredEvent(stream, 1, "tests:Nothing", b"{}")], index=changes)
        assert (recorder.max_notification_id() or 0) == 0 and recorder.fact_count() == 0
    finally:
        journey.close()
