"""The composition root: the one place that wires stores, ledger and projections together.

Nothing connects at import time; every command asks :func:`bootstrap` for a :class:`Journey`
and closes it when done.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from consumers.log_follower import DEFAULT_BATCH, Progress, catch_up
from journey.config import Settings
from ledger.application import JourneyApplication, open_application, sqlite_env
from ledger.writer import Ledger
from projections.duckdb_store import ProjectionStore


@dataclass
class Journey:
    settings: Settings
    app: JourneyApplication
    ledger: Ledger
    _projections: ProjectionStore | None = field(default=None, repr=False)

    @property
    def projections(self) -> ProjectionStore:
        if self._projections is None:
            self._projections = ProjectionStore(self.settings.duckdb_path)
        return self._projections

    def project(self, on_progress: Callable[[Progress], None] | None = None,
                before_commit: Callable[[], None] | None = None, batch: int = DEFAULT_BATCH) -> int:
        """Bring the embedded projections up to the store's head."""
        return catch_up(self.app, self.projections, batch_size=batch, on_progress=on_progress,
                        before_commit=before_commit)

    def close(self) -> None:
        if self._projections is not None:
            self._projections.close()
            self._projections = None
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
    return Journey(settings, app, Ledger(app))
