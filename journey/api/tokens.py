"""API tokens: named, with a role, stored only as the SHA-256 of their secret.

They live in the event store's own database (the SQLite file ``ledger.sqlite``, or PostgreSQL
with ``JOURNEY_STORE=postgres``) in the table ``journey_api_tokens``, so whoever backs up or
moves the ledger moves its tokens with it, and a server on another machine sharing the
PostgreSQL store accepts the same tokens. A separate connection from the event store's: the
recorder's connection is eventsourcing's and is held inside its transactions.

The secret is shown once, by ``journey token create``; a lost secret cannot be recovered, only
revoked and replaced. Revoked tokens stay in the table (who had access, and until when) and
keep their name: a name always means one token in the access log.

A token lives ``JOURNEY_TOKEN_DAYS`` (or what its creator said; 0: for ever) and is rotated
(a new secret under the same name, the old one refused at once) rather than extended. A
browser's sign-in is a session of its own (``journey_api_sessions``): the cookie carries the
session's secret, never the token's, and a session ends after ``JOURNEY_SESSION_HOURS``, when
its token expires, is rotated or revoked, or on sign-out. Expiry is judged on every request
against the store's clock (injectable, so tests move time instead of waiting).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from journey.api.policy import DEPARTMENTS, ROLES
from journey.config import Settings

TABLE = "journey_api_tokens"
SESSIONS = "journey_api_sessions"
#: Columns added to the token table after its first version (a store created earlier gets them).
_LATER_COLUMNS = ("expires_at", "last_used_at", "rotated_at")
#: Seconds between two writes of a token's ``last_used_at`` (a write per request would make
#: every read a write to the event store's database).
LAST_USED_EVERY = 60
#: Random bytes in a secret (256 bits), URL-safe base64 after the prefix.
SECRET_BYTES = 32
#: Lets a leaked secret be recognised by secret scanners and by people.
SECRET_PREFIX = "jt_"
#: A browser session's secret (the cookie): not a token, refused as one.
SESSION_PREFIX = "js_"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


class TokenError(ValueError):
    """A token cannot be created, rotated or revoked as asked; the message says why."""


class TokenRevoked(TokenError):
    """Rotating a revoked token: revoked is for ever (create a new one)."""


class Expired(Exception):
    """A secret that was valid and is not any more: which token or sign-in, and since when."""

    def __init__(self, name: str, role: str, expired_at: str, what: str = "token") -> None:
        self.name = name
        self.role = role
        self.expired_at = expired_at
        #: "token", or "sign-in" (a browser session that outlived its hours).
        self.what = what
        super().__init__(self.message)

    @property
    def message(self) -> str:
        if self.what == "sign-in":
            return (f"the sign-in with token {self.name!r} expired at {self.expired_at}; "
                    "sign in again")
        return (f"token {self.name!r} expired at {self.expired_at}; an admin can give it a new "
                f"secret (journey token rotate {self.name})")


@dataclass(frozen=True, slots=True)
class Token:
    name: str
    role: str
    department: str | None
    created_at: str
    revoked_at: str | None = None
    #: None: never expires.
    expires_at: str | None = None
    #: To the minute (:data:`LAST_USED_EVERY`); None: never used.
    last_used_at: str | None = field(default=None, compare=False)
    rotated_at: str | None = None
    #: Expired when it was read (judged by the store's clock).
    expired: bool = field(default=False, compare=False)

    @property
    def active(self) -> bool:
        return self.revoked_at is None and not self.expired

    @property
    def state(self) -> str:
        return "revoked" if self.revoked_at else "expired" if self.expired else "active"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role, "department": self.department,
                "created_at": self.created_at, "expires_at": self.expires_at,
                "last_used_at": self.last_used_at, "rotated_at": self.rotated_at,
                "revoked_at": self.revoked_at, "state": self.state, "active": self.active}


@dataclass(frozen=True, slots=True)
class Session:
    """A browser's sign-in: its secret goes in the cookie, only its hash is stored."""

    token: Token
    secret: str
    expires_at: str | None


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_secret(prefix: str = SECRET_PREFIX) -> str:
    return prefix + secrets.token_urlsafe(SECRET_BYTES)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _text(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="seconds")


def lifetime(days: float | None, what: str = "days") -> timedelta | None:
    """``days`` as a lifetime (0: none, never expires); TokenError for a negative or
    non-finite number, or one past what a date can hold."""
    if days is None or days == 0:
        return None
    if not days > 0 or days > 36_500:  # also refuses nan and inf
        raise TokenError(f"{what} {days!r}: give a number of days from 0 (never expires) to 36500")
    return timedelta(days=days)


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


_COLUMNS = "name, role, department, created_at, revoked_at, expires_at, last_used_at, rotated_at"


class TokenStore(ABC):
    """Create, list, rotate, revoke and check tokens and sign-ins; safe to share between threads.

    ``token_days``: the lifetime of a token created or rotated without one (0: for ever);
    ``session_hours``: of a browser's sign-in (0: as long as its token); ``clock``: what "now"
    is (tests move it)."""

    #: The parameter placeholder of the driver's SQL.
    mark = "?"

    def __init__(self, *, token_days: float = 0, session_hours: float = 0,
                 clock: Callable[[], datetime] = _utc_now) -> None:
        self._lock = threading.Lock()
        self.token_days = token_days
        self.session_hours = session_hours
        self.clock = clock
        #: When this process last wrote each token's last_used_at.
        self._used: dict[str, datetime] = {}

    @abstractmethod
    def _run(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Execute one statement in its own transaction; the rows it returned."""

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def _is_duplicate(self, error: Exception) -> bool: ...

    @abstractmethod
    def _columns(self) -> set[str]:
        """The columns the token table has."""

    def _sql(self, text: str) -> str:
        return text.replace("?", self.mark)

    def _create_table(self) -> None:
        self._run(f"""CREATE TABLE IF NOT EXISTS {TABLE} (
            name TEXT PRIMARY KEY, role TEXT NOT NULL, department TEXT,
            secret_sha256 TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL, revoked_at TEXT,
            expires_at TEXT, last_used_at TEXT, rotated_at TEXT)""")
        for column in _LATER_COLUMNS:
            if column not in self._columns():
                try:
                    self._run(f"ALTER TABLE {TABLE} ADD COLUMN {column} TEXT")
                except Exception:
                    if column not in self._columns():  # not another server adding it first
                        raise
        self._run(f"""CREATE TABLE IF NOT EXISTS {SESSIONS} (
            session_sha256 TEXT PRIMARY KEY, token_name TEXT NOT NULL,
            secret_sha256 TEXT NOT NULL, created_at TEXT NOT NULL, expires_at TEXT)""")

    def _now(self) -> datetime:
        return self.clock()

    def _expires(self, days: float | None) -> str | None:
        span = lifetime(self.token_days if days is None else days)
        return None if span is None else _text(self._now() + span)

    def _token(self, row: Sequence[Any]) -> Token:
        token = Token(*row)
        expired = token.expires_at is not None and self._now() >= datetime.fromisoformat(token.expires_at)
        return replace(token, expired=True) if expired else token

    def create(self, name: str, role: str, department: str | None = None, *,
               days: float | None = None) -> tuple[Token, str]:
        """A new token and its secret (the only time the secret exists outside the caller).
        ``days``: its lifetime (None: the store's; 0: never expires)."""
        department = check_token_fields(name, role, department)
        secret = new_secret()
        token = Token(name, role, department, _text(self._now()), expires_at=self._expires(days))
        try:
            self._run(self._sql(f"INSERT INTO {TABLE} (name, role, department, secret_sha256, "
                                "created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)"),
                      [name, role, department, secret_hash(secret), token.created_at, token.expires_at])
        except Exception as error:
            if self._is_duplicate(error):
                raise TokenError(f"a token named {name!r} exists already (revoked tokens keep "
                                 "their name); choose another name") from None
            raise
        return token, secret

    def tokens(self) -> list[Token]:
        rows = self._run(f"SELECT {_COLUMNS} FROM {TABLE} ORDER BY name")
        return [self._token(row) for row in rows]

    def get(self, name: str) -> Token | None:
        rows = self._run(self._sql(f"SELECT {_COLUMNS} FROM {TABLE} WHERE name = ?"), [name])
        return self._token(rows[0]) if rows else None

    def revoke(self, name: str) -> Token:
        """Revoke at once (the next request with it, or with a browser signed in with it, gets
        401); revoking twice is harmless."""
        token = self.get(name)
        if token is None:
            raise TokenError(f"no token named {name!r}")
        if token.revoked_at is not None:
            return token
        self._run(self._sql(f"UPDATE {TABLE} SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL"),
                  [_text(self._now()), name])
        self._run(self._sql(f"DELETE FROM {SESSIONS} WHERE token_name = ?"), [name])
        revoked = self.get(name)
        assert revoked is not None
        return revoked

    def rotate(self, name: str, *, days: float | None = None) -> tuple[Token, str]:
        """A new secret for the token ``name`` (shown once), with a new lifetime from now
        (``days`` as for :meth:`create`); the old secret and every browser signed in with it are
        refused from the next request. An expired token may be rotated; a revoked one may not."""
        token = self.get(name)
        if token is None:
            raise TokenError(f"no token named {name!r}")
        if token.revoked_at is not None:
            raise TokenRevoked(f"token {name!r} was revoked at {token.revoked_at}; a revoked token "
                               "stays revoked: create a new one")
        secret = new_secret()
        now = _text(self._now())
        self._run(self._sql(f"UPDATE {TABLE} SET secret_sha256 = ?, expires_at = ?, rotated_at = ? "
                            "WHERE name = ? AND revoked_at IS NULL"),
                  [secret_hash(secret), self._expires(days), now, name])
        self._run(self._sql(f"DELETE FROM {SESSIONS} WHERE token_name = ?"), [name])
        rotated = self.get(name)
        assert rotated is not None
        if rotated.revoked_at is not None:  # revoked meanwhile by another server
            raise TokenRevoked(f"token {name!r} was revoked at {rotated.revoked_at}")
        return rotated, secret

    def authenticate(self, secret: str) -> Token | None:
        """The active token with this secret; None when unknown, revoked, rotated away, or not a
        secret at all; raises :class:`Expired` for a token past its lifetime."""
        if not secret or len(secret) > 256 or secret.startswith(SESSION_PREFIX):
            return None
        rows = self._run(self._sql(f"SELECT {_COLUMNS} FROM {TABLE} WHERE secret_sha256 = ?"),
                         [secret_hash(secret)])
        return self._usable(rows[0]) if rows else None

    def _usable(self, row: Sequence[Any]) -> Token | None:
        token = self._token(row)
        if token.revoked_at is not None:
            return None
        if token.expired:
            assert token.expires_at is not None
            raise Expired(token.name, token.role, token.expires_at)
        self._touch(token)
        return token

    def _touch(self, token: Token) -> None:
        """Note the use, at most once a :data:`LAST_USED_EVERY` per token and process."""
        now = self._now()
        last = self._used.get(token.name)
        if last is not None and timedelta(0) <= now - last < timedelta(seconds=LAST_USED_EVERY):
            return
        self._used[token.name] = now
        self._run(self._sql(f"UPDATE {TABLE} SET last_used_at = ? WHERE name = ?"),
                  [_text(now), token.name])

    # ------------------------------------------------------------ browser sign-ins

    def sign_in(self, secret: str) -> Session | None:
        """A new browser session for the token with ``secret`` (None: unknown or revoked; raises
        :class:`Expired` for an expired token). It ends after ``session_hours``, or when the
        token expires if that comes first."""
        if not secret or len(secret) > 256 or secret.startswith(SESSION_PREFIX):
            return None
        rows = self._run(self._sql(f"SELECT {_COLUMNS}, secret_sha256 FROM {TABLE} "
                                   "WHERE secret_sha256 = ?"), [secret_hash(secret)])
        if not rows:
            return None
        token = self._usable(rows[0][:-1])
        if token is None:
            return None
        now = self._now()
        ends = [datetime.fromisoformat(token.expires_at)] if token.expires_at else []
        if self.session_hours > 0:
            ends.append(now + timedelta(hours=self.session_hours))
        expires_at = _text(min(ends)) if ends else None
        session = new_secret(SESSION_PREFIX)
        # Sessions that ended are dropped here, not by a sweeper: a sign-in is rare enough.
        self._run(self._sql(f"DELETE FROM {SESSIONS} WHERE expires_at IS NOT NULL AND expires_at < ?"),
                  [_text(now - timedelta(days=1))])
        self._run(self._sql(f"INSERT INTO {SESSIONS} (session_sha256, token_name, secret_sha256, "
                            "created_at, expires_at) VALUES (?, ?, ?, ?, ?)"),
                  [secret_hash(session), token.name, rows[0][-1], _text(now), expires_at])
        return Session(token, session, expires_at)

    def session(self, secret: str) -> Token | None:
        """The token a browser signed in with, from its session secret (the cookie); None when
        the session is unknown or ended (signed out, or its token rotated or revoked); raises
        :class:`Expired` when the session or its token outlived their time."""
        if not secret.startswith(SESSION_PREFIX) or len(secret) > 256:
            return None
        rows = self._run(self._sql(
            f"SELECT s.expires_at, {', '.join('t.' + c.strip() for c in _COLUMNS.split(','))} "
            f"FROM {SESSIONS} s JOIN {TABLE} t ON t.name = s.token_name "
            "AND t.secret_sha256 = s.secret_sha256 WHERE s.session_sha256 = ?"), [secret_hash(secret)])
        if not rows:
            return None
        ends, row = rows[0][0], rows[0][1:]
        token = self._token(row)
        if token.revoked_at is None and not token.expired and ends is not None \
                and self._now() >= datetime.fromisoformat(ends):
            raise Expired(token.name, token.role, ends, "sign-in")
        return self._usable(row)

    def sign_out(self, secret: str) -> None:
        """End the browser session with this secret (nothing when there is none)."""
        if secret.startswith(SESSION_PREFIX):
            self._run(self._sql(f"DELETE FROM {SESSIONS} WHERE session_sha256 = ?"), [secret_hash(secret)])


class SQLiteTokenStore(TokenStore):
    def __init__(self, path: str, **options: Any) -> None:
        super().__init__(**options)
        # autocommit (isolation_level=None): each statement is its own short transaction, so
        # the server never holds a lock on the event store's file between requests.
        self._con = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self._create_table()

    def _run(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._con.execute(sql, list(params)).fetchall()

    def _is_duplicate(self, error: Exception) -> bool:
        return isinstance(error, sqlite3.IntegrityError)

    def _columns(self) -> set[str]:
        return {row[1] for row in self._run(f"PRAGMA table_info({TABLE})")}

    def close(self) -> None:
        with self._lock:
            self._con.close()


class PostgresTokenStore(TokenStore):
    mark = "%s"

    def __init__(self, url: str, **options: Any) -> None:
        super().__init__(**options)
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

    def _columns(self) -> set[str]:
        rows = self._run("SELECT column_name FROM information_schema.columns WHERE table_name = %s "
                         "AND table_schema = current_schema()", [TABLE])
        return {row[0] for row in rows}

    def close(self) -> None:
        with self._lock:
            self._con.close()


def open_tokens(settings: Settings, *, clock: Callable[[], datetime] = _utc_now) -> TokenStore:
    """The token table of the store ``settings`` name (created when missing), giving new tokens
    and sign-ins the lifetimes ``settings`` say."""
    options: dict[str, Any] = {"token_days": settings.token_days,
                               "session_hours": settings.session_hours, "clock": clock}
    if settings.store == "postgres":
        if not settings.postgres_url:
            raise TokenError("JOURNEY_STORE=postgres needs JOURNEY_POSTGRES_URL")
        return PostgresTokenStore(settings.postgres_url, **options)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return SQLiteTokenStore(str(settings.sqlite_path), **options)
