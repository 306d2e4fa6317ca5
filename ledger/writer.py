"""The write path: validated facts in, one save per batch across every aggregate they touch.

One save per event runs at 1-2k events/s on a small machine; one save per batch of a few
thousand facts is an order of magnitude faster, and it is also the unit of atomicity: a
batch's events, its dedupe keys and its identity changes commit together or not at all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError, Tracking

from domain import catalogue, identity
from domain.case import Case
from domain.customer import Customer
from domain.errors import FactRejected, InvalidFact
from ledger.application import JourneyApplication, decode_notification
from ledger.index import CustomerRecord, IndexChanges

Fact = dict[str, Any]

#: How often a batch is retried after another writer changed the same streams meanwhile.
MAX_ATTEMPTS = 5


@dataclass(slots=True)
class Rejection:
    line: int
    reason: str


@dataclass(slots=True)
class BatchResult:
    recorded: int = 0
    duplicates: int = 0
    #: Facts the ledger wrote itself (merges of prospects, identities moving between people).
    derived: int = 0
    rejected: list[Rejection] = field(default_factory=list)


@dataclass(slots=True)
class ForgetResult:
    customer_id: UUID
    #: Every record whose key was destroyed: the customer and the records merged into them.
    records: list[UUID]
    #: The customer had been forgotten before (nothing was written).
    already: bool = False
    forgotten_at: str | None = None


class Ledger:
    """Records facts; thin: resolve, ask the aggregate, save the batch."""

    def __init__(self, app: JourneyApplication) -> None:
        self.app = app

    def append(self, batch: Sequence[tuple[int, Fact]], tracking: Tracking | None = None,
               before_commit: Callable[[BatchResult], None] | None = None) -> BatchResult:
        """Record a batch of validated facts (with the line or offset each came from).

        ``tracking`` (a Kafka partition and offset, say) is stored in the same transaction,
        so a redelivered batch is refused as a whole by the store. ``before_commit`` sees the
        batch's outcome (its rejections) before anything is stored, so a caller can hand the
        rejections on (to a dead-letter topic) first: a crash can then repeat, never lose
        them. It may be called more than once when the batch is retried after a conflict.
        """
        for attempt in range(MAX_ATTEMPTS):
            try:
                return _BatchWriter(self.app, batch).run(tracking, before_commit)
            except IntegrityError:
                self._drop_cache()
                if tracking is not None and self._tracked(tracking):
                    return BatchResult(duplicates=len(batch))
                if attempt == MAX_ATTEMPTS - 1:
                    raise
            except BaseException:
                # A half-applied batch must never leak pending events into the next save.
                self._drop_cache()
                raise
        raise AssertionError("unreachable")

    def forget(self, reference_key: str, reason: str) -> ForgetResult | None:
        """Erase a customer (GDPR art. 17) by crypto-shredding; None when nobody has the key.

        ``reference_key`` is an identity key (``phone:+34...``, ``customer_id:C-1``) or
        ``ledger:<uuid>``. One transaction records ``customer.forgotten`` in the customer's
        stream, destroys the keys of the customer and of every record merged into them, and
        deletes their identity keys from the write-side index. Stored events never change.
        """
        for attempt in range(MAX_ATTEMPTS):
            try:
                result = _BatchWriter(self.app, []).forget(reference_key, reason)
            except IntegrityError:
                self._drop_cache()
                if attempt == MAX_ATTEMPTS - 1:
                    raise
                continue
            except BaseException:
                self._drop_cache()
                raise
            if result is not None and not result.already:
                self.app.keys.reset()
                scrub = getattr(self.app.recorder, "scrub", None)
                if scrub is not None:
                    scrub()
            return result
        raise AssertionError("unreachable")

    def _tracked(self, tracking: Tracking) -> bool:
        done = self.app.recorder.max_tracking_id(tracking.application_name)  # type: ignore[attr-defined]
        return done is not None and done >= tracking.notification_id

    def _drop_cache(self) -> None:
        # The key ring too: a key created meanwhile by another writer is read again.
        self.app.keys.reset()
        cache = self.app.repository.cache
        if cache is not None:
            cache.cache.clear()


class _BatchWriter:
    def __init__(self, app: JourneyApplication, batch: Sequence[tuple[int, Fact]]) -> None:
        self.app = app
        self.index = app.index
        self.batch = batch
        self.changes = IndexChanges()
        self.result = BatchResult()
        self.aggregates: dict[UUID, Customer | Case | None] = {}
        self.owners: dict[str, UUID] = {}
        self.records: dict[UUID, CustomerRecord] = {}
        #: Identity owners as read from the store (the recorder re-checks them when writing).
        self.read_owners: dict[str, UUID] = {}
        #: Streams (customers', cases') that already have events in the store.
        self.existing: set[UUID] = set()
        #: Streams whose existence was looked up (the rest are looked up when first needed).
        self.checked: set[UUID] = set()
        #: Customer ids known not to exist in the store (looked up in bulk by _prefetch).
        self.absent: set[UUID] = set()
        #: Records merged in this batch -> the identity keys the merge moved.
        self.joined: dict[UUID, list[str]] = {}
        #: owners inverted (see _owned_by); None until an address change or a merge needs it.
        self.owned: dict[UUID, set[str]] | None = None

    def run(self, tracking: Tracking | None,
            before_commit: Callable[[BatchResult], None] | None = None) -> BatchResult:
        fresh = self._drop_duplicates()
        self._prefetch(fresh)
        for line, fact in fresh:
            try:
                self._record(fact)
            except (FactRejected, InvalidFact) as error:
                self.result.rejected.append(Rejection(line, str(error)))
        if before_commit is not None:
            before_commit(self.result)
        touched = [a for a in self.aggregates.values() if a is not None]
        # Store the events in the order the facts arrived, not grouped by aggregate, so the
        # notification log (and Kafka after it) follows the input.
        order = {(stream, version): i for i, (_, _, stream, version) in enumerate(self.changes.facts)}
        events = sorted(
            (e for a in touched for e in a.collect_events()),
            key=lambda e: order[(e.originator_id.hex, e.originator_version)],
        )
        if events or tracking is not None:
            self._put(events, touched, tracking)
        return self.result

    def _put(self, events: list[Any], touched: list[Customer | Case], tracking: Tracking | None) -> None:
        # The mapper creates a key for a record without one while it stores the events; the
        # recorder inserts those keys (this very dict) in the events' transaction.
        self.changes.keys = self.app.keys.pending
        self.app.events.put(events, tracking=tracking, index=self.changes)
        self.app.keys.committed()
        cache = self.app.repository.cache
        if cache is not None:
            for aggregate in touched:
                cache.put(aggregate.id, aggregate)

    def forget(self, reference_key: str, reason: str) -> ForgetResult | None:
        target = self._named_by_key(reference_key)
        if target is None:
            return None
        customer_id = self._survivor(target)
        record = self._record_of(customer_id)
        if record is None:
            return None
        if self.app.keys.is_forgotten(customer_id):
            return ForgetResult(customer_id, [], already=True)
        records = [customer_id]
        todo = [customer_id]
        while todo:
            for merged in self.index.merged_into(todo.pop()):
                if merged not in records:
                    records.append(merged)
                    todo.append(merged)
        now = datetime.now(UTC).isoformat(timespec="microseconds")
        fact: Fact = {
            "type": "customer.forgotten", "v": catalogue.TYPES["customer.forgotten"].version,
            "id": f"forget:{customer_id}", "source": "ledger",
            "customer": {"customer_id": str(customer_id)}, "occurred_at": now,
            "data": {"reason": reason}, "customer_uuid": str(customer_id),
        }
        fact["event_id"] = str(identity.event_uuid("ledger", fact["id"]))
        self.checked.add(customer_id)
        self.existing |= self.index.existing_streams([customer_id])
        self._append_to_customer(customer_id, fact, record)
        self.changes.forget = records
        self.changes.forgotten_at = now
        touched = [a for a in self.aggregates.values() if a is not None]
        self._put([e for a in touched for e in a.collect_events()], touched, None)
        return ForgetResult(customer_id, records, forgotten_at=now)

    def _named_by_key(self, key: str) -> UUID | None:
        kind, _, value = key.partition(":")
        if kind == "ledger":
            return identity.ledger_uuid(value)
        owner = self.index.identity_owners([key]).get(key)
        if owner is None and kind == "customer_id":
            owner = identity.customer_uuid(value)
        return owner

    def _drop_duplicates(self) -> list[tuple[int, Fact]]:
        for _, fact in self.batch:
            fact["event_id"] = str(identity.event_uuid(fact["source"], fact["id"]))
        known = self.index.known_events(f["event_id"] for _, f in self.batch)
        fresh = []
        for line, fact in self.batch:
            if fact["event_id"] in known:
                self.result.duplicates += 1
            else:
                known.add(fact["event_id"])
                fresh.append((line, fact))
        return fresh

    def _prefetch(self, facts: list[tuple[int, Fact]]) -> None:
        keys: set[str] = set()
        for _, fact in facts:
            keys.update(identity.reference_keys(fact["customer"]))
            keys.update(catalogue.claimed_identities(fact))
        self.owners = self.index.identity_owners(keys)
        self.read_owners = dict(self.owners)
        # Every customer a fact could land on, fetched in one query instead of one per fact.
        candidates = set(self.owners.values())
        for _, fact in facts:
            ref = fact["customer"]
            if "customer_id" in ref:
                number = ref["customer_id"]
                candidates.add(identity.ledger_uuid(number) or identity.customer_uuid(number))
            else:
                candidates.add(identity.prospect_uuid(identity.reference_keys(ref)[0]))
        self.records = self.index.customer_records(candidates)
        self.app.keys.prefetch(candidates | {r.merged_into for r in self.records.values() if r.merged_into})
        self.absent = candidates - set(self.records)
        streams = set(self.records)
        streams.update(identity.case_uuid(f["data"]["case_id"]) for _, f in facts
                       if "case_id" in f["data"] and f["type"].startswith("case."))
        self.existing = self.index.existing_streams(streams)
        # A customer without a record has no stream either (the record is written with its
        # first event and never deleted): no need to ask the store about each new customer.
        self.checked = streams | self.absent

    def _record(self, fact: Fact) -> None:
        who = identity.resolve(fact["customer"], self.owners)
        customer_id = self._survivor(who.customer_id)
        if self.app.keys.is_forgotten(customer_id):
            raise FactRejected(f"customer {customer_id} was forgotten (erased); nothing more is "
                               "recorded about them")
        record = self._record_of(customer_id)
        if record is None:
            if not who.is_new:
                raise FactRejected(f"customer.customer_id: no customer with ledger id {customer_id}")
            record = CustomerRecord(who.kind, who.customer_number, None)
        fact["customer_uuid"] = str(customer_id)
        if fact["type"] in ("customer.merged", "customer.unmerged"):
            if record is None or who.is_new:
                raise FactRejected(f"{fact['type']}: the customer it is recorded for is not known")
            self._join_or_split(fact, customer_id)
        if catalogue.stream_of(fact) == "case":
            self._append_to_case(fact, customer_id)
        else:
            self._append_to_customer(customer_id, fact, record)
        # The fact is accepted: only now may it change the index.
        if customer_id not in self.records:
            self._set_record(customer_id, record)
        for k in who.learned:
            if k not in self.owners:
                self._set_owner(k, customer_id)
        if fact["type"] == "customer.registered":
            record = self.records[customer_id]
            number = record.customer_number or fact["customer"].get("customer_id")
            self._set_record(customer_id, CustomerRecord("customer", number, None))
        for k in catalogue.claimed_identities(fact):
            self._claim(k, customer_id, fact)
        if fact["type"] == "address.changed" and fact["data"].get("requested_by") != "customer":
            self._notify_address_change(customer_id, fact)

    def _notify_address_change(self, customer_id: UUID, change: Fact) -> None:
        """Tell the customer about a change they did not ask for, through the channels they
        still have: a letter (to the old and the new address) and an e-mail when one is known.
        The notices are facts of their own, so every department sees them in the timeline."""
        keys = set(self.index.identities_of(customer_id)) if customer_id in self.existing else set()
        keys.update(self._owned_by().get(customer_id, ()))
        keys = {k for k in keys if self.owners.get(k, customer_id) == customer_id}
        data = {"purpose": "service", "subject": "Your postal address was changed",
                "notice_for": change["event_id"], "reason": change["data"].get("reason"),
                "changed_by": change.get("department") or change["data"].get("requested_by")}
        extra = {k: change[k] for k in ("department",) if k in change}
        self._derive(customer_id, change, "letter.sent", "notice:letter",
                     {**data, "to": "previous and new address"}, extra)
        if any(k.startswith("email:") for k in keys):
            self._derive(customer_id, change, "email.sent", "notice:email", data, extra)

    def _append_to_customer(self, customer_id: UUID, fact: Fact, record: CustomerRecord) -> None:
        customer = self._load(customer_id)
        if customer is None:
            new = Customer.start(customer_id, fact, record.kind, record.customer_number)
            self.aggregates[customer_id] = new
        else:
            assert isinstance(customer, Customer)
            customer.accept(fact)
        self._note_fact(fact, customer_id, customer_id)

    def _append_to_case(self, fact: Fact, customer_id: UUID) -> None:
        case_id = identity.case_uuid(fact["data"]["case_id"])
        case = self._load(case_id)
        if case is None:
            self.aggregates[case_id] = Case.start(case_id, fact, customer_id)
        else:
            assert isinstance(case, Case)
            owner = self._survivor(UUID(case.customer_id))
            case.accept(fact, customer_id, owner)
        self._note_fact(fact, customer_id, case_id)

    def _note_fact(self, fact: Fact, customer_id: UUID, stream_id: UUID) -> None:
        aggregate = self.aggregates[stream_id]
        assert aggregate is not None
        self.changes.facts.append((fact["event_id"], customer_id.hex, stream_id.hex, aggregate.version))
        if fact["source"] == "ledger":
            self.result.derived += 1
        else:
            self.result.recorded += 1

    def _load(self, aggregate_id: UUID) -> Customer | Case | None:
        if aggregate_id not in self.aggregates:
            if aggregate_id not in self.checked:  # a record the batch reached by a merge or unmerge
                self.checked.add(aggregate_id)
                self.existing |= self.index.existing_streams([aggregate_id])
            if aggregate_id not in self.existing:
                return None
            try:
                self.aggregates[aggregate_id] = self.app.repository.get(aggregate_id)
            except AggregateNotFoundError:
                self.aggregates[aggregate_id] = None
        return self.aggregates[aggregate_id]

    def _claim(self, key: str, customer_id: UUID, trigger: Fact) -> None:
        """An explicit link: the identity is this customer's now, whoever had it."""
        owner = self.owners.get(key)
        if owner is None:
            self._set_owner(key, customer_id)
            return
        owner = self._survivor(owner)
        if owner == customer_id:
            return
        record = self._record_of(owner)
        if record is not None and record.kind == "prospect":
            self._merge(owner, customer_id, trigger, f"{key} linked by {trigger['type']}")
            return
        kind, _, value = key.partition(":")
        self._set_owner(key, customer_id)
        self._derive(owner, trigger, "identity.unlinked", "unlink:" + key,
                     {"kind": kind, "value": value, "to": str(customer_id),
                      "reason": f"claimed by {trigger['type']} of customer {customer_id}"})

    def _merge(self, prospect: UUID, survivor: UUID, trigger: Fact, reason: str) -> None:
        """A prospect turned out to be a known person: its history joins theirs."""
        moved = self._join(prospect, survivor)
        self._derive(survivor, trigger, "customer.merged", f"merge:{prospect}",
                     {"from": str(prospect), "reason": reason, "identities": moved})

    def _join(self, absorbed: UUID, survivor: UUID) -> list[str]:
        """Every identity of ``absorbed`` now names ``survivor``; returns the keys moved."""
        stored = self.index.identities_of(absorbed)
        for k in stored:
            self.read_owners.setdefault(k, absorbed)
        moved = sorted(set(stored) | self._owned_by().get(absorbed, set()))
        self.joined[absorbed] = moved
        for k in moved:
            self._set_owner(k, survivor)
        record = self._record_of(absorbed)
        assert record is not None
        self._set_record(absorbed, CustomerRecord(record.kind, record.customer_number, survivor))
        return moved

    def _join_or_split(self, fact: Fact, survivor: UUID) -> None:
        """An explicit merge or unmerge: check it, move the identities, and normalise ``from``
        to the other record's ledger id (the original reference is kept in ``from_ref``)."""
        data = fact["data"]
        other = self._named_record(data["from"], fact["type"])
        if fact["type"] == "customer.merged":
            if self._survivor(other) == survivor:
                raise FactRejected(f"customer.merged: {data['from']} is already this customer")
            other = self._survivor(other)
            data["identities"] = self._join(other, survivor)
        else:
            record = self._record_of(other)
            assert record is not None
            if record.merged_into != survivor:
                raise FactRejected(f"customer.unmerged: {data['from']} is not merged into this customer")
            data["identities"] = self._split(other, survivor)
        if not isinstance(data["from"], str):
            data["from_ref"] = data["from"]
        data["from"] = str(other)

    def _named_record(self, ref: str | dict[str, str], kind: str) -> UUID:
        """The ledger id of the record a merge or unmerge names (it must exist)."""
        if isinstance(ref, str):
            named = identity.ledger_uuid(ref)
        elif "customer_id" in ref and identity.ledger_uuid(ref["customer_id"]) is not None:
            named = identity.ledger_uuid(ref["customer_id"])
        elif "customer_id" in ref:
            named = identity.customer_uuid(ref["customer_id"])
        else:
            keys = identity.reference_keys(ref)
            missing = [k for k in keys if k not in self.owners]
            found = self.index.identity_owners(missing)
            self.read_owners.update({k: v for k, v in found.items() if k not in self.read_owners})
            self.owners.update({k: v for k, v in found.items() if k not in self.owners})
            self.owned = None  # rebuilt from owners on next need
            named = next((self.owners[k] for k in keys if k in self.owners), None)
        if named is None or self._record_of(named) is None:
            raise FactRejected(f"{kind}: data.from names no known record ({ref})")
        return named

    def _split(self, absorbed: UUID, survivor: UUID) -> list[str]:
        """Undo a merge: the identities the merge moved go back (those the survivor still has)."""
        moved: list[str] | None = self.joined.get(absorbed)  # merged earlier in this batch
        for n in self.index.facts_of(survivor) if moved is None else ():
            stored = decode_notification(self.app, n).fact
            if stored["type"] == "customer.merged" and stored["data"]["from"] == str(absorbed):
                moved = stored["data"].get("identities", moved)
        if moved is None:  # a merge recorded before merges listed what they moved
            keys: set[str] = set()
            for n in self.index.facts_of(absorbed):
                stored = decode_notification(self.app, n).fact
                keys.update(identity.reference_keys(stored["customer"]))
                keys.update(catalogue.claimed_identities(stored))
            moved = sorted(k for k in keys if not k.startswith("customer_id:") or
                           identity.ledger_uuid(k.split(":", 1)[1]) is None)
        current = self.index.identity_owners(k for k in moved if k not in self.owners)
        current.update({k: v for k, v in self.owners.items() if k in moved})
        for k, v in current.items():
            self.read_owners.setdefault(k, v)
        back = sorted(k for k, owner in current.items() if self._survivor(owner) == survivor)
        for k in back:
            self._set_owner(k, absorbed)
        record = self._record_of(absorbed)
        assert record is not None
        self._set_record(absorbed, CustomerRecord(record.kind, record.customer_number, None))
        return back

    def _derive(self, customer_id: UUID, trigger: Fact, type_name: str, suffix: str,
                data: dict[str, Any], extra: dict[str, Any] | None = None) -> None:
        fact: Fact = {
            **(extra or {}),
            "type": type_name,
            "v": catalogue.TYPES[type_name].version,
            "id": f"{trigger['event_id']}:{suffix}",
            "source": "ledger",
            "customer": {"customer_id": str(customer_id)},
            "occurred_at": trigger["occurred_at"],
            "data": data,
            "customer_uuid": str(customer_id),
        }
        fact["event_id"] = str(identity.event_uuid("ledger", fact["id"]))
        record = self._record_of(customer_id)
        assert record is not None
        self._append_to_customer(customer_id, fact, record)

    def _survivor(self, customer_id: UUID) -> UUID:
        seen = set()
        record = self._record_of(customer_id)
        while record is not None and record.merged_into is not None and customer_id not in seen:
            seen.add(customer_id)
            customer_id = record.merged_into
            record = self._record_of(customer_id)
        return customer_id

    def _record_of(self, customer_id: UUID) -> CustomerRecord | None:
        if customer_id not in self.records:
            if customer_id in self.absent:
                return None
            found = self.index.customer_records([customer_id]).get(customer_id)
            if found is None:
                return None
            self.records[customer_id] = found
        return self.records[customer_id]

    def _owned_by(self) -> dict[UUID, set[str]]:
        """Identity keys per owner, built on first need and then kept in step by _set_owner:
        scanning ``owners`` for each address change was a tenth of the append's time."""
        if self.owned is None:
            self.owned = {}
            for k, v in self.owners.items():
                self.owned.setdefault(v, set()).add(k)
        return self.owned

    def _set_owner(self, key: str, customer_id: UUID) -> None:
        self.changes.expected_owners.setdefault(key, self.read_owners.get(key))
        if self.owned is not None:
            previous = self.owners.get(key)
            if previous is not None:
                self.owned.get(previous, set()).discard(key)
            self.owned.setdefault(customer_id, set()).add(key)
        self.owners[key] = customer_id
        self.changes.identities[key] = customer_id

    def _set_record(self, customer_id: UUID, record: CustomerRecord) -> None:
        self.records[customer_id] = record
        self.changes.customers[customer_id] = record

