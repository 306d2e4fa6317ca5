"""The business rules a ledger is configured with that the projections apply.

The values come from the ledger's settings (journey/config.py reads the environment); the
projections take them as a :class:`Rules` value, never from the environment, so a view or a
row depends only on its facts and the rules it was given. The defaults are the rules of a
ledger nobody configured.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Days a complaint must be answered in, unless configured (docs/cases.md).
DEFAULT_COMPLAINT_DAYS = 15


@dataclass(frozen=True, slots=True)
class Rules:
    #: Days a complaint must be answered in (``JOURNEY_COMPLAINT_DAYS``): a complaint's
    #: ``answer_due_by`` is its opening + this many days.
    complaint_days: int = DEFAULT_COMPLAINT_DAYS


DEFAULT_RULES = Rules()
