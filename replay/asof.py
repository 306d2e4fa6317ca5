"""A customer's view as it stood at an instant, folded from the event store (never from DuckDB).

Two time axes (docs/audit.md):

- ``recorded``: what the company KNEW at T: only facts the ledger recorded at or before T.
- ``occurred``: what had HAPPENED by T, whatever was learned later: facts with occurred_at <= T,
  including those recorded after T (a late upload). Those are listed as ``late``.

The customer's own facts are read with ``history_of(app)``; records merged into them (by then,
on the same axis) are followed recursively and folded in, and a record split off again by a
``customer.unmerged`` that passes the cut is left out, as ``projections.duckdb_store`` does.
The fold is ``projections.customer_view`` (pure, order-insensitive), so the result is the
same view the projection would hold had it seen exactly those facts.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from ledger.application import (
    JourneyApplication,
    StoredFact,
    decode_sealed,
    opener,
    record_history,
    sealed_history_of,
)
from projections import quarantine, readable
from projections.rules import DEFAULT_RULES, Rules
from replay import asof_checkpoints, fact_reader
from replay.asof_view import AsOf as AsOf
from replay.asof_view import Axis as Axis
from replay.asof_view import Prepared as Prepared
from replay.asof_view import fold as fold
from replay.asof_view import fold_into as fold_into
from replay.asof_view import occurred_at as occurred_at
from replay.asof_view import page_of as page_of
from replay.asof_view import paged as paged
from replay.asof_view import prepare as prepare

log = logging.getLogger("journey.asof")

Keep = Callable[[StoredFact], bool]


def resolve(app: JourneyApplication, key: str) -> str | None:
    """The customer (ledger id) an identity key names today, from the write-side index.

    A merged-away record is followed to the record it was merged into.
    """
    if key.startswith("ledger:"):
        customer: UUID | None = UUID(key.split(":", 1)[1])
    else:
        customer = app.index.identity_owners([key]).get(key)
    seen: set[UUID] = set()
    while customer is not None and customer not in seen:
        seen.add(customer)
        record = app.index.customer_records([customer]).get(customer)
        if record is None or record.merged_into is None:
            return str(customer)
        customer = record.merged_into
    return None


def gather(app: JourneyApplication, root: str, keep: Keep,
           history: Callable[[str], list[StoredFact]] | None = None,
           skipped: set[int] | None = None) -> list[StoredFact]:
    """``root``'s facts that pass ``keep``, with those of every record merged into it (among
    the kept facts) and not split off again; in store-position order. Facts the readers
    cannot handle (projections/readable.py) are left out, their positions put in
    ``skipped``: the projection quarantines the same ones."""
    out = set() if skipped is None else skipped
    guarded = _guarded_keep(keep, out)
    if history is not None:
        return _readable(record_history(_screened(history, out), root, guarded).facts, out)
    # Filter on the sealed facts, open only the kept ones (times and ids are public).
    return _readable(record_history(_sealed_history(app, out), root, guarded,
                                    open_kept=opener(app)).facts, out)


def gather_cut(app: JourneyApplication, root: str, cut: fact_reader.Cut, keep: Keep,
               skipped: set[int] | None = None) -> list[StoredFact]:
    """:func:`gather` for a cut ``fact_reader`` can apply to the stored bytes (the same facts;
    ``keep`` must be the same cut, used where the store is not one it reads)."""
    out = set() if skipped is None else skipped
    read = fact_reader.reader(app, cut, out)
    if read is None:
        return gather(app, root, keep, skipped=out)
    return _readable(record_history(read, root, _everything, open_kept=fact_reader.opener(app)).facts,
                     out)


def _guarded_keep(keep: Keep, skipped: set[int]) -> Keep:
    def guarded(sf: StoredFact) -> bool:
        try:
            return keep(sf)
        except quarantine.FACT_ERRORS:
            skipped.add(sf.position)
            return False
    return guarded


def _screened(read: Callable[[str], list[StoredFact]], skipped: set[int]
              ) -> Callable[[str], list[StoredFact]]:
    def history(customer_id: str) -> list[StoredFact]:
        facts = read(customer_id)
        skipped.update(sf.position for sf in facts if not fact_reader.traversable(sf))
        return [sf for sf in facts if fact_reader.traversable(sf)]
    return history


def _sealed_history(app: JourneyApplication, skipped: set[int]) -> Callable[[str], list[StoredFact]]:
    """``sealed_history_of``, one entry at a time for a record whose entries do not all decode."""
    fast = sealed_history_of(app)

    def history(customer_id: str) -> list[StoredFact]:
        try:
            facts = fast(customer_id)
        except Exception:  # some entry's fault: found one by one
            facts = []
            for n in app.index.facts_of(UUID(customer_id)):
                try:
                    facts.append(decode_sealed(app, n))
                except Exception:  # an entry the mapper cannot decode
                    skipped.add(n.id)
        return _screened(lambda _: facts, skipped)(customer_id)
    return history


def _readable(facts: list[StoredFact], skipped: set[int]) -> list[StoredFact]:
    kept = []
    for sf in facts:
        if readable.problem(sf) is None:
            kept.append(sf)
        else:
            skipped.add(sf.position)
    return kept


def _everything(sf: StoredFact) -> bool:
    return True


def as_of(app: JourneyApplication, customer_id: str, at: datetime, axis: Axis,
          rules: Rules = DEFAULT_RULES) -> AsOf:
    """``customer_id``'s view at ``at`` on one axis (see the module docstring), to be rendered
    under ``rules`` (the ledger's settings)."""
    at = at.astimezone(UTC)
    skipped: set[int] = set()
    if axis == "recorded":
        facts = gather_cut(app, customer_id, fact_reader.Cut("recorded", at),
                           lambda sf: sf.recorded_at <= at, skipped)
        return AsOf(customer_id, axis, at, facts, quarantined=sorted(skipped), rules=rules)
    facts = gather_cut(app, customer_id, fact_reader.Cut("occurred", at),
                       lambda sf: occurred_at(sf) <= at, skipped)
    return AsOf(customer_id, axis, at, facts, late=[sf for sf in facts if sf.recorded_at > at],
                quarantined=sorted(skipped), rules=rules)


def document(app: JourneyApplication, customer_id: str, at: datetime, axis: Axis, limit: int,
             oldest: bool = False, rules: Rules = DEFAULT_RULES) -> dict[str, Any] | None:
    """``customer_id``'s as-of document (``AsOf.to_json``) with one page of its timeline and of
    its late facts (:func:`paged`); None when no fact passes the cut.

    A record with a long history is answered from its fold checkpoint (replay/asof_checkpoints.py,
    made on its first such view): the same document, at a cost that follows the page and the
    facts near ``at`` rather than the whole history. Anything a checkpoint cannot answer
    (merged records, a forgotten person, another store) folds every fact."""
    at = at.astimezone(UTC)
    try:
        return asof_checkpoints.paged_view(app, customer_id, at, axis, limit, oldest, rules)
    except asof_checkpoints.Unavailable:
        pass
    except (sqlite3.Error, OSError) as error:  # the checkpoint file: derived data, never in the way
        log.warning("as-of checkpoints unavailable (%s); folding every fact", error)
    except quarantine.FACT_ERRORS as error:  # a fact the readers cannot handle: left out below
        log.warning("as-of checkpoint of %s: %s; folding every readable fact", customer_id,
                    quarantine.failure(error))
    result = as_of(app, customer_id, at, axis, rules)
    if not result.facts:
        return None
    return paged(result.to_json(), limit, oldest)


def through_position(app: JourneyApplication, customer_id: str, position: int) -> list[StoredFact]:
    """``customer_id``'s facts (with merged records') at store positions <= ``position``."""
    return gather_cut(app, customer_id, fact_reader.Cut("position", position=position),
                      lambda sf: sf.position <= position)
