"""The composition root: the one place that wires stores, ledger and projections together.

Nothing connects at import time; every entrance asks :func:`bootstrap` for a :class:`Journey`
and closes it when done. :class:`Journey` is the wired :class:`journey.system.System` plus the
two calls of the Python API (record facts, read a customer), which hand over to the use cases
like every other entrance does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from consumers.jsonl_ingest import IngestSummary
from consumers.log_follower import Progress
from domain import identity
from journey.config import Settings
from journey.sharing import writer_turns
from journey.system import System
from journey.usecases import customers, recording
from ledger.application import open_application, sqlite_env
from ledger.writer import Ledger


class Journey(System):
    """One open ledger, for the CLI, the server and Python code alike."""

    def record(self, facts: Iterable[Mapping[str, Any]], batch: int = recording.BATCH) -> IngestSummary:
        """Record facts given as dicts (the JSON contract): the Python face of ``journey append``.

        Same validation, same batching, same result: bad facts are in ``rejected`` with their
        1-based index as ``line``; the projections are brought up to date afterwards (by the
        running ``journey serve`` that holds them, if there is one; if another process holds
        them past JOURNEY_WAIT, by the next read, which always catches up first).
        """
        summary = recording.record_lines(self, recording.lines_of(facts), batch=batch)
        recording.after_recording(self)
        return summary

    def customer(self, ref: str, now: datetime | None = None, timeline_limit: int | None = None,
                 on_progress: Callable[[Progress], None] | None = None) -> dict[str, Any] | None:
        """The unified view of whoever ``ref`` names (+34..., @handle, e-mail, C-1, ledger id,
        kind:value), with its timeline; None when nobody is known by it."""
        return customers.customer(self, ref, now=now, timeline_limit=timeline_limit,
                                  on_progress=on_progress)


def bootstrap(settings: Settings) -> Journey:
    settings.check()  # also for settings built in code rather than loaded
    # The domain reads no environment: the region phones without a country code belong to is
    # set here, once, for whatever this process checks or looks up.
    identity.set_phone_region(settings.phone_region)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if settings.store == "postgres":
        from ledger.postgres_recorder import postgres_env

        try:  # the event store is the server; the projections (DuckDB) and rejects stay local
            env = postgres_env(str(settings.postgres_url))
        except ValueError as error:
            raise SystemExit(f"JOURNEY_POSTGRES_URL: {error}") from None
    else:
        env = sqlite_env(str(settings.sqlite_path))
    app = open_application(env)
    # Writers of one SQLite file (an append beside a server) take turns per batch; PostgreSQL
    # writers may sit on other machines, so they meet in the store and retry instead.
    take_turn = writer_turns(settings.writer_lock_path) if settings.store == "sqlite" else None
    return Journey(settings, app, Ledger(app, take_turn=take_turn))


def open_ledger(data_dir: str | None = None) -> Journey:
    """The embedded ledger in ``data_dir`` (default: JOURNEY_HOME or ./.journey), for Python use.

        with closing(open_ledger("./.journey")) as ledger:
            ledger.record([{"type": "call.inbound", ...}])
            view = ledger.customer("+34600000001")
    """
    return bootstrap(Settings.load(data_dir))
