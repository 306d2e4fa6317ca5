"""The composition root: the one place that wires stores, ledger and projections together.

Nothing connects at import time; every command asks :func:`bootstrap` for a :class:`Journey`
and closes it when done.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from consumers.jsonl_ingest import IngestSummary, as_line, ingest
from consumers.log_follower import Progress, catch_up
from journey.config import Settings
from journey.sharing import open_projections, writer_turns
from ledger.application import JourneyApplication, history_of, open_application, sqlite_env
from ledger.writer import Ledger
from projections.customer_view import render
from projections.duckdb_store import ProjectionStore


@dataclass
class Journey:
    settings: Settings
    app: JourneyApplication
    ledger: Ledger
    _projections: ProjectionStore | None = field(default=None, repr=False)
    _let_go: Callable[[], None] | None = field(default=None, repr=False)

    @property
    def projections(self) -> ProjectionStore:
        """The DuckDB projections, opened on first use under the data directory's lock: a
        second process waits for the holder (JOURNEY_WAIT), then raises
        :class:`journey.sharing.Busy`."""
        if self._projections is None:
            store, self._let_go = open_projections(
                self.settings.lock_path, self.settings.wait_seconds,
                lambda: ProjectionStore(self.settings.duckdb_path))
            self._projections = store  # closed by close() even if what follows fails
            store.history = history_of(self.app)
            return store
        return self._projections

    def project(self, on_progress: Callable[[Progress], None] | None = None,
                before_commit: Callable[[], None] | None = None, batch: int | None = None) -> int:
        """Bring the embedded projections up to the store's head."""
        return catch_up(self.app, self.projections, batch_size=batch, on_progress=on_progress,
                        before_commit=before_commit)

    def record(self, facts: Iterable[Mapping[str, Any]], batch: int = 2000) -> IngestSummary:
        """Record facts given as dicts (the JSON contract): the Python face of ``journey append``.

        Same validation, same batching, same result: bad facts are in ``rejected`` with their
        1-based index as ``line``; the projections are brought up to date afterwards (by the
        running ``journey serve`` that holds them, if there is one).
        """
        from journey.forwarding import running_server

        summary = ingest(self.ledger, (as_line(f) for f in facts), batch_size=batch)
        if running_server(self.settings) is None:
            self.project()
        return summary

    def customer(self, ref: str, now: datetime | None = None, timeline_limit: int | None = None,
                 on_progress: Callable[[Progress], None] | None = None) -> dict[str, Any] | None:
        """The unified view of whoever ``ref`` names (+34..., @handle, e-mail, C-1, ledger id,
        kind:value), with its timeline; None when nobody is known by it."""
        from journey.references import reference_key

        self.project(on_progress=on_progress)
        store = self.projections
        customer_id = store.resolve(reference_key(ref))
        if customer_id is None:
            return None
        view = render(store.load_views([customer_id])[customer_id], now=now or datetime.now(UTC))
        return {**view, "as_of_position": store.position(),
                "timeline": store.timeline(customer_id, limit=timeline_limit)}

    def close(self) -> None:
        try:
            if self._projections is not None:
                self._projections.close()
                self._projections = None
        finally:
            if self._let_go is not None:
                self._let_go()
                self._let_go = None
            self.app.close()


def bootstrap(settings: Settings) -> Journey:
    if settings.store == "sqlite":
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        env = sqlite_env(str(settings.sqlite_path))
    elif settings.store == "postgres":
        from ledger.postgres_recorder import postgres_env

        if not settings.postgres_url:
            raise SystemExit("JOURNEY_STORE=postgres needs JOURNEY_POSTGRES_URL "
                             "(postgresql://user[:password]@host[:port]/dbname)")
        try:
            env = postgres_env(settings.postgres_url)
        except ValueError as error:
            raise SystemExit(f"JOURNEY_POSTGRES_URL: {error}") from None
        # The event store is the server; the projections (DuckDB) and rejects stay local.
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    else:
        raise SystemExit(f"JOURNEY_STORE={settings.store!r} is not a store: use 'sqlite' or 'postgres'")
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
