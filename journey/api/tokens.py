"""API tokens: named, with a role, stored only as the SHA-256 of their secret.

They live in the event store's own database (the SQLite file ``ledger.sqlite``, or PostgreSQL
with ``JOURNEY_STORE=postgres``) in the table ``journey_api_tokens``, so whoever backs up or
moves the ledger moves its tokens with it, and a server on another machine sharing the
PostgreSQL store accepts the same tokens. A separate connection from the event store's: the
recorder's connection is eventsourcing's and is held inside its transactions.

The secret is shown once, by ``journey token create``; a lost secret cannot be recovered, only
revoked and replaced. Revoked tokens stay in the table (who had access, and until when) and
keep their name: a name always means one token in the access log.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from journey.api.policy import DEPARTMENTS, ROLES
from journey.config import Settings

TABLE = "journey_api_tokens"
#: Random bytes in a secret (256 bits), URL-safe base64 after the prefix.
SECRET_BYTES = 32
#: Lets a leaked secret be recognised by secret scanners and by people.
SECRET_PREFIX = "jt_"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


class TokenError(ValueError):
    """A token cannot be created or revoked as asked; the message says why."""


@dataclass(frozen=True, slots=True)
class Token:
    name: str
    role: str
    department: str | None
    created_at: str
    revoked_at: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role, "department": self.department,
                "created_at": self.created_at, "revoked_at": self.revoked_at, "active": self.active}


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(SECRET_BYTES)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def check_token_fields(name: str, role: str, department: str | None) -> str | None:
    """The department a new token gets; raises :class:`TokenError` for a bad name, role or
    department. A department's own role implies its department."""
    if not _NAME.fullmatch(name):
        raise TokenError(f"token name {name!r}: use 1-64 letters, digits, '.', '_', '-' or '@', "
                         "starting with a letter or digit")
    if role not in ROLES:
        raise TokenError(f"role {role!r} is not one of {', '.join(ROLES)}")
    if department is not None and department not in DEPARTMENTS:
        raise TokenError(f"department {department!r} is not one of {', '.join(DEPARTMENTS)}")
    if role in DEPARTMENTS:
        if department not in (None, role):
            raise TokenError(f"a {role} token belongs to the {role} department, not {department}")
        return role
    return department


class TokenStore(ABC):
    """Create, list, revoke and check tokens; safe to share between threads."""

    #: The parameter placeholder of the driver's SQL.
    mark = "?"

    def __init__(self) -> None:
        self._lock = threading.Lock()

    @abstractmethod
    def _run(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Execute one statement in its own transaction; the rows it returned."""

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def _is_duplicate(self, error: Exception) -> bool: ...

    def _sql(self, text: str) -> str:
        return text.replace("?", self.mark)

    def _create_table(self) -> None:
        self._run(f"""CREATE TABLE IF NOT EXISTS {TABLE} (
            name TEXT PRIMARY KEY, role TEXT NOT NULL, department TEXT,
            secret_sha256 TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL, revoked_at TEXT)""")

    def create(self, name: str, role: str, department: str | None = None) -> tuple[Token, str]:
        """A new token and its secret (the only time the secret exists outside the caller)."""
        department = check_token_fields(name, role, department)
        secret = new_secret()
        token = Token(name, role, department, _now())
        try:
            self._run(self._sql(f"INSERT INTO {TABLE} (name, role, department, secret_sha256, "
                                "created_at) VALUES (?, ?, ?, ?, ?)"),
                      [name, role, department, secret_hash(secret), token.created_at])
        except Exception as error:
            if self._is_duplicate(error):
                raise TokenError(f"a token named {name!r} exists already (revoked tokens keep "
                                 "their name); choose another name") from None
            raise
        return token, secret

    def tokens(self) -> list[Token]:
        rows = self._run(f"SELECT name, role, department, created_at, revoked_at FROM {TABLE} "
                         "ORDER BY name")
        return [Token(*row) for row in rows]

    def get(self, name: str) -> Token | None:
        rows = self._run(self._sql(f"SELECT name, role, department, created_at, revoked_at "
                                   f"FROM {TABLE} WHERE name = ?"), [name])
        return Token(*rows[0]) if rows else None

    def revoke(self, name: str) -> Token:
        """Revoke at once (the next request with it gets 401); revoking twice is harmless."""
        token = self.get(name)
        if token is None:
            raise TokenError(f"no token named {name!r}")
        if not token.active:
            return token
        self._run(self._sql(f"UPDATE {TABLE} SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL"),
                  [_now(), name])
        revoked = self.get(name)
        assert revoked is not None
        return revoked

    def authenticate(self, secret: str) -> Token | None:
        """The active token with this secret, or None (unknown, revoked, or not a secret at all)."""
        if not secret or len(secret) > 256:
            return None
        rows = self._run(self._sql(f"SELECT name, role, department, created_at, revoked_at "
                                   f"FROM {TABLE} WHERE secret_sha256 = ?"), [secret_hash(secret)])
        if not rows:
            return None
        token = Token(*rows[0])
        return token if token.active else None


class SQLiteTokenStore(TokenStore):
    def __init__(self, path: str) -> None:
        super().__init__()
        # autocommit (isolation_level=None): each statement is its own short transaction, so
        # the server never holds a lock on the event store's file between requests.
        self._con = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self._create_table()

    def _run(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._con.execute(sql, list(params)).fetchall()

    def _is_duplicate(self, error: Exception) -> bool:
        return isinstance(error, sqlite3.IntegrityError)

    def close(self) -> None:
        with self._lock:
            self._con.close()


class PostgresTokenStore(TokenStore):
    mark = "%s"

    def __init__(self, url: str) -> None:
        super().__init__()
        self._url = url
        self._con: Any = self._connect()
        self._create_table()

    def _connect(self) -> Any:
        import psycopg

        return psycopg.connect(self._url, autocommit=True)

    def _run(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        import psycopg

        with self._lock:
            for attempt in (1, 2):
                try:
                    with self._con.cursor() as cursor:
                        cursor.execute(sql, list(params))
                        return list(cursor.fetchall()) if cursor.description else []
                except psycopg.OperationalError:
                    # A server restart or an idle timeout dropped the connection: once more on
                    # a new one (every statement is idempotent or fails on its unique key).
                    if attempt == 2 or not self._con.closed:
                        raise
                    self._con = self._connect()
        raise AssertionError("unreachable")

    def _is_duplicate(self, error: Exception) -> bool:
        import psycopg

        return isinstance(error, psycopg.errors.UniqueViolation)

    def close(self) -> None:
        with self._lock:
            self._con.close()


def open_tokens(settings: Settings) -> TokenStore:
    """The token table of the store ``settings`` name (created when missing)."""
    if settings.store == "postgres":
        if not settings.postgres_url:
            raise TokenError("JOURNEY_STORE=postgres needs JOURNEY_POSTGRES_URL")
        return PostgresTokenStore(settings.postgres_url)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return SQLiteTokenStore(str(settings.sqlite_path))
