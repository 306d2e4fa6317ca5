"""Where the ledger stands: store and projection positions, row counts, what is quarantined."""

from __future__ import annotations

from typing import Any

from journey.system import System
from projections import quarantine


def status(system: System) -> dict[str, Any]:
    """Positions and counts after bringing the projections up to the store's head; with the
    quarantine's count and its newest entries (``quarantined``, ``quarantine_latest``)."""
    head = system.app.recorder.max_notification_id() or 0
    system.project()
    counts = system.projections.table_counts()
    return {"data_dir": str(system.settings.data_dir), "store": system.settings.store,
            "store_position": head, "projection_position": system.projections.position(),
            **{f"{k}_rows": v for k, v in counts.items()},
            **quarantine.status(system.projections.con)}
