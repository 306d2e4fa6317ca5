"""API tokens: stored hashed in the store's database, shown once, expiring, rotated, revocable;
browser sign-ins that end; the CLI commands."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient

from journey.api.app import create_app
from journey.api.tokens import (
    TABLE,
    Expired,
    PostgresTokenStore,
    SQLiteTokenStore,
    TokenError,
    TokenRevoked,
    TokenStore,
    open_tokens,
)
from journey.cli import main
from journey.config import Settings
from tests.api.conftest import SCENARIO, auth, record


def _exercise(store: TokenStore) -> None:
    token, secret = store.create("ana", "social_media")
    assert token.department == "social_media" and token.active
    assert secret.startswith("jt_") and len(secret) > 40
    assert store.authenticate(secret) == token
    assert store.authenticate(secret + "x") is None
    assert store.authenticate("") is None
    other, other_secret = store.create("audit-1", "auditor", "billing")
    assert other.department == "billing" and other_secret != secret
    with pytest.raises(TokenError, match="exists already"):
        store.create("ana", "sales")
    with pytest.raises(TokenError, match="is not one of"):
        store.create("bob", "boss")
    with pytest.raises(TokenError, match="belongs to the sales department"):
        store.create("bob", "sales", "billing")
    with pytest.raises(TokenError, match="token name"):
        store.create("bad name!", "sales")
    assert [t.name for t in store.tokens()] == ["ana", "audit-1"]
    revoked = store.revoke("ana")
    assert not revoked.active and revoked.revoked_at
    assert store.authenticate(secret) is None
    assert store.revoke("ana") == revoked  # twice is harmless
    with pytest.raises(TokenError, match="no token named"):
        store.revoke("nobody")
    with pytest.raises(TokenError, match="exists already"):  # a revoked token keeps its name
        store.create("ana", "social_media")
    assert store.authenticate(other_secret) == other
    # a browser signs in, the token is rotated: the old secret and the sign-in end
    session = store.sign_in(other_secret)
    assert session is not None and store.session(session.secret) == other
    assert store.authenticate(session.secret) is None and store.sign_in(session.secret) is None
    rotated, new = store.rotate("audit-1")
    assert rotated.rotated_at and store.authenticate(new) == rotated
    assert store.authenticate(other_secret) is None and store.session(session.secret) is None
    session = store.sign_in(new)
    assert session is not None and store.session(session.secret) == rotated
    store.sign_out(session.secret)
    assert store.session(session.secret) is None


def test_sqlite_tokens_live_hashed_in_the_ledger_file(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    store = open_tokens(settings)
    assert isinstance(store, SQLiteTokenStore)
    try:
        _exercise(store)
        _, secret = store.create("zed", "admin")
    finally:
        store.close()
    con = sqlite3.connect(settings.sqlite_path)
    rows = con.execute(f"SELECT name, secret_sha256 FROM {TABLE}").fetchall()
    con.close()
    raw = settings.sqlite_path.read_bytes()
    assert secret.encode() not in raw
    assert ("zed", hashlib.sha256(secret.encode()).hexdigest()) in rows
    reopened = open_tokens(settings)  # a server started later accepts it
    try:
        assert reopened.authenticate(secret) is not None
    finally:
        reopened.close()


@pytest.mark.postgres
def test_postgres_tokens(postgres_db: object, tmp_path: Path) -> None:
    url = postgres_db.url  # type: ignore[attr-defined]
    store = open_tokens(Settings(data_dir=tmp_path, store="postgres", postgres_url=url))
    assert isinstance(store, PostgresTokenStore)
    try:
        _exercise(store)
    finally:
        store.close()
    again = PostgresTokenStore(url)
    try:
        assert [t.name for t in again.tokens()] == ["ana", "audit-1"]
    finally:
        again.close()


def test_token_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = str(tmp_path / "ledger")

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["--data-dir", home, "token", *args])
        out, err = capsys.readouterr()
        return code, out, err

    code, out, err = run("create", "desk-1", "--role", "social_media")
    secret = out.strip()
    assert code == 0 and secret.startswith("jt_") and "\n" not in secret
    assert "shown only now" in err
    code, out, _ = run("create", "ana", "--role", "analyst", "--department", "billing", "--json")
    made = orjson.loads(out)
    assert code == 0 and made["secret"].startswith("jt_")
    assert {k: made[k] for k in ("name", "role", "department", "active")} == {
        "name": "ana", "role": "analyst", "department": "billing", "active": True}
    assert run("create", "ana", "--role", "sales")[0] == 2
    with pytest.raises(SystemExit):
        run("create", "x", "--role", "boss")
    capsys.readouterr()
    code, out, _ = run("list")
    assert code == 0 and "desk-1" in out and "active" in out and secret not in out
    code, out, _ = run("revoke", "desk-1", "--json")
    assert code == 0 and orjson.loads(out)["active"] is False
    code, out, _ = run("list", "--json")
    listed = orjson.loads(out)["tokens"]
    assert [(t["name"], t["active"]) for t in listed] == [("ana", True), ("desk-1", False)]
    assert all("secret" not in t for t in listed)
    assert run("revoke", "nobody")[0] == 3


# -------------------------------------------------------------------- lifetimes, rotation


class Clock:
    """The store's "now", moved by the test instead of waiting."""

    def __init__(self) -> None:
        self.now = datetime(2026, 5, 20, 10, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **span: float) -> None:
        self.now += timedelta(**span)


def test_a_token_expires_after_its_days_and_says_when(tmp_path: Path) -> None:
    clock = Clock()
    store = SQLiteTokenStore(str(tmp_path / "ledger.sqlite"), token_days=30, clock=clock)
    try:
        token, secret = store.create("desk", "stores")
        assert token.expires_at == "2026-06-19T10:00:00+00:00"  # the store's 30 days
        short, short_secret = store.create("short", "sales", days=1)
        assert short.expires_at == "2026-05-21T10:00:00+00:00"
        forever, forever_secret = store.create("forever", "admin", days=0)
        assert forever.expires_at is None
        clock.advance(days=1, seconds=-1)
        assert store.authenticate(short_secret) == short
        clock.advance(seconds=1)
        with pytest.raises(Expired) as expired:
            store.authenticate(short_secret)
        assert (expired.value.name, expired.value.expired_at) == ("short", "2026-05-21T10:00:00+00:00")
        assert "token 'short' expired at 2026-05-21T10:00:00+00:00" in expired.value.message
        assert store.authenticate(secret) == token
        states = {t.name: (t.state, t.active) for t in store.tokens()}
        assert states == {"desk": ("active", True), "forever": ("active", True), "short": ("expired", False)}
        clock.advance(days=36_000)
        assert store.authenticate(forever_secret) == forever
        for bad in (-1, float("nan"), float("inf"), 40_000):
            with pytest.raises(TokenError, match="number of days"):
                store.create(f"bad-{len(str(bad))}", "sales", days=bad)
    finally:
        store.close()


def test_rotation_replaces_the_secret_and_renews_the_lifetime(tmp_path: Path) -> None:
    clock = Clock()
    store = SQLiteTokenStore(str(tmp_path / "ledger.sqlite"), token_days=10, clock=clock)
    try:
        token, old = store.create("desk", "billing")
        clock.advance(days=11)
        with pytest.raises(Expired):
            store.authenticate(old)
        rotated, new = store.rotate("desk")  # an expired token may be rotated
        assert new != old and new.startswith("jt_")
        assert (rotated.name, rotated.role, rotated.department, rotated.created_at) == (
            "desk", "billing", "billing", token.created_at)
        assert rotated.rotated_at == "2026-05-31T10:00:00+00:00"
        assert rotated.expires_at == "2026-06-10T10:00:00+00:00" and rotated.active
        assert store.authenticate(old) is None
        assert store.authenticate(new) == rotated
        again, newest = store.rotate("desk", days=0)
        assert again.expires_at is None and store.authenticate(new) is None
        assert store.authenticate(newest) == again
        with pytest.raises(TokenError, match="no token named"):
            store.rotate("nobody")
        store.revoke("desk")
        with pytest.raises(TokenRevoked, match="stays revoked"):
            store.rotate("desk")
        assert store.authenticate(newest) is None
    finally:
        store.close()


def test_last_use_is_noted_at_most_once_a_minute(tmp_path: Path) -> None:
    clock = Clock()
    store = SQLiteTokenStore(str(tmp_path / "ledger.sqlite"), clock=clock)
    try:
        _, secret = store.create("desk", "sales")
        assert store.tokens()[0].last_used_at is None
        store.authenticate(secret)
        assert store.tokens()[0].last_used_at == "2026-05-20T10:00:00+00:00"
        clock.advance(seconds=30)
        store.authenticate(secret)
        assert store.tokens()[0].last_used_at == "2026-05-20T10:00:00+00:00"
        clock.advance(seconds=31)
        store.authenticate(secret)
        assert store.tokens()[0].last_used_at == "2026-05-20T10:01:01+00:00"
    finally:
        store.close()


def test_a_token_table_without_lifetimes_gets_them_and_its_tokens_never_expire(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    secret = "jt_an-older-secret"
    con = sqlite3.connect(path)
    con.execute(f"""CREATE TABLE {TABLE} (name TEXT PRIMARY KEY, role TEXT NOT NULL, department TEXT,
                    secret_sha256 TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL, revoked_at TEXT)""")
    con.execute(f"INSERT INTO {TABLE} VALUES ('old', 'admin', NULL, ?, '2025-01-01T00:00:00+00:00', NULL)",
                [hashlib.sha256(secret.encode()).hexdigest()])
    con.commit()
    con.close()
    store = SQLiteTokenStore(str(path), token_days=1, clock=Clock())
    try:
        token = store.authenticate(secret)
        assert token is not None and token.expires_at is None and token.active
        _, rotated = store.rotate("old")
        assert store.get("old").expires_at == "2026-05-21T10:00:00+00:00"  # type: ignore[union-attr]
        assert store.authenticate(rotated) is not None
    finally:
        store.close()


def test_the_lifetimes_come_from_the_environment(tmp_path: Path) -> None:
    settings = Settings.load(str(tmp_path), {"JOURNEY_TOKEN_DAYS": "7", "JOURNEY_SESSION_HOURS": "2"})
    assert (settings.token_days, settings.session_hours) == (7, 2)
    assert (Settings.load(str(tmp_path), {}).token_days, Settings.load(str(tmp_path), {}).session_hours) == (90, 12)
    for name, value in (("JOURNEY_TOKEN_DAYS", "-1"), ("JOURNEY_TOKEN_DAYS", "soon"),
                        ("JOURNEY_SESSION_HOURS", "nan")):
        with pytest.raises(SystemExit, match=name):
            Settings.load(str(tmp_path), {name: value})
    store = open_tokens(settings, clock=Clock())
    try:
        assert store.create("desk", "sales")[0].expires_at == "2026-05-27T10:00:00+00:00"
        session = store.sign_in(store.create("desk-2", "sales")[1])
        assert session is not None and session.expires_at == "2026-05-20T12:00:00+00:00"
    finally:
        store.close()


# -------------------------------------------------------------------- over HTTP


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[TestClient, SQLiteTokenStore, Clock]]:
    """The API over a small ledger, its tokens on a clock the test moves."""
    home = tmp_path / "ledger"
    record(home, SCENARIO[:3])
    clock = Clock()
    settings = Settings(data_dir=home, token_days=30, session_hours=8)
    store = open_tokens(settings, clock=clock)
    assert isinstance(store, SQLiteTokenStore)
    with TestClient(create_app(settings, duties=[], tokens=store)) as client:
        yield client, store, clock
    store.close()


def test_an_expired_token_gets_401_saying_it_expired_and_when(
        served: tuple[TestClient, SQLiteTokenStore, Clock]) -> None:
    client, store, clock = served
    _, secret = store.create("desk", "customer_care", days=2)
    assert client.get("/api/me", headers=auth(secret)).status_code == 200
    clock.advance(days=2)
    response = client.get("/api/customers/C-1001", headers=auth(secret))
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    body = response.json()
    assert body["error"] == ("token 'desk' expired at 2026-05-22T10:00:00+00:00; an admin can give it "
                             "a new secret (journey token rotate desk) (bearer)")
    assert body["detail"] == {"expired": "token", "token": "desk", "expired_at": "2026-05-22T10:00:00+00:00"}
    # signing a browser in with it says the same, not "unknown"
    refused = client.post("/api/session", json={"token": secret})
    assert refused.status_code == 401 and refused.json()["detail"]["expired_at"] == "2026-05-22T10:00:00+00:00"
    assert "expired at 2026-05-22T10:00:00+00:00" in refused.json()["error"]
    assert "set-cookie" not in refused.headers


def test_a_console_sign_in_ends_after_its_hours(served: tuple[TestClient, SQLiteTokenStore, Clock]) -> None:
    client, store, clock = served
    _, secret = store.create("desk", "stores")
    signed = client.post("/api/session", json={"token": secret})
    assert signed.status_code == 200 and signed.json()["expires_at"] == "2026-05-20T18:00:00+00:00"
    cookie = client.cookies.get("journey_token")
    assert cookie and cookie != secret and secret not in signed.headers["set-cookie"]
    assert client.get("/api/me").json()["name"] == "desk"
    clock.advance(hours=8)
    response = client.get("/api/me")
    assert response.status_code == 401
    assert response.json()["error"] == ("the sign-in with token 'desk' expired at 2026-05-20T18:00:00+00:00; "
                                        "sign in again (cookie)")
    assert response.json()["detail"]["expired"] == "sign-in"
    assert client.get("/api/me", headers=auth(secret)).status_code == 200  # the token itself lives on
    assert client.post("/api/session", json={"token": secret}).status_code == 200
    assert client.get("/api/me").status_code == 200


def test_a_sign_in_ends_with_its_token(served: tuple[TestClient, SQLiteTokenStore, Clock]) -> None:
    client, store, clock = served
    _, secret = store.create("desk", "stores", days=0.25)  # six hours: before the session's eight
    signed = client.post("/api/session", json={"token": secret}).json()
    assert signed["expires_at"] == "2026-05-20T16:00:00+00:00"
    clock.advance(hours=6)
    response = client.get("/api/me")
    assert response.status_code == 401 and response.json()["detail"]["expired"] == "token"


def test_signing_out_ends_the_sign_in_on_the_server(served: tuple[TestClient, SQLiteTokenStore, Clock]) -> None:
    client, store, _ = served
    _, secret = store.create("desk", "stores")
    client.post("/api/session", json={"token": secret})
    cookie = client.cookies.get("journey_token")
    assert client.delete("/api/session").status_code == 200
    replayed = client.get("/api/me", headers={"Cookie": f"journey_token={cookie}"})
    assert replayed.status_code == 401 and "sign in again" in replayed.json()["error"]
    # a token's secret is not a cookie, nor a cookie a token
    assert client.get("/api/me", headers={"Cookie": f"journey_token={secret}"}).status_code == 401
    client.cookies.clear()
    client.post("/api/session", json={"token": secret})
    cookie = client.cookies.get("journey_token")
    assert client.get("/api/me", headers=auth(cookie or "")).status_code == 401


def test_admins_rotate_tokens_over_http(served: tuple[TestClient, SQLiteTokenStore, Clock]) -> None:
    client, store, clock = served
    _, admin = store.create("ops", "admin")
    _, old = store.create("desk", "social_media", days=1)
    browser = TestClient(client.app)
    assert browser.post("/api/session", json={"token": old}).status_code == 200
    assert browser.get("/api/me").status_code == 200
    clock.advance(days=3)
    assert client.get("/api/me", headers=auth(old)).status_code == 401
    assert client.post("/api/tokens/desk/rotate", headers=auth(old)).status_code == 401
    _, sales = store.create("seller", "sales")
    forbidden = client.post("/api/tokens/desk/rotate", headers=auth(sales))
    assert forbidden.status_code == 403 and forbidden.json()["error"] == "role 'sales' may not manage tokens"
    # the same bytes whether the name exists or not: no oracle of token names
    for headers in (auth(sales), {}):
        there = client.post("/api/tokens/desk/rotate", headers=headers)
        missing = client.post("/api/tokens/nobody/rotate", headers=headers)
        assert there.status_code in (401, 403)
        assert (there.status_code, there.content) == (missing.status_code, missing.content)
    rotated = client.post("/api/tokens/desk/rotate", headers=auth(admin))
    assert rotated.status_code == 200, rotated.text
    body = rotated.json()
    new = body["secret"]
    assert body["token"]["expires_at"] == "2026-06-22T10:00:00+00:00"  # the server's 30 days
    assert body["token"]["rotated_at"] == "2026-05-23T10:00:00+00:00" and body["token"]["state"] == "active"
    assert client.get("/api/me", headers=auth(new)).json()["name"] == "desk"
    stale = client.get("/api/me", headers=auth(old))
    assert stale.status_code == 401 and stale.json()["error"] == "unknown or revoked token (bearer)"
    assert browser.get("/api/me").status_code == 401  # signed in with the old secret
    custom = client.post("/api/tokens/desk/rotate", json={"days": 2}, headers=auth(admin)).json()
    assert custom["token"]["expires_at"] == "2026-05-25T10:00:00+00:00"
    assert client.get("/api/me", headers=auth(new)).status_code == 401
    bad = client.post("/api/tokens/desk/rotate", json={"days": -1}, headers=auth(admin))
    assert bad.status_code == 422
    assert client.post("/api/tokens/nobody/rotate", headers=auth(admin)).status_code == 404
    assert client.delete("/api/tokens/desk", headers=auth(admin)).status_code == 200
    revoked = client.post("/api/tokens/desk/rotate", headers=auth(admin))
    assert revoked.status_code == 409 and "stays revoked" in revoked.json()["error"]
    assert client.get("/api/me", headers=auth(custom["secret"])).status_code == 401


def test_the_token_list_says_created_expires_and_last_used(
        served: tuple[TestClient, SQLiteTokenStore, Clock]) -> None:
    client, store, clock = served
    _, admin = store.create("ops", "admin")
    made = client.post("/api/tokens", json={"name": "desk", "role": "billing", "days": 5},
                       headers=auth(admin))
    assert made.status_code == 201 and made.json()["token"]["expires_at"] == "2026-05-25T10:00:00+00:00"
    assert client.post("/api/tokens", json={"name": "x", "role": "sales", "days": -2},
                       headers=auth(admin)).status_code == 422
    clock.advance(minutes=5)
    client.get("/api/me", headers=auth(made.json()["secret"]))
    clock.advance(days=5)
    listed = {t["name"]: t for t in client.get("/api/tokens", headers=auth(admin)).json()["tokens"]}
    desk = listed["desk"]
    assert {k: desk[k] for k in ("created_at", "expires_at", "last_used_at", "state", "active")} == {
        "created_at": "2026-05-20T10:00:00+00:00", "expires_at": "2026-05-25T10:00:00+00:00",
        "last_used_at": "2026-05-20T10:05:00+00:00", "state": "expired", "active": False}
    assert listed["ops"]["state"] == "active"


def test_token_commands_set_lifetimes_and_rotate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = str(tmp_path / "ledger")

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["--data-dir", home, "token", *args])
        out, err = capsys.readouterr()
        return code, out, err

    code, out, err = run("create", "desk", "--role", "stores", "--days", "3", "--json")
    made = orjson.loads(out)
    created = datetime.fromisoformat(made["created_at"])
    assert code == 0 and datetime.fromisoformat(made["expires_at"]) - created == timedelta(days=3)
    code, out, err = run("create", "ops", "--role", "admin")
    assert code == 0 and "expires 20" in err  # JOURNEY_TOKEN_DAYS' default
    code, out, err = run("create", "kiosk", "--role", "stores", "--days", "0")
    assert code == 0 and "never expires" in err
    with pytest.raises(SystemExit):
        run("create", "bad", "--role", "stores", "--days", "-1")
    assert "is not a number of days" in capsys.readouterr().err
    code, out, err = run("rotate", "desk")
    secret = out.strip()
    assert code == 0 and secret.startswith("jt_") and "refused from now on" in err
    store = open_tokens(Settings(data_dir=Path(home)))
    try:
        assert store.authenticate(secret) is not None and store.authenticate(made["secret"]) is None
    finally:
        store.close()
    code, out, _ = run("rotate", "desk", "--days", "0", "--json")
    assert code == 0 and orjson.loads(out)["expires_at"] is None and orjson.loads(out)["rotated_at"]
    code, out, _ = run("list")
    lines = {line.split()[0]: line for line in out.splitlines()}
    assert "never expires" in lines["desk"] and "never used" in lines["kiosk"] and "expires 20" in lines["ops"]
    assert "last used" in lines["desk"]  # the authenticate above
    assert run("rotate", "nobody")[0] == 3
    assert run("revoke", "kiosk")[0] == 0
    code, _, err = run("rotate", "kiosk")
    assert code == 2 and "stays revoked" in err
