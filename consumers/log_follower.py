"""Embedded projection runner: follows the store's notification log into the projections.

The SQLite recorder cannot push (no ``subscribe()``), so the runner polls the store's rows
(``select_rows``) from the projection's own recorded position. Notification ids have
gaps after rejected writes; a gap is never treated as loss, the position simply moves past it.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import ExitStack
from dataclasses import dataclass, replace
from uuid import UUID

from eventsourcing.persistence import Notification

from ledger.application import JourneyApplication, StoredFact, decode_rows, decodes_in_bulk
from ledger.decoding import Row
from projections import preparing, quarantine, readable
from projections.duckdb_store import ProjectionStore

log = logging.getLogger(__name__)

#: Facts per DuckDB transaction. Each transaction recomputes the derived rows of every customer
#: it touched once, at its end, so a long catch-up gains from long transactions; the facts are
#: read and written in chunks of :data:`READ_CHUNK`, so memory holds one chunk of facts
#: whatever the length (DuckDB spills its own beyond its memory limit). A killed catch-up
#: loses at most this stretch's work, never its consistency.
DEFAULT_BATCH = 1_000_000
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
    batch_size: int | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    before_commit: Callable[[], None] | None = None,
    read_chunk: int = READ_CHUNK,
    parallel: preparing.Parallel | None = None,
) -> int:
    """Project everything recorded so far; returns the number of facts projected.

    ``batch_size`` facts (at most, default :data:`DEFAULT_BATCH`) go into each DuckDB
    transaction, with their position. ``read_chunk``: facts read from the store and decoded
    at a time. ``parallel``: when worker processes decode and check the facts
    (projections/preparing.py; default ``Parallel()``).

    A fact the projection cannot handle is quarantined (projections/quarantine.py): most are
    recognised before they are written (projections/readable.py); when writing a stretch
    raises anyway, the stretch is rolled back and redone a chunk at a time, halving the
    failing part until the facts that fail on their own are found (:func:`_isolate`).
    """
    if (batch_size is not None and batch_size < 1) or read_chunk < 1:
        # Below 1 the loop below would read nothing and never reach the head.
        raise ValueError(f"a catch-up needs a batch and a read chunk of at least 1 "
                         f"(batch_size={batch_size}, read_chunk={read_chunk})")
    started = time.monotonic()
    # The facts an unmerge gives back are read from the store without those this log's
    # projection quarantines where they stand.
    store.history = quarantine.readable_history_of(app)
    head = app.recorder.max_notification_id() or 0
    in_order = DEFAULT_BATCH if batch_size is None else batch_size
    chunk = max(1, min(in_order, read_chunk))
    read = {"position": store.position(), "facts": 0, "end": False}
    projected = 0

    select_rows = getattr(app.recorder, "select_rows", None)
    plan = parallel or preparing.Parallel()
    workers = (select_rows is not None and decodes_in_bulk(app)
               and plan.wanted(head - int(read["position"])))
    resources = ExitStack()
    preparer = resources.enter_context(preparing.Preparer(plan.workers)) if workers else None

    def prepared_chunks() -> Iterator[preparing.Prepared]:
        """The stretch's chunks prepared by the workers, in log order: the store is read and
        a chunk sent ahead while the chunk before is written."""
        assert select_rows is not None and preparer is not None
        pending: deque[tuple[Sequence[Row], Future[preparing.Prepared | None]]] = deque()
        taken, after, ended = 0, int(read["position"]), False
        while True:
            while not ended and len(pending) <= plan.workers and after < head and taken < in_order:
                rows = select_rows(after, min(chunk, in_order - taken), head)
                if not rows:
                    ended = True
                    break
                taken += len(rows)
                after = rows[-1][0]
                pending.append((rows, preparer.submit(rows, app.keys)))
            if not pending:
                read["end"] = ended
                return
            rows, future = pending.popleft()
            prepared = future.result() or preparing.prepare(_decode(app, rows))
            read["position"] = rows[-1][0]
            yield prepared
            read["facts"] += len(rows)
            if on_progress is not None:
                on_progress(Progress(projected + int(read["facts"]), int(read["position"]), head,
                                     time.monotonic() - started))

    def chunks() -> Iterator[list[StoredFact]]:
        taken = 0
        while read["position"] < head and taken < in_order:
            batch = _read(app, int(read["position"]), min(chunk, in_order - taken), head)
            if not batch:
                read["end"] = True
                return
            taken += len(batch)
            read["position"] = batch[-1].position
            yield batch
            read["facts"] += len(batch)
            if on_progress is not None:
                on_progress(Progress(projected + int(read["facts"]), int(read["position"]), head,
                                     time.monotonic() - started))

    with resources:
        while read["position"] < head and not read["end"]:
            read["facts"] = 0
            at = int(read["position"])
            try:
                projected += store.apply_chunks(prepared_chunks() if workers else chunks(),
                                                before_commit=before_commit)
            except quarantine.FACT_ERRORS as error:
                # Rolled back to the last commit: redo the stretch this transaction was reading.
                stop = min(head, at + in_order)
                log.warning("positions %d-%d: %s; isolating the facts at fault", at + 1, stop,
                            quarantine.failure(error))
                projected += _isolate(app, store, stop, chunk, before_commit)
                read["position"] = store.position()
                read["end"] = False
    return projected


def _isolate(app: JourneyApplication, store: ProjectionStore, end: int, chunk: int,
             before_commit: Callable[[], None] | None) -> int:
    """Project the log from the store's position up to ``end`` in log order, a chunk per
    transaction; a chunk that fails is halved until each fact that fails on its own is found,
    and that fact is quarantined with the position (the rest of its chunk goes on). Slow, but
    only ever run over a stretch that failed."""
    projected = 0

    def apply(batch: list[StoredFact]) -> None:
        nonlocal projected
        try:
            projected += store.apply(batch, before_commit=before_commit)
        except quarantine.FACT_ERRORS as error:
            if len(batch) == 1:
                store.apply(batch, before_commit=before_commit,
                            refuse={batch[0].position: quarantine.failure(error)})
                log.warning("position %d quarantined: %s", batch[0].position, quarantine.failure(error))
                return
            half = len(batch) // 2
            apply(batch[:half])
            apply(batch[half:])

    while (at := store.position()) < end:
        batch = _read(app, at, chunk, end)
        if not batch:
            break
        apply(batch)
    return projected


def _read(app: JourneyApplication, after: int, limit: int, stop: int) -> list[StoredFact]:
    """The facts after position ``after`` up to ``stop`` (at most ``limit``), as
    :func:`projections.quarantine.decode` gives them: read as the driver's rows and decoded in
    bulk (:func:`_decode`) from a store that reads them so (SQLite, PostgreSQL)."""
    select_rows = getattr(app.recorder, "select_rows", None)
    if select_rows is None:
        return quarantine.decode(app, app.recorder.select_notifications(
            after, limit, stop=stop, inclusive_of_start=False))
    return _decode(app, select_rows(after, limit, stop))


def _decode(app: JourneyApplication, rows: Sequence[Row]) -> list[StoredFact]:
    """:func:`projections.quarantine.decode` for stored rows: a batch of rows that all decode
    goes through ``decode_rows`` (no ``Notification`` and ``UUID`` per row: two thirds of the
    read); a batch with a row that cannot be decoded, or is too big to try, goes to
    ``quarantine.decode``, which stands in for each such row."""
    if not any(len(row[4]) > readable.MAX_FACT_BYTES * 2 for row in rows):
        try:
            return decode_rows(app, rows)
        except Exception:  # any row's fault: quarantine.decode finds which
            pass
    return quarantine.decode(app, [
        Notification(id=r[0], originator_id=r[1] if isinstance(r[1], UUID) else UUID(r[1]),
                     originator_version=r[2], topic=r[3], state=r[4]) for r in rows])


@dataclass(slots=True)
class Retried:
    #: Positions applied at last (their entries are gone).
    applied: list[int]
    #: Entries still quarantined, with the reason as of this attempt.
    remaining: list[quarantine.Entry]
    #: Positions no longer in the store (their entries are gone).
    gone: list[int]


def retry_quarantined(app: JourneyApplication, store: ProjectionStore) -> Retried:
    """Apply the quarantined facts again, in log order, after the projection has caught up:
    those the readers can handle now (the code was fixed, an upcaster added, the stored event
    corrected) are applied and leave the quarantine; the others stay, with today's reason."""
    catch_up(app, store)
    result = Retried([], [], [])
    for entry in store.quarantined():
        notifications = app.recorder.select_notifications(entry.position, 1, stop=entry.position)
        if not notifications or notifications[0].id != entry.position:
            store.drop_entry(entry)
            result.gone.append(entry.position)
            continue
        [sf] = quarantine.decode(app, notifications)
        reason = store.reapply(sf)
        if reason is None:
            result.applied.append(entry.position)
        else:
            result.remaining.append(replace(entry, reason=reason))
    return result
