"""Tests of the real-PostgreSQL harness (tests/harness/postgres.py and its fixtures)."""

from __future__ import annotations

from uuid import UUID

import psycopg
import pytest
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.postgres import (
    BasePostgresFactory,
    PostgresApplicationRecorder,
    PostgresFactory,
)

from tests.harness.postgres import PostgresParams, PostgresServer


class Touchpoint(Aggregate):
    @event("Recorded")
    def __init__(self, customer: str, channel: str) -> None:
        self.customer = customer
        self.channel = channel
        self.notes: list[str] = []

    @event("Annotated")
    def annotate(self, note: str) -> None:
        self.notes.append(note)


class Ledger(Application[UUID]):
    pass


def _new_ledger(params: PostgresParams) -> Ledger:
    return Ledger(env=params.env())


# --------------------------------------------------------------------------- no server


def test_params_url_round_trip() -> None:
    params = PostgresParams.from_url("postgresql://al%40ice:p%2Fw@db.example:6543/ledger")
    assert params == PostgresParams("db.example", 6543, "al@ice", "p/w", "ledger")
    assert PostgresParams.from_url(params.url) == params
    assert PostgresParams("127.0.0.1", 5, "postgres").url == "postgresql://postgres@127.0.0.1:5/journey"


def test_env_uses_eventsourcing_key_names() -> None:
    env = PostgresParams("127.0.0.1", 5433, "postgres", "", "journey").env()
    assert env == {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        BasePostgresFactory.POSTGRES_DBNAME: "journey",
        BasePostgresFactory.POSTGRES_HOST: "127.0.0.1",
        BasePostgresFactory.POSTGRES_PORT: "5433",
        BasePostgresFactory.POSTGRES_USER: "postgres",
        BasePostgresFactory.POSTGRES_PASSWORD: "",
    }


# --------------------------------------------------------------------------- real server


@pytest.mark.postgres
def test_psycopg_create_insert_select(postgres_db: PostgresParams) -> None:
    with psycopg.connect(postgres_db.dsn) as conn:
        conn.execute("CREATE TABLE touch (id serial PRIMARY KEY, channel text NOT NULL)")
        conn.execute("INSERT INTO touch (channel) VALUES (%s), (%s)", ("email", "web"))
        conn.commit()
    with psycopg.connect(**postgres_db.connect_kwargs()) as conn:
        rows = conn.execute("SELECT id, channel FROM touch ORDER BY id").fetchall()
        db, encoding, fsync = conn.execute(
            "SELECT current_database(), current_setting('server_encoding'), current_setting('fsync')"
        ).fetchone() or (None, None, None)
    assert rows == [(1, "email"), (2, "web")]
    assert (db, encoding, fsync) == (postgres_db.dbname, "UTF8", "on")


@pytest.mark.postgres
def test_postgres_db_is_fresh_per_test(postgres_db: PostgresParams) -> None:
    # The previous test's table must not exist here.
    with psycopg.connect(postgres_db.dsn) as conn:
        found = conn.execute("SELECT to_regclass('touch')").fetchone()
    assert found == (None,)


@pytest.mark.postgres
def test_eventsourcing_application_on_postgres(postgres_db: PostgresParams) -> None:
    app = _new_ledger(postgres_db)
    try:
        assert isinstance(app.factory, PostgresFactory)
        assert isinstance(app.recorder, PostgresApplicationRecorder)
        touch = Touchpoint(customer="c-1", channel="email")
        touch.annotate("opened")
        app.save(touch)
    finally:
        app.close()

    # A separate application instance (new connection pool) reads it back.
    app = _new_ledger(postgres_db)
    try:
        copy: Touchpoint = app.repository.get(touch.id)
        assert isinstance(copy, Touchpoint)
        assert (copy.customer, copy.channel, copy.notes, copy.version) == (
            "c-1",
            "email",
            ["opened"],
            2,
        )
        notifications = app.notification_log.select(start=1, limit=10)
        assert [n.originator_id for n in notifications] == [touch.id, touch.id]
        assert app.recorder.max_notification_id() == 2
    finally:
        app.close()


@pytest.mark.postgres
@pytest.mark.slow
def test_kill_then_start_keeps_committed_data(private_postgres_server: PostgresServer) -> None:
    server = private_postgres_server
    dsn_before = server.dsn
    params = server.create_database("crashdb")

    app = _new_ledger(params)
    try:
        touch = Touchpoint(customer="c-2", channel="web")
        app.save(touch)
    finally:
        app.close()

    with psycopg.connect(params.dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (v int)")
        conn.execute("INSERT INTO t VALUES (1)")  # committed (autocommit)

    uncommitted = psycopg.connect(params.dsn)
    uncommitted.execute("INSERT INTO t VALUES (2)")  # never committed

    old_pid = server.pid
    server.kill()  # SIGKILL: no shutdown checkpoint, recovery from WAL on start
    assert not server.running
    uncommitted.close()  # its server side is gone

    server.start()
    assert server.pid != old_pid
    assert server.dsn == dsn_before  # same port, same data directory
    assert "automatic recovery in progress" in server.log_tail(200)

    with psycopg.connect(params.dsn) as conn:
        assert conn.execute("SELECT v FROM t ORDER BY v").fetchall() == [(1,)]

    app = _new_ledger(params)
    try:
        copy: Touchpoint = app.repository.get(touch.id)
        assert isinstance(copy, Touchpoint)
        assert (copy.customer, copy.channel) == ("c-2", "web")
    finally:
        app.close()

    # A clean stop/start also keeps the data (and the port).
    server.stop()
    server.start()
    with psycopg.connect(params.dsn) as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (1,)
