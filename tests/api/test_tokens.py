"""API tokens: stored hashed in the store's database, shown once, revocable; the CLI commands."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import orjson
import pytest

from journey.api.tokens import (
    TABLE,
    PostgresTokenStore,
    SQLiteTokenStore,
    TokenError,
    TokenStore,
    open_tokens,
)
from journey.cli import main
from journey.config import Settings


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
