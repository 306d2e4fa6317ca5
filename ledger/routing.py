"""Which record a fact will be written to, and what the write will read or change, before it is written.

Channels key their touchpoints by whatever they know (a phone, a handle, a customer number), so
one person's facts reach several Kafka partitions. Writers that each own some partitions would
then write the same streams and conflict, and the first come across partitions would decide how
many prospects are created and merged later. The routing step (consumers/routing.py) reads the
touchpoints in one order and, for each fact, asks this planner:

- **the record** the writer will append it to (its survivor, after merges), which becomes the
  fact's key on the routed topic, so one record's facts have one writer;
- **the resources** the write reads or changes: every identity key it names or claims, every
  record on the way from those keys to their survivors, the case it belongs to, its own event id
  (the dedupe entry). Two facts that share a resource are written in routing order: on one
  partition by position, across partitions because the later one waits for the earlier
  (``journey.route.after``).

The planner runs the writer's resolution rules (domain/identity.py ``resolve``, the claims,
merges and unmerges of ledger/writer.py) on its own view: the write-side index, overlaid with
what the facts it planned but the writers have not written yet will change. The writer still
decides everything when it writes; the plan only says who writes. A plan that is wrong (a fact
the ledger later refuses, an unmerge whose moved identities the planner cannot see, a write that
came in through another door) costs a retried conflict, never a wrong record.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from domain import catalogue, identity
from ledger.index import WriteIndex, read_through

Fact = dict[str, Any]

#: The longest chain of merges followed from a record to its survivor (a cycle is a store fault).
MAX_CHAIN = 64


@dataclass(frozen=True, slots=True)
class Plan:
    #: The record the fact will be written to: the routed topic's key.
    record: UUID
    #: What the write reads or changes (``k:`` identity key, ``r:`` record, ``c:`` case, ``e:`` event).
    resources: frozenset[str]


@dataclass(slots=True)
class _Record:
    kind: str
    merged_into: UUID | None


class RoutePlanner:
    """The writer's resolution, run ahead of the writers on the index plus what is in flight."""

    def __init__(self, index: WriteIndex) -> None:
        self.index = index
        #: Identity key -> record, for keys planned facts read or changed (None: nobody's).
        self.owners: dict[str, UUID | None] = {}
        #: Records planned facts read or changed (None: no such record).
        self.records: dict[UUID, _Record | None] = {}

    # -- the plan ------------------------------------------------------------------------------

    def plan(self, facts: Sequence[Fact]) -> list[Plan]:
        """Plan validated facts in order; each plan sees the changes of the ones before it."""
        self._prefetch(facts)
        return [self._plan(fact) for fact in facts]

    def keep_only(self, resources: Iterable[str]) -> None:
        """Forget what the writers have written (the index holds it now); keep what is in flight."""
        keys: set[str] = set()
        records: set[UUID] = set()
        for resource in resources:
            kind, _, name = resource.partition(":")
            if kind == "k":
                keys.add(name)
            elif kind == "r":
                records.add(UUID(name))
        self.owners = {k: v for k, v in self.owners.items() if k in keys}
        self.records = {r: v for r, v in self.records.items() if r in records}

    def _plan(self, fact: Fact) -> Plan:
        resources: set[str] = {"e:" + str(identity.event_uuid(fact["source"], fact["id"]))}
        ref = fact["customer"]
        known: dict[str, UUID] = {}
        for k in identity.reference_keys(ref):
            resources.add("k:" + k)
            owner = self.owners.get(k)
            if owner is not None:
                known[k] = owner
                self._chain(owner, resources)
        who = identity.resolve(ref, known)
        target = self._chain(who.customer_id, resources)
        if self._record(target) is None and who.is_new:
            self.records[target] = _Record(who.kind, None)
        kind = fact["type"]
        if kind in ("customer.merged", "customer.unmerged"):
            other = self._named(fact["data"].get("from"), resources)
            if other is not None:
                self._join_or_split(kind, other, target, resources)
        if catalogue.stream_of(fact) == "case":
            resources.add("c:" + str(fact["data"].get("case_id")))
        for k in who.learned:
            if self.owners.get(k) is None:
                self.owners[k] = target
        if kind == "customer.registered":
            record = self._record(target)
            if record is not None:
                record.kind = "customer"
        for k in catalogue.claimed_identities(fact):
            resources.add("k:" + k)
            self._claim(k, target, resources)
        return Plan(target, frozenset(resources))

    def _claim(self, key: str, target: UUID, resources: set[str]) -> None:
        owner = self.owners.get(key)
        if owner is None:
            self.owners[key] = target
            return
        survivor = self._chain(owner, resources)
        if survivor == target:
            return
        record = self._record(survivor)
        if record is not None and record.kind == "prospect":
            record.merged_into = target  # a prospect joins the customer who claims its identity
        else:
            self.owners[key] = target  # a customer's identity moves (identity.unlinked)

    def _join_or_split(self, kind: str, other: UUID, target: UUID, resources: set[str]) -> None:
        if kind == "customer.merged":
            survivor = self._chain(other, resources)
            record = self._record(survivor)
            if survivor != target and record is not None:
                record.merged_into = target
        else:
            record = self._record(other)
            if record is not None and record.merged_into is not None:
                record.merged_into = None

    def _named(self, ref: object, resources: set[str]) -> UUID | None:
        """The record ``data.from`` of a merge or unmerge names (the writer's _named_record)."""
        named: UUID | None = None
        if isinstance(ref, str):
            named = identity.ledger_uuid(ref)
        elif isinstance(ref, Mapping):
            number = ref.get("customer_id")
            if isinstance(number, str):
                named = identity.ledger_uuid(number) or identity.customer_uuid(number)
            else:
                keys = identity.reference_keys(ref)
                resources.update("k:" + k for k in keys)
                owners = read_through(self.owners, keys, self.index.identity_owners)
                named = next((owners[k] for k in keys if k in owners), None)
        if named is not None:
            resources.add("r:" + str(named))
        return named

    def _chain(self, record_id: UUID, resources: set[str]) -> UUID:
        """The survivor of ``record_id``; every record on the way is a resource."""
        for _ in range(MAX_CHAIN):
            resources.add("r:" + str(record_id))
            record = self._record(record_id)
            if record is None or record.merged_into is None:
                return record_id
            record_id = record.merged_into
        return record_id

    def _record(self, record_id: UUID) -> _Record | None:
        return read_through(self.records, [record_id], self._read_records).get(record_id)

    def _read_records(self, ids: list[UUID]) -> dict[UUID, _Record]:
        """The index's records, as the planner's own (it changes them as facts are planned)."""
        return {i: _Record(r.kind, r.merged_into) for i, r in self.index.customer_records(ids).items()}

    # -- bulk reads ------------------------------------------------------------------------------

    def _prefetch(self, facts: Sequence[Fact]) -> None:
        """The index's owners and records for the batch, in a few queries instead of one per fact."""
        keys: set[str] = set()
        candidates: set[UUID] = set()
        for fact in facts:
            ref = fact["customer"]
            keys.update(identity.reference_keys(ref))
            keys.update(catalogue.claimed_identities(fact))
            number = ref.get("customer_id")
            if number is not None:
                candidates.add(identity.ledger_uuid(number) or identity.customer_uuid(number))
            else:  # the prospect its identity would create
                candidates.add(identity.prospect_uuid(identity.reference_keys(ref)[0]))
        candidates.update(read_through(self.owners, keys, self.index.identity_owners).values())
        todo = {c for c in candidates if c not in self.records}
        for _ in range(MAX_CHAIN):  # each round reads the records the last one merged into
            if not todo:
                break
            records = read_through(self.records, todo, self._read_records)
            todo = {r.merged_into for r in records.values()
                    if r.merged_into is not None and r.merged_into not in self.records}

