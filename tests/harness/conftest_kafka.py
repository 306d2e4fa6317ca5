"""pytest plugin: a real Kafka broker for tests marked ``kafka``.

Enable it from the top-level ``tests/conftest.py``::

    pytest_plugins = ["tests.harness.conftest_kafka"]

Fixtures
--------
``kafka_broker`` (session)
    An object with ``.bootstrap`` ("host:port"). Without ``KAFKA_BOOTSTRAP`` it is a
    :class:`tests.harness.kafka.KafkaBroker` owned by the session (started once, lazily, on the
    first test that asks for it) which also supports ``.restart()``, ``.kill()``, ``.start()``
    and ``.stop()``. With ``KAFKA_BOOTSTRAP=host:port`` an external broker is used and those
    lifecycle calls skip the calling test. ``.external`` tells which one you have.

    If no broker can be had (no java / mvn, download or start failure, external broker not
    answering) every test using the fixture is skipped with a one-line reason, unless
    ``JOURNEY_REQUIRE_KAFKA=1``, in which case the tests fail with the full reason instead.

    Tests that kill or stop the owned broker need not bring it back: before each test that uses
    the fixture, a broker that is not running is restarted (same ports, same data).

``kafka_topic_prefix`` (function)
    A unique, topic-name-safe prefix per test (``t-<test-name>-<random>-``), so tests sharing
    the session broker never see each other's topics or consumer groups.

Items that use ``kafka_broker`` get the ``kafka`` marker automatically if they lack it.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from typing import NoReturn, Protocol

import pytest

from tests.harness.kafka import (
    KAFKA_VERSION,
    KafkaBroker,
    KafkaHarnessError,
    cache_root,
    wait_for_kafka,
)

__all__ = ["ExternalKafka", "KafkaEndpoint", "kafka_broker", "kafka_topic_prefix"]

_ENV_BOOTSTRAP = "KAFKA_BOOTSTRAP"
_ENV_REQUIRE = "JOURNEY_REQUIRE_KAFKA"


class KafkaEndpoint(Protocol):
    """What the ``kafka_broker`` fixture yields."""

    external: bool

    @property
    def bootstrap(self) -> str: ...

    @property
    def running(self) -> bool: ...

    def start(self) -> object: ...

    def stop(self) -> None: ...

    def kill(self) -> None: ...

    def restart(self) -> object: ...


class ExternalKafka:
    """A broker we do not own (``KAFKA_BOOTSTRAP``): no lifecycle control."""

    external = True

    def __init__(self, bootstrap: str) -> None:
        self._bootstrap = bootstrap

    @property
    def bootstrap(self) -> str:
        return self._bootstrap

    @property
    def running(self) -> bool:
        return True

    def _unsupported(self, what: str) -> NoReturn:
        pytest.skip(f"{what}() needs a harness-owned broker; {_ENV_BOOTSTRAP} is set")

    def start(self) -> NoReturn:
        self._unsupported("start")

    def stop(self) -> NoReturn:
        self._unsupported("stop")

    def kill(self) -> NoReturn:
        self._unsupported("kill")

    def restart(self) -> NoReturn:
        self._unsupported("restart")

    def __repr__(self) -> str:
        return f"<ExternalKafka {self._bootstrap}>"


def _kafka_required() -> bool:
    return os.environ.get(_ENV_REQUIRE, "").strip().lower() in {"1", "true", "yes", "on"}


def _unavailable(reason: str) -> NoReturn:
    """Skip (default) or fail (``JOURNEY_REQUIRE_KAFKA=1``) the tests needing Kafka."""
    if _kafka_required():
        pytest.fail(f"Kafka required ({_ENV_REQUIRE}=1) but unavailable: {reason}", pytrace=False)
    first_line = reason.strip().splitlines()[0] if reason.strip() else "unknown error"
    pytest.skip(
        f"KAFKA UNAVAILABLE: {first_line} "
        f"(set {_ENV_BOOTSTRAP}=host:port or install java+mvn; {_ENV_REQUIRE}=1 to fail)"
    )


def pytest_report_header(config: pytest.Config) -> str:
    external = os.environ.get(_ENV_BOOTSTRAP)
    if external:
        return f"kafka: external broker {_ENV_BOOTSTRAP}={external}"
    required = " (required)" if _kafka_required() else ""
    return f"kafka: harness broker {KAFKA_VERSION}, jar cache {cache_root()}{required}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "kafka_broker" in getattr(item, "fixturenames", ()) and not any(item.iter_markers("kafka")):
            item.add_marker(pytest.mark.kafka)


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[KafkaEndpoint]:
    external = os.environ.get(_ENV_BOOTSTRAP, "").strip()
    # _unavailable() is called outside the except blocks so a JOURNEY_REQUIRE_KAFKA failure
    # reads as one clean message instead of a chained traceback.
    reason: str | None = None
    if external:
        try:
            wait_for_kafka(external, timeout=30.0)
        except Exception as exc:
            reason = f"external broker {_ENV_BOOTSTRAP}={external} not answering: {exc}"
        if reason is not None:
            _unavailable(reason)
        yield ExternalKafka(external)
        return

    broker = KafkaBroker()
    try:
        broker.start()
    except KafkaHarnessError as exc:
        reason = str(exc)
    except Exception as exc:  # anything unexpected still must not crash the whole session
        reason = f"{type(exc).__name__}: {exc}"
    if reason is not None:
        broker.close()
        _unavailable(reason)
    try:
        yield broker
    finally:
        broker.close()


@pytest.fixture(autouse=True)
def _kafka_broker_running(request: pytest.FixtureRequest) -> None:
    """Bring the owned broker back if a previous test killed or stopped it."""
    if "kafka_broker" not in request.fixturenames:
        return
    broker: KafkaEndpoint = request.getfixturevalue("kafka_broker")
    if not broker.external and not broker.running:
        try:
            broker.start()
        except KafkaHarnessError as exc:
            reason = f"could not bring the broker back after a previous test: {exc}"
        else:
            return
        _unavailable(reason)


@pytest.fixture
def kafka_topic_prefix(request: pytest.FixtureRequest) -> str:
    # Only '-' as separator: Kafka treats '.' and '_' as colliding in topic names.
    name = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name).strip("-")[:60] or "test"
    return f"t-{name}-{uuid.uuid4().hex[:8]}-"
