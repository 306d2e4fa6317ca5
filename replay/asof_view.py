"""An as-of view: the fold of a record's facts and the document it is shown as.

What a past view IS, whichever way its facts were found: ``replay.asof`` gathers them from the
event store (every fact), ``replay.asof_checkpoints`` starts from a stored fold state and adds
the facts after it, ``replay.kafka_asof`` reads them from the events topic. All three fold and
shape the document here, so the three answers are the same document; and both gatherers import
this module, never each other (``replay.asof`` chooses the checkpoint, so it sits above it).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from domain import catalogue
from ledger.application import StoredFact
from projections import customer_view
from projections.customer_view import View
from projections.rules import DEFAULT_RULES, Rules

Axis = Literal["recorded", "occurred"]
T = TypeVar("T")


def occurred_at(sf: StoredFact) -> datetime:
    return datetime.fromisoformat(sf.fact["occurred_at"]).astimezone(UTC)


#: A fact as the view and the timeline read it: (stored fact, upcast fact, channel, recorded_at
#: in ISO form). Prepared once per view: the fold and the timeline both need every one.
Prepared = tuple[StoredFact, dict[str, Any], str | None, str]


def prepare(facts: list[StoredFact]) -> list[Prepared]:
    upcast, channel_of = catalogue.upcast, catalogue.channel_of
    prepared = []
    for sf in facts:
        fact = upcast(sf.fact)
        prepared.append((sf, fact, channel_of(fact), sf.recorded_at.isoformat()))
    return prepared


def fold(customer_id: str, facts: list[StoredFact]) -> View:
    """The fold state of these facts (customer_view.apply on each, as the projection does)."""
    return _fold(customer_id, prepare(facts))


def _fold(customer_id: str, prepared: list[Prepared]) -> View:
    view = customer_view.new_view(customer_id)
    fold_into(view, prepared)
    return view


def fold_into(view: View, prepared: Iterable[Prepared]) -> None:
    """Fold prepared facts into a fold state (a fresh one, or a checkpoint's)."""
    entry_of, apply = customer_view.entry_of, customer_view.apply
    for sf, fact, channel, recorded in prepared:
        apply(view, fact, entry_of(fact, sf.position, recorded), channel)


@dataclass
class AsOf:
    customer_id: str
    axis: Axis
    at: datetime
    facts: list[StoredFact]
    #: occurred at or before ``at`` but recorded after it (only on the ``occurred`` axis).
    late: list[StoredFact] = field(default_factory=list)
    #: Positions of this record's facts left out because the readers cannot handle them.
    quarantined: list[int] = field(default_factory=list)
    #: The ledger's configured rules the document is rendered under (its settings).
    rules: Rules = DEFAULT_RULES

    @property
    def view(self) -> View:
        return fold(self.customer_id, self.facts)

    def rendered(self) -> dict[str, Any]:
        return customer_view.render(self.view, now=self.at, rules=self.rules)

    def timeline(self) -> list[dict[str, Any]]:
        """Rows shaped like ``ProjectionStore.timeline`` (what ``render_text`` reads)."""
        return self._timeline(prepare(self.facts))

    def _timeline(self, prepared: list[Prepared]) -> list[dict[str, Any]]:
        late = {sf.position for sf in self.late}
        order = sorted(prepared, key=lambda p: (occurred_at(p[0]), p[0].position))
        rows = []
        for sf, fact, channel, recorded in order:
            data = fact.get("data", {})
            rows.append({
                "position": sf.position, "event_id": fact["event_id"], "type": fact["type"],
                "occurred_at": fact["occurred_at"], "recorded_at": recorded,
                "source": fact["source"], "source_id": fact["id"],
                "department": fact.get("department"), "agent": fact.get("agent"),
                "channel": channel, "purpose": data.get("purpose"),
                "campaign": data.get("campaign"), "case_id": data.get("case_id"),
                "data": data, "late": sf.position in late,
            })
        return rows

    @staticmethod
    def late_entry(sf: StoredFact, recorded: str | None = None) -> dict[str, Any]:
        return {"event_id": sf.fact["event_id"], "type": sf.fact["type"], "position": sf.position,
                "occurred_at": sf.fact["occurred_at"],
                "recorded_at": sf.recorded_at.isoformat() if recorded is None else recorded}

    def to_json(self) -> dict[str, Any]:
        prepared = prepare(self.facts)
        iso = {id(p[0]): p[3] for p in prepared}  # late facts are among the facts: ISO once
        return {
            **customer_view.render(_fold(self.customer_id, prepared), now=self.at, rules=self.rules),
            "quarantined": self.quarantined,
            "as_of": {"axis": self.axis, "at": self.at.isoformat(),
                      "facts": len(self.facts),
                      "through_position": max((sf.position for sf in self.facts), default=0)},
            "recorded_late": [self.late_entry(sf, iso.get(id(sf))) for sf in self.late],
            "timeline": self._timeline(prepared),
        }


def page_of(items: Sequence[T], limit: int, oldest: bool) -> list[T]:
    """The latest ``limit`` items of a list in time order (the oldest with ``oldest``)."""
    return list(items[:limit] if oldest else items[-limit:]) if limit > 0 else []


def paged(doc: dict[str, Any], limit: int, oldest: bool = False, *, timeline_total: int | None = None,
          late_total: int | None = None) -> dict[str, Any]:
    """An as-of document with its timeline and its ``recorded_late`` list cut to one page: the
    latest ``limit`` entries of each (the oldest with ``oldest``), as the API's customer
    document cuts the live timeline. The totals say how many there are in all."""
    timeline, late = doc["timeline"], doc["recorded_late"]
    return {**doc, "timeline": page_of(timeline, limit, oldest),
            "recorded_late": page_of(late, limit, oldest),
            "timeline_page": {"limit": limit, "order": "oldest" if oldest else "latest",
                              "total": len(timeline) if timeline_total is None else timeline_total},
            "recorded_late_page": {"limit": limit,
                                   "total": len(late) if late_total is None else late_total}}
