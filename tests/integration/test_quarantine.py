"""A fact whose fold or whose rows raise for a reason no up-front check foresaw is isolated:
the projection quarantines it alone, in the same transaction as the position, and projects
every other fact of its batch exactly once, whether the log is read in order or record group
by record group. Real SQLite and DuckDB files."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from consumers.log_follower import catch_up, retry_quarantined
from journey import demo_data
from journey.bootstrap import bootstrap
from journey.config import Settings
from projections import derive, preparing
from projections.duckdb_store import ProjectionStore
from projections.quarantine import readable_history_of
from replay import rebuild
from tests import planted
from tests.ledgers import append, open_journey, tables

POISON = "poisoned"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    home = tmp_path_factory.mktemp("poison") / "ledger"
    facts = list(demo_data.generate(30, seed=5))
    j = open_journey(home)
    try:
        append(j, facts)
    finally:
        j.close()
    return home, facts


def poisoned_ids(facts: list[dict[str, Any]]) -> set[str]:
    """Two touchpoints kept in a view section, in the middle of the log (never a merge: the
    retry folds them in out of order, and only the fold is order-insensitive)."""
    calls = [f for f in facts if f["type"] == "social.mention"]
    return {calls[len(calls) // 3]["id"], calls[2 * len(calls) // 3]["id"]}


@pytest.mark.parametrize("where", ["rows", "derived"])
def test_a_fact_failing_for_an_unforeseen_reason_is_isolated_and_retry_applies_it_once(
        demo: tuple[Path, list[dict[str, Any]]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        where: str) -> None:
    home, facts = demo
    bad = poisoned_ids(facts)
    j = open_journey(home)
    try:
        app = j.app
        clean = ProjectionStore(tmp_path / "clean.duckdb")
        clean.history = readable_history_of(app)
        catch_up(app, clean, read_chunk=97)

        prepare, refresh = preparing.prepare, derive.refresh

        def failing_rows(facts: Any, refuse: Any = None, copied: bool | None = None) -> Any:
            if any(sf.fact["id"] in bad and sf.position not in (refuse or {}) for sf in facts):
                raise TypeError(POISON)
            return prepare(facts, refuse, copied)

        def failing_refresh(con: Any, rules: Any, customer_ids: Any) -> None:
            found = con.execute(
                "SELECT count(*) FROM events WHERE source_id IN (SELECT unnest(?::VARCHAR[])) "
                "AND customer_id IN (SELECT unnest(?::VARCHAR[]))",
                [sorted(bad), list(customer_ids)]).fetchall()
            if found[0][0]:
                raise ValueError(POISON)
            refresh(con, rules, customer_ids)

        if where == "rows":
            monkeypatch.setattr(preparing, "prepare", failing_rows)
        else:
            monkeypatch.setattr(derive, "refresh", failing_refresh)
        store = ProjectionStore(tmp_path / "projections.duckdb")
        projected = catch_up(app, store, read_chunk=97)
        head = app.recorder.max_notification_id()
        assert store.position() == head
        entries = store.quarantined()
        positions = {int(p) for (p,) in store.con.execute(
            "SELECT position FROM events").fetchall()}
        assert len(entries) == 2
        assert all(POISON in e.reason and e.reader == "projection" for e in entries)
        held = {e.position for e in entries}
        assert projected == int(clean.con.execute("SELECT count(*) FROM events").fetchall()[0][0]) - 2
        assert positions == {int(p) for (p,) in clean.con.execute(
            "SELECT position FROM events").fetchall()} - held
        for entry in entries:
            view = store.load_views([entry.customer_id or ""])[entry.customer_id or ""]
            assert view["quarantined"] == [entry.position]

        # A restart meets nothing new; then the fix (the code no longer fails) and a retry.
        assert catch_up(app, store) == 0
        monkeypatch.undo()
        result = retry_quarantined(app, store)
        assert sorted(result.applied) == sorted(held) and not result.remaining
        assert store.quarantine_count() == 0
        live, rebuilt = _tables(store), _tables(clean)
        assert live == rebuilt
        assert retry_quarantined(app, store).applied == []
        clean.close()
        store.close()
    finally:
        j.close()


def _tables(store: ProjectionStore) -> dict[str, list[Any]]:
    class Holder:
        projections = store
    found: dict[str, list[Any]] = tables(Holder)  # type: ignore[arg-type]
    return found


def test_a_quarantine_entry_commits_with_its_position(tmp_path: Path) -> None:
    """Entries are written in the transaction that moves past them: projecting again, or a
    catch-up of the same stretch after a rollback, neither loses nor doubles one."""
    home = tmp_path / "ledger"
    j = open_journey(home)
    try:
        append(j, list(demo_data.generate(5, seed=2)))
        j.project()
        customer = str(j.projections.con.execute(
            "SELECT customer_id FROM customers ORDER BY customer_id LIMIT 1").fetchall()[0][0])
        events = int(j.projections.con.execute("SELECT count(*) FROM events").fetchall()[0][0])
    finally:
        j.close()
    position = planted.plant(home / "ledger.sqlite", customer, planted.FAULTS["year-9999"](customer))
    after = planted.plant(home / "ledger.sqlite", customer, planted.state_of(planted.fact(
        customer, "call.inbound", {"outcome": "answered"}, department="care")))

    def failing_commit() -> None:
        raise KeyboardInterrupt  # a crash just before the commit

    j = open_journey(home)
    try:
        with pytest.raises(KeyboardInterrupt):
            catch_up(j.app, j.projections, before_commit=failing_commit)
        assert j.projections.quarantine_count() == 0
        assert j.projections.position() < position
        assert catch_up(j.app, j.projections) == 1  # the good fact after it
        assert [e.position for e in j.projections.quarantined()] == [position]
        assert catch_up(j.app, j.projections) == 0
        assert [e.position for e in j.projections.quarantined()] == [position]
        assert int(j.projections.con.execute("SELECT count(*) FROM events").fetchall()[0][0]) == events + 1
        assert j.projections.position() == after
    finally:
        j.close()


def test_the_relay_publishes_an_undecodable_event_as_such_and_a_topic_reader_quarantines_it(
        tmp_path: Path) -> None:
    """The messages the relay makes of the store (no broker needed to make them): one per
    position, an undecodable event as a stand-in, which a projection of the topic's facts
    quarantines at the same position as the store's projection does."""
    from consumers.relay import Relay
    from consumers.wire import decode_event
    from ledger.application import open_fact

    home = tmp_path / "ledger"
    j = open_journey(home)
    try:
        append(j, list(demo_data.generate(5, seed=3)))
        j.project()
        customer = str(j.projections.con.execute(
            "SELECT customer_id FROM customers ORDER BY customer_id LIMIT 1").fetchall()[0][0])
    finally:
        j.close()
    planted_at = [planted.plant(home / "ledger.sqlite", customer, planted.FAULTS[name](customer))
                  for name in ("not-json", "year-one", "no-fact")]
    j = open_journey(home)
    try:
        app = j.app
        head = app.recorder.max_notification_id()
        notifications = app.recorder.select_notifications(1, head + 10)
        relay = Relay(app, bootstrap="127.0.0.1:9")  # never connects: only its messages are made
        messages = relay._outgoing(notifications)
        assert [m.position for m in messages] == list(range(1, head + 1))
        facts = [open_fact(app, decode_event(m.message[1])) for m in messages]
        topic_store = ProjectionStore(tmp_path / "from-topic.duckdb")
        topic_store.history = readable_history_of(app)
        topic_store.apply(facts)
        assert [e.position for e in topic_store.quarantined()] == planted_at
        assert "cannot be decoded" in topic_store.quarantined()[0].reason
        j.project()
        assert [e.position for e in j.projections.quarantined()] == planted_at
        for table in ("events", "customers"):
            count = f"SELECT count(*) FROM {table}"
            assert topic_store.con.execute(count).fetchall() == j.projections.con.execute(count).fetchall()
        topic_store.close()
    finally:
        j.close()


@pytest.mark.postgres
def test_a_postgresql_store_written_by_hand_is_projected_past_its_bad_facts(
        tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("postgres_db").url
    j = bootstrap(Settings(data_dir=tmp_path / "ledger", store="postgres", postgres_url=url))
    try:
        assert not append(j, list(demo_data.generate(8, seed=6))).rejected
        j.project()
        customer = str(j.projections.con.execute(
            "SELECT customer_id FROM customers ORDER BY customer_id LIMIT 1").fetchall()[0][0])
        events = int(j.projections.con.execute("SELECT count(*) FROM events").fetchall()[0][0])
        datastore = j.app.recorder.datastore  # type: ignore[attr-defined]
        schema = datastore.schema or "public"
        table = f"{schema}.{j.app.recorder.events_table_name}"  # type: ignore[attr-defined]
        planted_at = []
        with datastore.transaction(commit=True) as curs:
            for name in ("year-9999", "not-json", "warranty-overflow", "unknown-type"):
                curs.execute(f"SELECT coalesce(max(originator_version), 0) AS v FROM {table} "
                             "WHERE originator_id = %s", (UUID(customer),))
                version = int(curs.fetchone()["v"]) + 1
                curs.execute(f"INSERT INTO {table} (originator_id, originator_version, topic, "
                             "state) VALUES (%s, %s, %s, %s) RETURNING notification_id",
                             (UUID(customer), version, "domain.customer:Customer.Recorded",
                              planted.FAULTS[name](customer)))
                planted_at.append(int(curs.fetchone()["notification_id"]))
                curs.execute(f"INSERT INTO {schema}.journey_facts VALUES (gen_random_uuid(), %s, %s, %s)",
                             (UUID(customer), UUID(customer), version))
        assert j.project() == 0
        assert [e.position for e in j.projections.quarantined()] == planted_at
        assert int(j.projections.con.execute("SELECT count(*) FROM events").fetchall()[0][0]) == events
        view = j.customer(customer)
        assert view is not None and view["quarantined"] == [p for p in planted_at if p != planted_at[1]]
        rebuilt = tmp_path / "rebuilt"
        rebuild.from_store(j.app, rebuilt)
    finally:
        j.close()
    store = ProjectionStore(rebuilt / "projections.duckdb")
    try:
        assert [e.position for e in store.quarantined()] == planted_at
    finally:
        store.close()
