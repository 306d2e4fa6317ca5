"""The stored facts the projection set aside, and applying them again after a fix.

A fact the readers cannot handle (an unknown version, a field the code does not expect, an
entry the store's keys cannot open) is quarantined instead of stopping every view behind it
(projections/quarantine.py); these are the two things a person does about them.
"""

from __future__ import annotations

from typing import Any

from consumers.log_follower import Retried, retry_quarantined
from journey.system import System
from journey.usecases.paging import EVERYTHING, Page
from projections.quarantine import Entry, count


def quarantined(system: System) -> list[Entry]:
    """Every quarantined fact, in log order, after bringing the projections up to the store's
    head."""
    system.project()
    return system.projections.quarantined()


def retry(system: System) -> Retried:
    """Apply the quarantined facts again: those that now go in leave the quarantine, those no
    longer in the store are dropped, the others stay with today's reason."""
    return retry_quarantined(system.app, system.projections)


def quarantine_page(system: System, page: Page = EVERYTHING) -> dict[str, Any]:
    """One page of the quarantine, in log order, after bringing the projections up to the
    store's head: ``total`` (every entry), ``offset``, ``limit``, the ``entries`` (each with
    when it was quarantined), and the positions a reader of the page needs beside it (the
    store's head, the projection's position)."""
    head = system.app.recorder.max_notification_id() or 0
    system.project()
    con = system.projections.con
    clause, params = page.sql()
    rows = con.execute(
        "SELECT position, reader, event_id, originator, customer_id, type, reason, quarantined_at "
        f"FROM quarantine ORDER BY position{clause}", params).fetchall()
    entries = [{**Entry(*row[:7]).to_json(),
                "quarantined_at": row[7].isoformat() if row[7] is not None else None} for row in rows]
    return {"store_position": head, "projection_position": system.projections.position(),
            **page.fields(count(con)), "entries": entries}
