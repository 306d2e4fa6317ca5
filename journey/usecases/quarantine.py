"""The stored facts the projection set aside, and applying them again after a fix.

A fact the readers cannot handle (an unknown version, a field the code does not expect, an
entry the store's keys cannot open) is quarantined instead of stopping every view behind it
(projections/quarantine.py); these are the two things a person does about them.
"""

from __future__ import annotations

from consumers.log_follower import Retried, retry_quarantined
from journey.system import System
from projections.quarantine import Entry


def quarantined(system: System) -> list[Entry]:
    """Every quarantined fact, in log order, after bringing the projections up to the store's
    head."""
    system.project()
    return system.projections.quarantined()


def retry(system: System) -> Retried:
    """Apply the quarantined facts again: those that now go in leave the quarantine, those no
    longer in the store are dropped, the others stay with today's reason."""
    return retry_quarantined(system.app, system.projections)
