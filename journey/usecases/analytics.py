"""The analysts' use cases: publish the snapshot, query it, draw from it (docs/analytics.md).

None of them needs ``projections.duckdb`` while another process holds it: a query and a
picture read the Parquet snapshot (journey/analytics/snapshots.py), and an export asks the
holder (``journey serve``) to publish one when it cannot open the file itself.

``partitioned``: the same over the Kafka projectors' partitioned dataset (every partition's
snapshot, read as one), which the projectors publish themselves.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb

from journey.analytics import plots, sandbox
from journey.analytics.snapshots import (
    Dataset,
    Export,
    analytics_dir,
    dataset_dir,
    export,
    export_partition,
    exported_since,
    open_snapshot,
    release,
    request_export,
)
from journey.references import reference_key
from journey.system import System
from projections.duckdb_store import ProjectionStore


def snapshot_dir(system: System, partitioned: bool = False) -> Path:
    """Where the analyst snapshot of this ledger is published (``partitioned``: the Kafka
    projectors' partitioned dataset)."""
    directory = analytics_dir(system.settings)
    return dataset_dir(directory) if partitioned else directory


# --------------------------------------------------------------------------- export

class Held(Exception):
    """Another process holds projections.duckdb: ask it to export (:func:`ask_for_export`)."""


def _is_lock_error(error: BaseException) -> bool:
    return isinstance(error, duckdb.IOException) and "lock" in str(error).lower()


def export_here(system: System) -> Export:
    """Bring the projections up to the store's head and publish the snapshot from them; raises
    :class:`Held` when another process holds them."""
    try:
        store = system.projections
    except duckdb.Error as error:
        if not _is_lock_error(error):
            raise
        raise Held(str(error)) from error
    system.project()
    return export(store, snapshot_dir(system))


class NoPartitions(Exception):
    """No Kafka projector has written a partition file in this data directory."""


@dataclass(frozen=True, slots=True)
class PartitionsExported:
    directory: Path
    done: list[Export]
    #: Partition files a running projector holds: it exports them itself.
    held: list[str]


def export_partitions(system: System) -> PartitionsExported:
    """Publish the snapshot of every Kafka partition file no projector holds (one that a
    projector holds is exported by that projector, every ``JOURNEY_EXPORT_INTERVAL`` seconds).
    Raises :class:`NoPartitions` when there is no partition file."""
    source = system.settings.partitions_dir
    target = snapshot_dir(system, partitioned=True)
    done: list[Export] = []
    held: list[str] = []
    files = [(path, topic, number) for path in sorted(source.glob("*.duckdb"))
             for topic, _, number in [path.stem.rpartition("-")] if topic and number.isdigit()]
    if not files:
        raise NoPartitions(f"no partition file in {source}: run `journey project --source kafka`")
    for path, topic, number in files:
        try:
            store = ProjectionStore(path, name=f"kafka:{topic}:{number}", read_only=True,
                                    rules=system.settings.rules)
        except duckdb.Error as error:
            if not _is_lock_error(error):
                raise
            held.append(path.stem)
            continue
        try:
            done.append(export_partition(store, target))
        finally:
            store.close()
    return PartitionsExported(target, done, held)


def ask_for_export(system: System) -> float:
    """Leave the process holding the projections a request to export; returns when it was asked."""
    return request_export(snapshot_dir(system))


class ExportTimedOut(Exception):
    """The process holding the projections did not export within the time given."""


@dataclass(frozen=True, slots=True)
class Exported:
    done: Export
    #: Seconds waited for the process holding the projections.
    waited: float


def wait_for_export(system: System, asked: float, timeout: float,
                    on_wait: Callable[[float], None] | None = None) -> Exported:
    """The snapshot exported since ``asked`` by the process holding the projections, waiting
    up to ``timeout`` seconds; ``on_wait`` gets the seconds waited, about once a second.
    Raises :class:`journey.analytics.snapshots.ExportFailed` when that process reported a failed
    export, :class:`ExportTimedOut` when it did not export in time."""
    directory = snapshot_dir(system)
    clock = time.monotonic()
    shown = clock
    while True:
        done = exported_since(directory, asked)
        waited = time.monotonic() - clock
        if done is not None:
            return Exported(done, waited)
        if waited >= timeout:
            raise ExportTimedOut(f"no export within {timeout:g} s")
        if time.monotonic() - shown >= 1:
            shown = time.monotonic()
            if on_wait is not None:
                on_wait(waited)
        time.sleep(0.1)


# --------------------------------------------------------------------------- sql

@dataclass(frozen=True, slots=True)
class Answer:
    columns: list[str]
    rows: list[tuple[object, ...]]
    #: The snapshot the query read (the partitions' snapshots, of the partitioned dataset).
    snapshot: Export | Dataset


def query(system: System, text: str, partitioned: bool = False) -> Answer:
    """Run ``text`` (one or more statements) in the analyst sandbox over the snapshot
    (``partitioned``: over the partitioned dataset); the columns and rows of the last
    statement. Raises :class:`journey.analytics.snapshots.NoSnapshot`,
    :class:`journey.analytics.sandbox.Refused` (a statement the sandbox does not run) or
    :class:`duckdb.Error` (bad SQL)."""
    columns, rows, snapshot = sandbox.answer(snapshot_dir(system, partitioned), text,
                                             partitioned=partitioned)
    return Answer(columns, rows, snapshot)


def analyst_views(system: System, partitioned: bool = False) -> list[str]:
    """The names a query can read (for a message about a name that is not one of them)."""
    return sandbox.names(snapshot_dir(system, partitioned), partitioned=partitioned)


# --------------------------------------------------------------------------- plot

def resolve(system: System, ref: str) -> tuple[str, str | None] | None:
    """(ledger id, customer number) of whoever ``ref`` names, from the event store's index.

    The store, not the snapshot: the snapshot holds no identities (phones, e-mails...), and the
    store (SQLite or PostgreSQL) can be read while another process writes. A record merged
    into another is followed to the one that holds its facts now.
    """
    key = reference_key(ref)
    index = system.app.index
    if key.startswith("ledger:"):
        owner: uuid.UUID | None = uuid.UUID(key.split(":", 1)[1])
    else:
        owner = index.identity_owners([key]).get(key)
    if owner is None:
        return None
    number = None
    for _ in range(32):  # merges form chains, never cycles; the bound is only a guard
        record = index.customer_records([owner]).get(owner)
        if record is None:
            break
        number = record.customer_number
        if record.merged_into is None:
            break
        owner = record.merged_into
    return str(owner), number


class BadReference(ValueError):
    """A reference that cannot name anyone."""


class Unknown(LookupError):
    """Nobody is known by the reference."""


class NotInSnapshot(LookupError):
    """The customer is known, but the snapshot holds none of their facts (it is older)."""

    def __init__(self, customer_id: str, position: int | None) -> None:
        at = "" if position is None else f" (position {position:,})"
        super().__init__(f"{customer_id} has no facts in the snapshot{at}")
        self.customer_id = customer_id
        #: None for the partitioned dataset (each partition has its own).
        self.position = position


def customer_plot(system: System, ref: str, partitioned: bool = False) -> str:
    """Whoever ``ref`` names, their journey as an SVG timeline. Raises :class:`BadReference`,
    :class:`Unknown`, :class:`journey.analytics.snapshots.NoSnapshot` or :class:`NotInSnapshot`."""
    try:
        found = resolve(system, ref)
    except ValueError as error:  # domain.errors.InvalidFact among them
        raise BadReference(str(error)) from error
    if found is None:
        raise Unknown(ref)
    con, snapshot = open_snapshot(snapshot_dir(system, partitioned), partitioned=partitioned)
    try:
        customer_id, number = found
        points, zone = plots.customer_points(con, customer_id)
        if not points:
            raise NotInSnapshot(customer_id, None if isinstance(snapshot, Dataset) else snapshot.position)
        who = number or ref
        title = f"Customer {who} (ledger id {customer_id})"
        return plots.customer_svg(points, title, zone)
    finally:
        con.close()
        release(snapshot)


class TooFewDays(ValueError):
    """A picture of the base needs at least one day."""


def base_plot(system: System, days: int, until: date | None = None, partitioned: bool = False) -> str:
    """Contacts per day per department over ``days`` days ending at ``until`` (default: the
    snapshot's last day with contacts), as SVG stacked bars. Raises
    :class:`journey.analytics.snapshots.NoSnapshot` or :class:`TooFewDays`."""
    con, snapshot = open_snapshot(snapshot_dir(system, partitioned), partitioned=partitioned)
    try:
        if days < 1:
            raise TooFewDays(f"days must be at least 1 (got {days})")
        span, series = plots.daily_contacts(con, days, until)
        return plots.base_svg(span, series)
    finally:
        con.close()
        release(snapshot)
