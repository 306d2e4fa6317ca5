"""Embedded projection runner: follows the store's notification log into the projections.

The SQLite recorder cannot push (no ``subscribe()``), so the runner polls
``select_notifications`` from the projection's own recorded position. Notification ids have
gaps after rejected writes; a gap is never treated as loss, the position simply moves past it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from ledger.application import JourneyApplication, decode_notification
from projections.duckdb_store import ProjectionStore

#: Facts per DuckDB transaction: large enough to amortise the commit and the view reads.
DEFAULT_BATCH = 20_000


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
    """Project everything recorded so far; returns the number of facts projected."""
    started = time.monotonic()
    head = app.recorder.max_notification_id() or 0
    position = store.position()
    projected = 0
    while position < head:
        notifications = app.recorder.select_notifications(
            position, batch_size, stop=head, inclusive_of_start=False)
        if not notifications:
            break
        batch = [decode_notification(app, n) for n in notifications]
        projected += store.apply(batch, before_commit=before_commit)
        position = batch[-1].position
        if on_progress is not None:
            on_progress(Progress(projected, position, head, time.monotonic() - started))
    return projected
