"""Configuration: flags first, then environment, then the embedded defaults."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from domain.identity import phone_region
from domain.limits import limits_from
from projections.cases import complaint_days
from projections.preparing import PARALLEL_FROM, WORKERS, Parallel
from projections.rules import Rules

DEFAULT_HOME = ".journey"


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    #: "sqlite" (embedded default, a file in data_dir) or "postgres" (JOURNEY_POSTGRES_URL).
    store: str = "sqlite"
    postgres_url: str | None = None
    kafka_bootstrap: str = "127.0.0.1:9092"
    #: Every recorded event, key = customer id (the relay's output).
    events_topic: str = "journey.events"
    #: Raw facts from channels that speak Kafka (the ingest consumer's input).
    touchpoints_topic: str = "journey.touchpoints"
    dlq_topic: str = "journey.touchpoints.dlq"
    #: ``journey route``'s output: the touchpoints keyed by the record they will be written to,
    #: what ``journey ingest --routed`` workers read (docs/kafka.md "One writer per customer").
    routed_topic: str = "journey.touchpoints.by-customer"
    #: Partitions of the routed topic when ``journey route`` creates it: the most ingest workers
    #: that can share the writing.
    routed_partitions: int = 4
    partitions: int = 4
    #: The customer-views change feed (consumers/view_feed.py): compacted, key = customer id.
    views_topic: str = "journey.customer-views"
    #: Publish it from `journey serve` too (env JOURNEY_VIEW_FEED=1); `journey feed` always does.
    view_feed: bool = False
    #: Seconds a command waits for another process to release the projections (env
    #: JOURNEY_WAIT; 0: do not wait) before it gives up with exit code 75 (journey/sharing.py).
    wait_seconds: float = 120.0
    #: Seconds between the analyst snapshots ``journey serve`` writes (env
    #: JOURNEY_EXPORT_INTERVAL; 0: only when ``journey export`` asks).
    export_interval: float = 60.0
    #: The contact policy: a file, or a directory of versions (env JOURNEY_POLICY; None: the
    #: shipped journey/contact-policy.toml). A command's ``--policy`` overrides it.
    policy: Path | None = None
    #: Where a phone written without its country code is read (env JOURNEY_PHONE_REGION, an
    #: ISO 3166-1 code; docs/identity.md).
    phone_region: str = "ES"
    #: The instant range facts must fall in, as written (ISO 8601 with offset; env
    #: JOURNEY_EARLIEST / JOURNEY_LATEST; None: the contract's own bound). Every door judges
    #: facts with ``consumers.jsonl_ingest.fact_parser(earliest, latest)``; a value that cannot
    #: be read refuses every fact with a reason naming it.
    earliest: str | None = None
    latest: str | None = None
    #: Days a complaint must be answered in (env JOURNEY_COMPLAINT_DAYS, default 15).
    complaint_days: int = 15
    #: Worker processes that decode and check the facts of a long catch-up (env
    #: JOURNEY_PROJECTION_WORKERS; default: the cores but one, at least 2; 0: none), from how many facts
    #: behind (env JOURNEY_PARALLEL_FROM, default 20,000): projections/preparing.py.
    #: The command runs in a CI job (env CI=true/1/yes): nobody is at its terminal to answer a
    #: question, so a confirmation refuses at once unless --yes says yes.
    ci: bool = False
    projection_workers: int = WORKERS
    parallel_from: int = PARALLEL_FROM
    #: Whether a long append judges its lines in a parse process on another core
    #: (consumers/parse_pool.py; env JOURNEY_PARSE_PROCESS: ``on``, ``off``, or ``auto``, the
    #: default: when this process may run on more than one core and the input is longer than a
    #: batch). ``off`` for a container whose CPU quota is one core, which the affinity the
    #: automatic choice reads does not show.
    parse_process: bool | None = None
    #: Days an API token lives when its creator gives no ``--days`` (env JOURNEY_TOKEN_DAYS;
    #: 0: for ever). Rotating gives it as long again from then (journey/api/tokens.py).
    token_days: float = 90.0
    #: Hours a console sign-in lasts before the browser must sign in again, at most as long as
    #: its token (env JOURNEY_SESSION_HOURS; 0: as long as the token).
    session_hours: float = 12.0

    @classmethod
    def load(cls, data_dir: str | None = None, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings of a command: ``data_dir`` (the flag) first, then ``environ`` (default:
        the process's environment), then the embedded defaults."""
        env = os.environ if environ is None else environ
        home = Path(data_dir or env.get("JOURNEY_HOME") or DEFAULT_HOME)
        settings = cls(
            data_dir=home,
            store=env.get("JOURNEY_STORE", "sqlite"),
            postgres_url=env.get("JOURNEY_POSTGRES_URL"),
            kafka_bootstrap=env.get("KAFKA_BOOTSTRAP", cls.kafka_bootstrap),
            events_topic=env.get("JOURNEY_EVENTS_TOPIC", cls.events_topic),
            touchpoints_topic=env.get("JOURNEY_TOUCHPOINTS_TOPIC", cls.touchpoints_topic),
            dlq_topic=env.get("JOURNEY_DLQ_TOPIC", cls.dlq_topic),
            routed_topic=env.get("JOURNEY_ROUTED_TOPIC", cls.routed_topic),
            routed_partitions=_count(env, "JOURNEY_ROUTED_PARTITIONS", cls.routed_partitions),
            partitions=_count(env, "JOURNEY_PARTITIONS", cls.partitions),
            views_topic=env.get("JOURNEY_VIEWS_TOPIC", cls.views_topic),
            view_feed=env.get("JOURNEY_VIEW_FEED", "").strip().lower() in {"1", "true", "yes", "on"},
            wait_seconds=_seconds(env, "JOURNEY_WAIT", cls.wait_seconds, "0: do not wait"),
            export_interval=_seconds(env, "JOURNEY_EXPORT_INTERVAL", cls.export_interval,
                                     "0: only on request"),
            policy=Path(env["JOURNEY_POLICY"]) if env.get("JOURNEY_POLICY", "").strip() else None,
            phone_region=_region(env.get("JOURNEY_PHONE_REGION") or cls.phone_region),
            earliest=env.get("JOURNEY_EARLIEST"),
            latest=env.get("JOURNEY_LATEST"),
            complaint_days=_complaint_days(env),
            ci=env.get("CI", "").strip().lower() in {"1", "true", "yes", "on"},
            projection_workers=_count(env, "JOURNEY_PROJECTION_WORKERS", cls.projection_workers, 0),
            parallel_from=_count(env, "JOURNEY_PARALLEL_FROM", cls.parallel_from, 0),
            parse_process=_switch(env, "JOURNEY_PARSE_PROCESS"),
            token_days=_amount(env, "JOURNEY_TOKEN_DAYS", cls.token_days, "days", "0: never expire",
                               36_500),
            session_hours=_amount(env, "JOURNEY_SESSION_HOURS", cls.session_hours, "hours",
                                  "0: as long as the token", 876_000),
        )
        settings.check()
        return settings

    def check(self) -> None:
        """Stop (``SystemExit``, naming the variable) on settings that mean nothing, when the
        command starts rather than at the first fact or the first connection."""
        if self.store not in ("sqlite", "postgres"):
            raise SystemExit(f"JOURNEY_STORE={self.store!r} is not a store: use 'sqlite' or 'postgres'")
        if self.store == "postgres" and not self.postgres_url:
            raise SystemExit("JOURNEY_STORE=postgres needs JOURNEY_POSTGRES_URL "
                             "(postgresql://user[:password]@host[:port]/dbname)")
        try:
            limits_from(self.earliest, self.latest)
        except ValueError as error:
            raise SystemExit(f"JOURNEY_EARLIEST/JOURNEY_LATEST: {error}") from None

    @property
    def parse_workers(self) -> int | None:
        """``consumers.jsonl_ingest.ingest``'s ``workers``: 1, 0, or None (it decides)."""
        return None if self.parse_process is None else int(self.parse_process)

    @property
    def parallel(self) -> Parallel:
        """When and with how many worker processes a catch-up prepares its facts."""
        return Parallel(workers=self.projection_workers, from_facts=self.parallel_from)

    @property
    def rules(self) -> Rules:
        """The business rules the projections apply (projections/rules.py)."""
        return Rules(complaint_days=self.complaint_days)

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "ledger.sqlite"

    @property
    def duckdb_path(self) -> Path:
        return self.data_dir / "projections.duckdb"

    @property
    def partitions_dir(self) -> Path:
        """Projections fed from Kafka: one DuckDB file per partition of the events topic."""
        return self.data_dir / "partitions"

    @property
    def lock_path(self) -> Path:
        """Flocked by the one process that has the projections open; says who it is."""
        return self.data_dir / "projections.lock"

    @property
    def writer_lock_path(self) -> Path:
        """Flocked for each batch written to the SQLite store, so writers take turns."""
        return self.data_dir / "writer.lock"

    @property
    def serve_path(self) -> Path:
        """Written by a running ``journey serve`` (0600): its address and the secret that lets
        commands on this machine hand it their work."""
        return self.data_dir / "serve.json"

    @property
    def rejects_dir(self) -> Path:
        return self.data_dir / "rejects"


def _seconds(env: Mapping[str, str], name: str, default: float, zero: str) -> float:
    """A number of seconds from the environment, 0 or more (``zero``: what 0 means)."""
    return _amount(env, name, default, "seconds", zero, math.inf)


def _amount(env: Mapping[str, str], name: str, default: float, unit: str, zero: str,
            most: float) -> float:
    """A number of ``unit`` from the environment, 0 to ``most``; anything else stops the command
    with a message naming the variable (``zero``: what 0 means)."""
    text = env.get(name)
    if text is None or not text.strip():
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= most:  # also refuses nan (and inf, below a finite most)
        bounds = f" from 0 to {most:g}" if math.isfinite(most) else ""
        raise SystemExit(f"{name}={text!r} is not a number of {unit}{bounds} ({zero})")
    return value


def _region(text: str) -> str:
    try:
        return phone_region(text)
    except ValueError as error:
        raise SystemExit(f"JOURNEY_PHONE_REGION: {error}") from None


def _complaint_days(env: Mapping[str, str]) -> int:
    try:
        return complaint_days(env)
    except ValueError as error:
        raise SystemExit(str(error)) from None


def _switch(env: Mapping[str, str], name: str) -> bool | None:
    """on / off / auto (None: the command decides), in the spellings people use."""
    text = env.get(name, "").strip().lower()
    if text in ("", "auto"):
        return None
    if text in ("1", "on", "true", "yes"):
        return True
    if text in ("0", "off", "false", "no"):
        return False
    raise SystemExit(f"{name}={text!r} is not on, off or auto")


def _count(env: Mapping[str, str], name: str, default: int, least: int = 1) -> int:
    text = env.get(name, "").strip()
    if not text:
        return default
    if not text.isdigit() or int(text) < least:
        raise SystemExit(f"{name}={text!r} is not a whole number of at least {least}")
    return int(text)
