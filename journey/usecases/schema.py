"""The published contract: the JSON Schema of the facts a source may send (domain/schemas.py).

Channels validate a fact against it before they send; the ledger still judges every fact
itself (some rules, like a phone's validity or the configured range of instants, no schema
states). The schema is the contract's own limits, not one ledger's configuration, so it needs
no ledger.
"""

from __future__ import annotations

from typing import Any

from domain import catalogue, schemas


class UnknownType(ValueError):
    """The type asked for is no type a source may send; the message says which it resembles."""


def fact_schema(type_name: str | None = None) -> dict[str, Any]:
    """The JSON Schema of every input fact (a union tagged by ``type``), or of one type's."""
    if type_name is not None and type_name not in schemas.input_types():
        raise UnknownType(catalogue.not_an_input(type_name))
    return schemas.json_schema(type_name)
