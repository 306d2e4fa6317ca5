"""The wired parts of one ledger: its settings, event store, writer and projections.

:func:`journey.bootstrap.bootstrap` builds it; the use cases (journey/usecases/) take it as
their one dependency. It sits below the use cases so that they can name it without importing
the composition root, and it holds no use case itself: recording, reading a customer and the
rest live in journey/usecases/, which every entrance (the CLI, the HTTP API, the server's
duties, the Python API) calls.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from consumers.jsonl_ingest import FactParser, fact_parser
from consumers.log_follower import Progress, catch_up
from journey.config import Settings
from journey.sharing import open_projections
from ledger.application import JourneyApplication, history_of
from ledger.writer import Ledger
from projections.duckdb_store import ProjectionStore


@dataclass
class System:
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
                lambda: ProjectionStore(self.settings.duckdb_path, rules=self.settings.rules))
            self._projections = store  # closed by close() even if what follows fails
            store.history = history_of(self.app)
            return store
        return self._projections

    @property
    def parse(self) -> FactParser:
        """How every door of this ledger judges a fact (the settings' instant range)."""
        return fact_parser(self.settings.earliest, self.settings.latest)

    def project(self, on_progress: Callable[[Progress], None] | None = None,
                before_commit: Callable[[], None] | None = None, batch: int | None = None) -> int:
        """Bring the embedded projections up to the store's head."""
        return catch_up(self.app, self.projections, batch_size=batch, on_progress=on_progress,
                        before_commit=before_commit, parallel=self.settings.parallel)

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
