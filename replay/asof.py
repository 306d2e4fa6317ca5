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

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

from domain import catalogue
from ledger.application import JourneyApplication, StoredFact, opener, record_history, sealed_history_of
from projections import customer_view
from projections.customer_view import View

Axis = Literal["recorded", "occurred"]
Keep = Callable[[StoredFact], bool]


def occurred_at(sf: StoredFact) -> datetime:
    return datetime.fromisoformat(sf.fact["occurred_at"]).astimezone(UTC)


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
           history: Callable[[str], list[StoredFact]] | None = None) -> list[StoredFact]:
    """``root``'s facts that pass ``keep``, with those of every record merged into it (among
    the kept facts) and not split off again; in store-position order."""
    if history is not None:
        return record_history(history, root, keep).facts
    # Filter on the sealed facts, open only the kept ones (times and ids are public).
    return record_history(sealed_history_of(app), root, keep, open_kept=opener(app)).facts


def fold(customer_id: str, facts: list[StoredFact]) -> View:
    """The fold state of these facts (customer_view.apply on each, as the projection does)."""
    view = customer_view.new_view(customer_id)
    for sf in facts:
        fact = catalogue.upcast(sf.fact)
        entry = customer_view.entry_of(fact, sf.position, sf.recorded_at.isoformat())
        customer_view.apply(view, fact, entry, catalogue.channel_of(fact))
    return view


@dataclass
class AsOf:
    customer_id: str
    axis: Axis
    at: datetime
    facts: list[StoredFact]
    #: occurred at or before ``at`` but recorded after it (only on the ``occurred`` axis).
    late: list[StoredFact] = field(default_factory=list)

    @property
    def view(self) -> View:
        return fold(self.customer_id, self.facts)

    def rendered(self) -> dict[str, Any]:
        return customer_view.render(self.view, now=self.at)

    def timeline(self) -> list[dict[str, Any]]:
        """Rows shaped like ``ProjectionStore.timeline`` (what ``render_text`` reads)."""
        late = {sf.position for sf in self.late}
        rows = []
        for sf in sorted(self.facts, key=lambda s: (occurred_at(s), s.position)):
            fact = catalogue.upcast(sf.fact)
            data = fact.get("data", {})
            rows.append({
                "position": sf.position, "event_id": fact["event_id"], "type": fact["type"],
                "occurred_at": fact["occurred_at"], "recorded_at": sf.recorded_at.isoformat(),
                "source": fact["source"], "source_id": fact["id"],
                "department": fact.get("department"), "agent": fact.get("agent"),
                "channel": catalogue.channel_of(fact), "purpose": data.get("purpose"),
                "campaign": data.get("campaign"), "case_id": data.get("case_id"),
                "data": data, "late": sf.position in late,
            })
        return rows

    def to_json(self) -> dict[str, Any]:
        return {
            **self.rendered(),
            "as_of": {"axis": self.axis, "at": self.at.isoformat(),
                      "facts": len(self.facts),
                      "through_position": max((sf.position for sf in self.facts), default=0)},
            "recorded_late": [{"event_id": sf.fact["event_id"], "type": sf.fact["type"],
                               "position": sf.position, "occurred_at": sf.fact["occurred_at"],
                               "recorded_at": sf.recorded_at.isoformat()} for sf in self.late],
            "timeline": self.timeline(),
        }


def as_of(app: JourneyApplication, customer_id: str, at: datetime, axis: Axis) -> AsOf:
    """``customer_id``'s view at ``at`` on one axis (see the module docstring)."""
    at = at.astimezone(UTC)
    if axis == "recorded":
        facts = gather(app, customer_id, lambda sf: sf.recorded_at <= at)
        return AsOf(customer_id, axis, at, facts)
    facts = gather(app, customer_id, lambda sf: occurred_at(sf) <= at)
    return AsOf(customer_id, axis, at, facts, late=[sf for sf in facts if sf.recorded_at > at])


def through_position(app: JourneyApplication, customer_id: str, position: int) -> list[StoredFact]:
    """``customer_id``'s facts (with merged records') at store positions <= ``position``."""
    return gather(app, customer_id, lambda sf: sf.position <= position)
