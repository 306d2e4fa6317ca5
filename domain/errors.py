"""The domain's exceptions.

LedgerError
 +-- InvalidFact      a fact breaks the contract (bad JSON, unknown type, missing or mistyped
 |                    field, bad timestamp); the message says what and where, for a person
 +-- FactRejected     a well-formed fact the ledger's state refuses (a second registration,
                      a case that belongs to another customer)
"""

from __future__ import annotations


class LedgerError(Exception):
    """Base of every error the ledger raises on purpose."""


class InvalidFact(LedgerError, ValueError):
    """A fact that does not follow the event contract."""


class FactRejected(LedgerError):
    """A valid fact that the current state of the ledger refuses."""
