"""Embedded projection runner: follows the store's notification log into the projections.

The SQLite recorder cannot push (no ``subscribe()``), so the runner polls
``select_notifications`` from the projection's own recorded position. Notification ids have
gaps after rejected writes; a gap is never treated as loss, the position simply moves past it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ledger.application import JourneyApplication, StoredFact, decode_notifications
from projections.duckdb_store import ProjectionStore

#: Facts per DuckDB transaction. Each transaction rewrites every customer it touched once
#: (view, customers, identities, derived rows): at 20,000 a 1M-event catch-up rewrote most
#: customers 50 times over. The facts are read and folded in chunks of :data:`READ_CHUNK`,
#: so memory holds one chunk of facts plus the touched customers' views.
DEFAULT_BATCH = 200_000
#: Facts read from the store and decoded at a time.
READ_CHUNK = 20_000


@dataclass(slots=True)
class Progress:
    projected: int
    position: int
    head: int
    elapsed: float


def catch_up(
    app: JourneyApplication,
    store: ProjectionStore,
    batch_size: int = DEFAULT_BATCH,
    on_progress: Callable[[Progress], None] | None = None,
    before_commit: Callable[[], None] | None = None,
) -> int:
    """Project everything recorded so far; returns the number of facts projected.

    ``batch_size`` facts (at most) go into each DuckDB transaction, with their position.
    """
    started = time.monotonic()
    head = app.recorder.max_notification_id() or 0
    chunk = max(1, min(batch_size, READ_CHUNK))
    read = {"position": store.position(), "facts": 0, "end": False}
    projected = 0

    def chunks() -> Iterator[list[StoredFact]]:
        taken = 0
        while read["position"] < head and taken < batch_size:
            notifications = app.recorder.select_notifications(
                int(read["position"]), min(chunk, batch_size - taken), stop=head,
                inclusive_of_start=False)
            if not notifications:
                read["end"] = True
                return
            batch = decode_notifications(app, notifications)
            taken += len(batch)
            read["position"] = batch[-1].position
            yield batch
            read["facts"] += len(batch)
            if on_progress is not None:
                on_progress(Progress(projected + int(read["facts"]), int(read["position"]), head,
                                     time.monotonic() - started))

    while read["position"] < head and not read["end"]:
        read["facts"] = 0
        projected += store.apply_chunks(chunks(), before_commit=before_commit)
    return projected
