"""pytest plugin: real PostgreSQL fixtures (load via ``pytest_plugins``).

Fixtures
--------
``postgres_server`` (session)
    ``$JOURNEY_POSTGRES_URL`` if set (an external server, as :class:`PostgresParams`),
    else one :class:`PostgresServer` started for the whole session.
``postgres_db`` (function)
    A fresh, uniquely named database on ``postgres_server``, yielded as
    :class:`PostgresParams` (``.env()`` gives eventsourcing's settings, ``.dsn`` a
    URL), dropped afterwards.
``private_postgres_server`` (function)
    A dedicated :class:`PostgresServer` for tests that ``kill()``/``stop()`` it.

When PostgreSQL cannot be had the tests are skipped with a one-line reason, unless
``JOURNEY_REQUIRE_POSTGRES=1`` or ``JOURNEY_REQUIRE_KAFKA=1`` (CI), where they fail.
Missing binaries are apt-installed (``scripts/ensure-postgres.sh``) only in that
required mode or with ``JOURNEY_PG_AUTO_INSTALL=1``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import NoReturn
from urllib.parse import quote

import pytest

from tests.harness.postgres import PostgresError, PostgresParams, PostgresServer

REQUIRE_ENV_VARS = ("JOURNEY_REQUIRE_POSTGRES", "JOURNEY_REQUIRE_KAFKA")

#: What ``postgres_server`` yields: both offer host/port/user/password/dbname,
#: url/dsn, env(), connect_kwargs(), create_database() and drop_database().
PostgresTarget = PostgresServer | PostgresParams


def postgres_required() -> bool:
    return any(os.environ.get(name) == "1" for name in REQUIRE_ENV_VARS)


def postgres_unavailable(reason: str) -> NoReturn:
    """Skip (locally) or fail (CI) the current test with a loud one-line reason."""
    reason = " ".join(reason.split())  # one line
    if postgres_required():
        pytest.fail(
            f"PostgreSQL REQUIRED but unavailable ({'/'.join(REQUIRE_ENV_VARS)}=1): {reason}",
            pytrace=False,
        )
    pytest.skip(f"PostgreSQL UNAVAILABLE, skipping: {reason}")


def _redacted(params: PostgresParams) -> str:
    return params.url.replace(f":{quote(params.password, safe='')}@", ":***@", 1)


def _start_local_server() -> PostgresServer:
    install = postgres_required() or os.environ.get("JOURNEY_PG_AUTO_INSTALL") == "1"
    server = PostgresServer(install=install)
    try:
        server.start()
    except (PostgresError, OSError) as exc:
        server.cleanup()
        postgres_unavailable(f"cannot start a local server: {exc}")
    return server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresTarget]:
    url = os.environ.get("JOURNEY_POSTGRES_URL")
    if url:
        try:
            params = PostgresParams.from_url(url)
        except ValueError as exc:
            postgres_unavailable(f"bad JOURNEY_POSTGRES_URL: {exc}")
        try:
            params.ping()
        except Exception as exc:
            postgres_unavailable(f"JOURNEY_POSTGRES_URL={_redacted(params)} unreachable: {exc}")
        yield params
        return
    server = _start_local_server()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def postgres_db(postgres_server: PostgresTarget) -> Iterator[PostgresParams]:
    name = f"test_{uuid.uuid4().hex[:16]}"
    params = postgres_server.create_database(name)
    try:
        yield params
    finally:
        postgres_server.drop_database(name)


@pytest.fixture
def private_postgres_server() -> Iterator[PostgresServer]:
    server = _start_local_server()
    try:
        yield server
    finally:
        server.cleanup()
