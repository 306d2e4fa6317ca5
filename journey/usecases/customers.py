"""Reading a customer: who a reference names, their view, their timeline.

The one way to read a customer. ``journey customer``, the Python API's ``customer()`` and the
HTTP API all build their documents here; the server keeps a cache in front of these functions
(journey/api/service.py's ``ReadCache``), never a second implementation beside them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from consumers.log_follower import Progress
from journey.references import reference_key
from journey.system import System
from projections.customer_view import View, render
from projections.rules import DEFAULT_RULES, Rules

#: Events of the timeline in the HTTP API's customer document (the latest ones).
LATEST_EVENTS = 50


def find(system: System, ref: str) -> str | None:
    """The customer id ``ref`` names (+34..., @handle, e-mail, C-1, ledger id, kind:value),
    None when nobody is known by it. Raises :class:`domain.errors.InvalidFact` for a reference
    that cannot name anyone."""
    return resolve_key(system, reference_key(ref))


def resolve_key(system: System, key: str) -> str | None:
    """The customer an identity key (``phone:+34...``) or a ledger id names."""
    return system.projections.resolve(key)


def stored_view(system: System, customer_id: str) -> View:
    """The customer's view state, built from their rows, not yet rendered for a moment."""
    return system.projections.load_views([customer_id])[customer_id]


def timeline(system: System, customer_id: str, limit: int | None = None) -> list[dict[str, Any]]:
    """The customer's events by when they happened, oldest first (at most ``limit``)."""
    return system.projections.timeline(customer_id, limit=limit)


def document(view: View, events: Sequence[dict[str, Any]], position: int,
             now: datetime | None = None, rules: Rules = DEFAULT_RULES) -> dict[str, Any]:
    """The customer document (``journey customer --json``): the view rendered for ``now``
    under the ledger's ``rules``, the projections' position it reflects, and ``events`` as its
    timeline."""
    return {**render(view, now=now or datetime.now(UTC), rules=rules), "as_of_position": position,
            "timeline": list(events)}


def customer(system: System, ref: str, *, now: datetime | None = None,
             timeline_limit: int | None = None,
             on_progress: Callable[[Progress], None] | None = None) -> dict[str, Any] | None:
    """The unified view of whoever ``ref`` names, with its timeline (the oldest
    ``timeline_limit`` events), after bringing the projections up to the store's head; None
    when nobody is known by it."""
    system.project(on_progress=on_progress)
    customer_id = find(system, ref)
    if customer_id is None:
        return None
    view, events = system.projections.view_and_timeline(customer_id, limit=timeline_limit)
    if view is None:
        return None
    return document(view, events, system.projections.position(), now, system.projections.rules)


def latest_document(view: View, events: Sequence[dict[str, Any]], position: int, *,
                    limit: int = LATEST_EVENTS, rules: Rules = DEFAULT_RULES) -> dict[str, Any]:
    """The customer document with only the latest ``limit`` timeline events.

    The timeline keeps the view's order (by when things happened, oldest first) so that it is
    the tail of :func:`customer`'s; ``timeline_page.next_before`` continues with older events
    through :func:`timeline_page`. ``events`` is the whole timeline.
    """
    shown = list(events[-limit:]) if limit else []
    more = len(events) > len(shown)
    return {**document(view, shown, position, rules=rules),
            "timeline_page": {"limit": limit, "total": len(events),
                              "next_before": shown[0]["position"] if more and shown else None}}


class UnknownPosition(ValueError):
    """A timeline page asked for in a way that names no place in the timeline."""


def timeline_page(customer_id: str, events: Sequence[dict[str, Any]], position: int, *,
                  limit: int, before: int | None, offset: int | None = None) -> dict[str, Any]:
    """One page of a customer's timeline, newest first, and the cursor of the next page.

    The order is the view's, reversed: by when things happened (``occurred_at``), then store
    position. ``before`` is the position of the last event of the previous page (its
    ``next_before``); ``offset`` instead counts events from the newest (0: the newest); at most
    one of them. Either way the page says its ``offset`` (where it starts among all ``total``
    events), so "51-100 of 1,234" needs no counting by the client. Pages are cut from the
    whole timeline (``events``, oldest first), so their ``late`` flags are the ones the full
    view shows. An offset past the end gives an empty page.
    """
    if before is not None and offset is not None:
        raise UnknownPosition("give before (the cursor of the previous page) or offset, not both")
    newest_first = events[::-1]
    start = offset or 0
    if before is not None:
        index = next((i for i, e in enumerate(newest_first) if e["position"] == before), None)
        if index is None:
            raise UnknownPosition(f"before={before} is not the position of an event in this "
                                  "customer's timeline (use next_before from the previous page)")
        start = index + 1
    page = list(newest_first[start:start + limit])
    more = start + len(page) < len(newest_first)
    return {"customer_id": customer_id, "order": "newest first", "limit": limit, "before": before,
            "offset": start, "total": len(events), "events": page,
            "next_before": page[-1]["position"] if more and page else None,
            "as_of_position": position}
