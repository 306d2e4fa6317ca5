"""The baseline issue 8 compares append with: the same facts through a plain eventsourcing
Application that saves one event per call.

"Plain" means what a first version written from the library's documentation would do: one
aggregate per customer (named by the fact's first customer reference), loaded from the
repository, one event triggered per fact and ``app.save()`` after each, with the library's
own SQLite persistence and JSON transcoder. It parses and validates each line as
``journey append`` does, so both rows start from the same bytes. It has none of the
ledger's index tables, encryption, deduplication or hash chain, so it does less per fact
than the ledger does; the ratio is a conservative one.

The ledger's own writer does not go through eventsourcing's aggregates, so
``ingest(..., batch_size=1)`` would measure the ledger without its batching, not this.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate, event

from consumers.jsonl_ingest import parse_line
from domain.errors import InvalidFact


class Touchpoints(Aggregate):
    """One customer's touchpoints, as a plain aggregate."""

    @staticmethod
    def create_id(key: str) -> UUID:
        return uuid5(NAMESPACE_URL, f"baseline:{key}")

    @event("Opened")
    def __init__(self, key: str) -> None:
        self.key = key
        self.facts = 0

    @event("Recorded")
    def record(self, fact: dict[str, Any]) -> None:
        self.facts += 1


class PlainLedger(Application[UUID]):
    def record(self, fact: dict[str, Any]) -> None:
        kind, value = sorted(fact["customer"].items())[0]
        key = f"{kind}:{value}"
        try:
            customer: Touchpoints = self.repository.get(Touchpoints.create_id(key))
        except AggregateNotFoundError:
            customer = Touchpoints(key)
        customer.record(fact)
        self.save(customer)


def run(path: Path, lines: list[bytes]) -> tuple[int, int]:
    """Record ``lines`` (JSON Lines) one save per fact into a fresh SQLite file at ``path``;
    returns (recorded, rejected)."""
    app = PlainLedger(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path)})
    recorded = rejected = 0
    try:
        for line in lines:
            try:
                fact = parse_line(line)
            except InvalidFact:
                rejected += 1
                continue
            app.record(dict(fact))
            recorded += 1
    finally:
        app.close()
    return recorded, rejected
