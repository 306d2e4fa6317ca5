"""The write path: validated facts in, one save per batch across every stream they touch.

One save per event runs at 1-2k events/s on a small machine; one save per batch of a few
thousand facts is an order of magnitude faster, and it is also the unit of atomicity: a
batch's events, its dedupe keys and its identity changes commit together or not at all.

The streams are stored as eventsourcing aggregates' events (``Customer``, ``Case``: their topics
and states), but the batch builds no aggregate or domain-event object: loading aggregates and
creating domain-event objects was half the append's time. The writer keeps a little state per
stream (ledger/streams.py), checks the streams' rules on it (plain functions:
domain/registration.py, domain/case_rules.py) and writes the rows those aggregates would have
stored; everything that reads the store is unchanged.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast
from uuid import UUID

import orjson
from eventsourcing.domain import datetime_now_with_tzinfo
from eventsourcing.persistence import IntegrityError, StoredEvent, Tracking

from domain import case_rules, catalogue, identity, registration
from domain.errors import FactRejected, InvalidFact
from ledger import conflicts, fact_digest
from ledger import streams as st
from ledger.application import JourneyApplication, decode_notification
from ledger.crypto_mapper import NONCE_BYTES, CryptoMapper, seal_state
from ledger.index import CustomerRecord, IndexCache, IndexChanges
from ledger.streams import UNKNOWN, Stream, StreamCache

Fact = dict[str, Any]

#: When the fact given with a line (or offset) of a batch is recorded. Only a loader that replays
#: a history it knows the recording instants of passes one (the demo: journey/usecases/demo.py);
#: every door a sender uses records at the moment of writing.
RecordingClock = Callable[[int], datetime]

log = logging.getLogger("journey.writer")

#: Conflicts in a row after which a batch is recorded in two halves: each half touches fewer
#: streams, so it is less likely to meet another writer, and a conflict redoes less work.
SPLIT_AFTER = 3

#: The back-off between attempts: a random wait up to BASE * 2^conflicts, at most CAP seconds
#: (random, so writers that collided do not collide again in step).
BACKOFF_BASE = 0.05
BACKOFF_CAP = 2.0

#: The store's head when this Ledger cannot vouch for its caches (nothing written or seen yet).
_UNSEEN = -1


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


def _no_turn() -> contextlib.AbstractContextManager[None]:
    return contextlib.nullcontext()


class Ledger:
    """Records facts; thin: resolve, check the streams' rules, save the batch.

    Several writers may share a store (processes on one SQLite file, workers on one
    PostgreSQL database). A batch that meets another writer's changes fails as a whole in the
    store (IntegrityError) and is redone against the new state, for as long as others keep
    writing. ``take_turn`` (a lock shared by the writers, say) is held around each attempt:
    writers that take turns never conflict, because a writer whose turn starts after another
    wrote first drops what it cached.
    """

    def __init__(self, app: JourneyApplication,
                 take_turn: Callable[[], contextlib.AbstractContextManager[None]] | None = None) -> None:
        self.app = app
        self.take_turn = take_turn or _no_turn
        #: What the writer knows of each stream, kept between batches (ledger/streams.py).
        self.streams = StreamCache()
        #: The identity owners and customer records it read or wrote, kept between batches.
        self.known = IndexCache()
        #: The store's head (last notification id) the caches are known to agree with.
        self._head = _UNSEEN
        #: The head read when the current attempt began.
        self._attempt_head = _UNSEEN
        #: Batches redone because they met another writer's changes, since this Ledger opened.
        self.conflicts = 0

    def append(self, batch: Sequence[tuple[int, Fact]], tracking: Tracking | None = None,
               before_commit: Callable[[BatchResult], None] | None = None, *,
               clock: RecordingClock | None = None,
               contents: Sequence[bytes] | None = None) -> BatchResult:
        """Record a batch of validated facts (with the line or offset each came from).

        ``tracking`` (a Kafka partition and offset, say) is stored in the same transaction,
        so a redelivered batch is refused as a whole by the store. ``before_commit`` sees the
        batch's outcome (its rejections) before anything is stored, so a caller can hand the
        rejections on (to a dead-letter topic) first: a crash can then repeat, never lose
        them. It may be called more than once when the batch is retried after a conflict, and
        once per part when an untracked batch that keeps conflicting is recorded in parts.

        ``clock`` gives each fact's recording instant by its line (the facts the ledger derives
        from it share it); without one, a fact is recorded at the moment it is written. The
        instants must not go backwards along the batch, or "as recorded" reads would see a
        history the store's order contradicts.

        ``contents`` is each fact's :func:`ledger.fact_digest.content_bytes`, when the door
        computed them already (on another core: consumers/parse_pool.py).
        """
        # What each fact says, taken before the writer adds to the facts (an attempt that
        # failed has added event ids, customers and a merge's identities).
        if contents is None:
            contents = [fact_digest.content_bytes(fact) for _, fact in batch]
        elif len(contents) != len(batch):
            raise ValueError(f"{len(contents)} contents for a batch of {len(batch)} facts")
        return self._append(batch, contents, tracking, before_commit, clock)

    def _append(self, batch: Sequence[tuple[int, Fact]], contents: Sequence[bytes],
                tracking: Tracking | None,
                before_commit: Callable[[BatchResult], None] | None,
                clock: RecordingClock | None = None) -> BatchResult:
        conflicts = 0
        while True:
            try:
                return self._attempt(batch, contents, tracking, before_commit, clock)
            except IntegrityError as error:
                started = self._attempt_head
                self._drop_cache()
                if tracking is not None and self._tracked(tracking):
                    return BatchResult(duplicates=len(batch))
                if self._store_head() == started:
                    # Nothing was written while the attempt ran: no other writer caused this,
                    # and the same attempt would fail the same way.
                    raise
                conflicts += 1
                self.conflicts += 1
                where = _describe(batch)
                if tracking is None and len(batch) > 1 and conflicts >= SPLIT_AFTER:
                    log.warning("%s met other writers' changes %d times in a row (%s): "
                                "recording it in two halves", where, conflicts, error)
                    half = len(batch) // 2
                    first = self._append(batch[:half], contents[:half], None, before_commit, clock)
                    return _combined(first, self._append(batch[half:], contents[half:], None,
                                                         before_commit, clock))
                delay = random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2 ** min(conflicts, 16)))
                log.warning("%s met another writer's changes (%s): redoing it (retry %d) in %.2f s",
                            where, error, conflicts, delay)
                time.sleep(delay)
            except BaseException:
                # A half-applied batch must never leak pending versions into the next save.
                self._drop_cache()
                raise

    def _attempt(self, batch: Sequence[tuple[int, Fact]], contents: Sequence[bytes],
                 tracking: Tracking | None,
                 before_commit: Callable[[BatchResult], None] | None,
                 clock: RecordingClock | None) -> BatchResult:
        with self.take_turn():
            head = self._begin_turn()
            writer = _BatchWriter(self.app, batch, self.streams, contents, clock, self.known)
            result = writer.run(tracking, before_commit)
            written = writer.written
            if written:
                self.known.committed(writer.changes)
            if not written:
                self._head = head
            elif written[0] == head + 1:
                self._head = written[-1]  # nobody wrote between the head read and this batch
            return result

    def _begin_turn(self) -> int:
        """Read the store's head; drop the caches if another writer moved it since this
        Ledger last looked (its cached stream versions and keys may be stale)."""
        head = self._attempt_head = self._store_head()
        if head != self._head:
            self._drop_cache()
        self._head = _UNSEEN  # until the attempt ends well
        return head

    def _store_head(self) -> int:
        return self.app.recorder.max_notification_id() or 0

    def forget(self, reference_key: str, reason: str,
               before_shredding: Callable[[list[UUID]], None] | None = None) -> ForgetResult | None:
        """Erase a customer (GDPR art. 17) by crypto-shredding; None when nobody has the key.

        ``reference_key`` is an identity key (``phone:+34...``, ``customer_id:C-1``) or
        ``ledger:<uuid>``. One transaction records ``customer.forgotten`` in the customer's
        stream, destroys the keys of the customer and of every record merged into them, and
        deletes their identity keys from the write-side index. Stored events never change.

        ``before_shredding(records)`` runs while the records' keys still open their facts (the
        last moment anything can learn what the person's data was, to find copies of it
        outside the store: journey/usecases/erasure.py); it may run again if the transaction
        is retried.
        """
        conflicts = 0
        while True:
            try:
                with self.take_turn():
                    started = self._begin_turn()
                    result = _BatchWriter(self.app, [], self.streams).forget(reference_key, reason,
                                                                             before_shredding)
            except IntegrityError as error:
                self._drop_cache()
                if self._store_head() == started:
                    raise  # nobody else wrote meanwhile: the same attempt would fail the same way
                conflicts += 1
                delay = random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2 ** min(conflicts, 16)))
                log.warning("forgetting %s met another writer's changes (%s): redoing it (retry %d) "
                            "in %.2f s", reference_key.split(":", 1)[0], error, conflicts, delay)
                time.sleep(delay)
                continue
            except BaseException:
                self._drop_cache()
                raise
            if result is not None and not result.already:
                self.app.keys.reset()
                self.known.clear()  # the forget deleted identities and cleared numbers
                scrub = getattr(self.app.recorder, "scrub", None)
                if scrub is not None:
                    scrub()
            return result

    def _tracked(self, tracking: Tracking) -> bool:
        done = self.app.recorder.max_tracking_id(tracking.application_name)  # type: ignore[attr-defined]
        return done is not None and done >= tracking.notification_id

    def _drop_cache(self) -> None:
        # The key ring too: a key created meanwhile by another writer is read again.
        self.app.keys.reset()
        self.streams.clear()
        self.known.clear()
        self._head = _UNSEEN


def _describe(batch: Sequence[tuple[int, Fact]]) -> str:
    if not batch:
        return "a batch without facts"
    return f"a batch of {len(batch)} fact(s) (lines or offsets {batch[0][0]}-{batch[-1][0]})"


def _combined(first: BatchResult, second: BatchResult) -> BatchResult:
    return BatchResult(first.recorded + second.recorded, first.duplicates + second.duplicates,
                       first.derived + second.derived, first.rejected + second.rejected)


@dataclass(slots=True)
class _Pending:
    """One event of the batch, in the order the facts arrived (the notification order)."""

    stream_id: UUID
    version: int
    topic: str
    #: The event's state before sealing (ledger/streams.py).
    state: dict[str, Any]
    #: The record whose key seals it (the fact's ``customer_uuid``).
    customer_id: UUID
    #: That record's key, when the fact's digest needed it already (None: looked up to seal).
    key: bytes | None = None


class _BatchWriter:
    def __init__(self, app: JourneyApplication, batch: Sequence[tuple[int, Fact]],
                 streams: StreamCache, contents: Sequence[bytes] = (),
                 clock: RecordingClock | None = None, known: IndexCache | None = None) -> None:
        self.app = app
        #: Owners and records known from earlier batches (None: read everything from the store).
        self.known = known
        self.clock = clock
        #: The recording instant of the fact being recorded and of the facts derived from it.
        self.now = datetime_now_with_tzinfo()
        self.index = app.index
        self.batch = batch
        #: Each fact's content as sent (ledger/fact_digest.py), in batch order.
        self.contents = contents
        #: event id -> content, of the facts this batch may record (their digests are stored).
        self.sent: dict[str, bytes] = {}
        #: The notification ids of the stored events (empty until stored).
        self.written: Sequence[int] = ()
        self.changes = IndexChanges()
        self.result = BatchResult()
        #: Stream states across batches, and those this batch touched (never evicted meanwhile).
        self.cache = streams
        self.streams: dict[UUID, Stream] = {}
        self.pending: list[_Pending] = []
        self.owners: dict[str, UUID] = {}
        self.records: dict[UUID, CustomerRecord] = {}
        #: Identity owners as read from the store (the recorder re-checks them when writing).
        self.read_owners: dict[str, UUID] = {}
        #: Streams (customers', cases') that had events in the store when this batch met them.
        self.existing: set[UUID] = set()
        #: Customer ids known not to exist in the store (looked up in bulk by _prefetch).
        self.absent: set[UUID] = set()
        #: Stored identity keys per customer, read in bulk for the address changes (_prefetch).
        self.identities: dict[UUID, list[str]] = {}
        #: Records merged in this batch -> the identity keys the merge moved.
        self.joined: dict[UUID, list[str]] = {}
        #: owners inverted (see _owned_by); None until an address change or a merge needs it.
        self.owned: dict[UUID, set[str]] | None = None

    def run(self, tracking: Tracking | None,
            before_commit: Callable[[BatchResult], None] | None = None) -> BatchResult:
        fresh = self._drop_duplicates()
        self._prefetch(fresh)
        clock = self.clock
        for line, fact in fresh:
            self.now = datetime_now_with_tzinfo() if clock is None else clock(line)
            try:
                self._record(fact)
            except (FactRejected, InvalidFact) as error:
                self.result.rejected.append(Rejection(line, str(error)))
        self.result.rejected.sort(key=lambda r: r.line)
        if before_commit is not None:
            before_commit(self.result)
        # The events are stored in the order the facts arrived, not grouped by stream, so the
        # notification log (and Kafka after it) follows the input.
        if self.pending or tracking is not None:
            self._put(tracking)
        return self.result

    def _put(self, tracking: Tracking | None) -> None:
        """Seal and store the batch's events with its index changes, in one transaction.

        Sealing creates a key for a record without one; the recorder inserts those keys (this
        very dict) in the events' transaction."""
        mapper = cast(CryptoMapper, self.app.mapper)
        ring = self.app.keys
        encode = mapper.encode_state
        nonces = os.urandom(NONCE_BYTES * len(self.pending))
        stored = []
        for i, p in enumerate(self.pending):
            state = seal_state(p.state, ring, p.customer_id, nonces[i * NONCE_BYTES:(i + 1) * NONCE_BYTES],
                               p.key)
            stored.append(StoredEvent(originator_id=p.stream_id, originator_version=p.version,
                                      topic=p.topic, state=encode(state)))
        self.changes.keys = ring.pending
        self.written = self.app.recorder.insert_events(stored, tracking=tracking, index=self.changes) or ()
        ring.committed()

    def forget(self, reference_key: str, reason: str,
               before_shredding: Callable[[list[UUID]], None] | None = None) -> ForgetResult | None:
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
        self.now = datetime_now_with_tzinfo()
        now = self.now.astimezone(UTC).isoformat(timespec="microseconds")
        fact: Fact = {
            "type": "customer.forgotten", "v": catalogue.TYPES["customer.forgotten"].version,
            "id": f"forget:{customer_id}", "source": "ledger",
            "customer": {"customer_id": str(customer_id)}, "occurred_at": now,
            "data": {"reason": reason}, "customer_uuid": str(customer_id),
        }
        fact["event_id"] = str(identity.event_uuid("ledger", fact["id"]))
        if before_shredding is not None:
            before_shredding(list(records))
        self._append_to_customer(customer_id, fact, record)
        self.changes.forget = records
        self.changes.forgotten_at = now
        self._put(None)
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
        """The facts not recorded yet. A fact whose source and id are known is a duplicate
        when it says the same as the recorded one (or the earlier one of this batch), and is
        rejected as a conflict when it says something else."""
        contents = self.contents or [fact_digest.content_bytes(f) for _, f in self.batch]
        for _, fact in self.batch:
            fact["event_id"] = event_id(fact["source"], fact["id"])
        known = self.index.known_events(f["event_id"] for _, f in self.batch)
        recorded = self.index.fact_digests(known) if known else {}
        ring = self.app.keys
        ring.prefetch({customer for customer, digest in recorded.values() if digest is not None})
        first: dict[str, int] = {}  # event id -> where in the batch it was first met
        fresh = []
        for i, (line, fact) in enumerate(self.batch):
            eid = fact["event_id"]
            if eid in known:
                customer, stored = recorded.get(eid, (None, None))
                # No digest (recorded before digests were kept) or no key (the customer was
                # forgotten): nothing to compare with, a duplicate as it always was.
                key = ring.key_of(customer) if customer is not None and stored is not None else None
                if key is None or fact_digest.digest(key, contents[i]) == stored:
                    self.result.duplicates += 1
                else:
                    self.result.rejected.append(Rejection(line, self._recorded_conflict(eid, contents[i])))
            elif eid in first:
                j = first[eid]
                if contents[j] == contents[i]:
                    self.result.duplicates += 1
                else:
                    reason = conflicts.batch_conflict(fact, orjson.loads(contents[i]),
                                                      orjson.loads(contents[j]), self.batch[j][0])
                    self.result.rejected.append(Rejection(line, reason))
            else:
                first[eid] = i
                self.sent[eid] = contents[i]
                fresh.append((line, fact))
        return fresh

    def _recorded_conflict(self, eid: str, content: bytes) -> str:
        """Read back the recorded fact (only for a conflict: rare) to say what differs."""
        notification = self.index.recorded_fact(eid)
        if notification is None:  # the index names a fact the store does not hold
            return f"conflict: a different fact was recorded with this source and id (event {eid})"
        stored = decode_notification(self.app, notification)
        return conflicts.recorded_conflict(orjson.loads(content), stored)

    def _prefetch(self, facts: list[tuple[int, Fact]]) -> None:
        """Read in a few bulk queries what the batch's facts will ask about: identity owners,
        records, keys, stream versions, case owners, registrations, stored identities."""
        keys: set[str] = set()
        for _, fact in facts:
            keys.update(identity.reference_keys(fact["customer"]))
            keys.update(catalogue.claimed_identities(fact))
        known = self.known
        self.owners = self.index.identity_owners(keys) if known is None else \
            known.identity_owners(self.index, keys)
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
        self.records = self.index.customer_records(candidates) if known is None else \
            known.customer_records(self.index, candidates)
        survivors = {r.merged_into for r in self.records.values() if r.merged_into}
        self.app.keys.prefetch(candidates | survivors)
        self.absent = candidates - set(self.records)
        cases = {identity.case_uuid(f["data"]["case_id"]) for _, f in facts
                 if "case_id" in f["data"] and f["type"].startswith("case.")}
        # A customer without a record has no stream either (the record is written with its
        # first event and never deleted): no need to ask the store about each new customer.
        for customer_id in self.absent:
            if customer_id not in self.cache:
                self.cache.put(customer_id, Stream(0))
        unknown = [s for s in (set(self.records) | survivors | cases) if s not in self.cache]
        versions = self.index.stream_versions(unknown)
        for stream_id in unknown:
            version = versions.get(stream_id, 0)
            self.cache.put(stream_id, Stream(version, UNKNOWN if version else None))
        self._prefetch_case_owners(cases)
        self._prefetch_markers(facts)
        self._prefetch_identities(facts)

    def _prefetch_case_owners(self, cases: set[UUID]) -> None:
        wanted = [c for c in cases if (s := self.cache.get(c)) is not None and s.version and s.owner is None]
        for case_id, state in self.index.first_states(wanted).items():
            stream = self.cache.get(case_id)
            if stream is not None:
                stream.owner = self._decode(state)["customer_id"]

    def _likely_target(self, fact: Fact) -> UUID:
        """Whom a fact will most likely land on (the index as read): what to prefetch for it."""
        return self._survivor(identity.resolve(fact["customer"], self.owners).customer_id)

    def _prefetch_markers(self, facts: list[tuple[int, Fact]]) -> None:
        """Registrations and case openings of streams this process has not written: whether the
        stream already has one (read from the stored events that mention the type)."""
        wanted: dict[str, set[UUID]] = {st.CUSTOMER_MARKER: set(), st.CASE_MARKER: set()}
        for _, fact in facts:
            if fact["type"] == st.CUSTOMER_MARKER:
                stream_id = self._likely_target(fact)
            elif fact["type"] == st.CASE_MARKER:
                stream_id = identity.case_uuid(fact["data"]["case_id"])
            else:
                continue
            stream = self.cache.get(stream_id)
            if stream is not None and stream.marker is UNKNOWN:
                wanted[fact["type"]].add(stream_id)
        for marker, ids in wanted.items():
            found = self._markers(ids, marker)
            for stream_id in ids:
                stream = self.cache.get(stream_id)
                if stream is not None:
                    stream.marker = found.get(stream_id)

    def _markers(self, ids: Iterable[UUID], fact_type: str) -> dict[UUID, str]:
        """The event id of the last fact of ``fact_type`` in each stream that has one."""
        mapper = cast(CryptoMapper, self.app.mapper)
        # The type's JSON string: whatever the separators of the transcoder that wrote it.
        needle = None if mapper.cipher or mapper.compressor else f'"{fact_type}"'.encode()
        found: dict[UUID, str] = {}
        for stream_id, states in self.index.stream_states(ids, needle).items():
            for state in states:
                fact = self._decode(state).get("fact")
                if isinstance(fact, dict) and fact.get("type") == fact_type:
                    found[stream_id] = fact["event_id"]
        return found

    def _prefetch_identities(self, facts: list[tuple[int, Fact]]) -> None:
        """The stored identity keys of the customers whose address changes will be notified."""
        targets = {self._likely_target(f) for _, f in facts if _notified(f)}
        self.identities = self.index.identities_by_customer(
            t for t in targets if (s := self.cache.get(t)) is not None and s.version)

    def _decode(self, state: bytes) -> dict[str, Any]:
        return cast(CryptoMapper, self.app.mapper).decode_state(state)

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
        if _notified(fact):
            self._notify_address_change(customer_id, fact)

    def _notify_address_change(self, customer_id: UUID, change: Fact) -> None:
        """Tell the customer about a change they did not ask for, through the channels they
        still have: a letter (to the old and the new address) and an e-mail when one is known.
        The notices are facts of their own, so every department sees them in the timeline."""
        keys = set(self._identities_of(customer_id)) if customer_id in self.existing else set()
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

    def _identities_of(self, customer_id: UUID) -> list[str]:
        found = self.identities.get(customer_id)
        return self.index.identities_of(customer_id) if found is None else found

    def _stream(self, stream_id: UUID) -> Stream:
        """The stream's state (read from the store the first time nothing knows it)."""
        stream = self.streams.get(stream_id)
        if stream is None:
            stream = self.cache.get(stream_id)
            if stream is None:  # a record the batch reached by a merge or unmerge
                version = 0 if stream_id in self.absent else \
                    self.index.stream_versions([stream_id]).get(stream_id, 0)
                stream = Stream(version, UNKNOWN if version else None)
                self.cache.put(stream_id, stream)
            self.streams[stream_id] = stream
            if stream.version:
                self.existing.add(stream_id)
        return stream

    def _marker(self, stream_id: UUID, stream: Stream, fact_type: str) -> str | None:
        if stream.marker is UNKNOWN:
            stream.marker = self._markers([stream_id], fact_type).get(stream_id)
        assert not isinstance(stream.marker, st._Unknown)
        return stream.marker

    def _append_to_customer(self, customer_id: UUID, fact: Fact, record: CustomerRecord) -> None:
        stream = self._stream(customer_id)
        registers = registration.registers(fact)
        if stream.version and registers:
            registration.check_registered_once(fact, self._marker(customer_id, stream, st.CUSTOMER_MARKER))
        if registers or not stream.version:
            stream.marker = fact["event_id"] if registers else None
        first = not stream.version
        stream.version += 1
        self._add(customer_id, stream.version, st.CUSTOMER_STARTED if first else st.CUSTOMER_RECORDED,
                  st.customer_state(self.now, fact, first, record.kind,
                                    record.customer_number),
                  fact, customer_id)

    def _append_to_case(self, fact: Fact, customer_id: UUID) -> None:
        case_key = fact["data"]["case_id"]
        case_id = identity.case_uuid(case_key)
        stream = self._stream(case_id)
        opens = case_rules.opens(fact)
        if stream.version:
            if stream.owner is None:
                stream.owner = self._decode(self.index.first_states([case_id])[case_id])["customer_id"]
            case_rules.check_same_customer(case_key, customer_id, self._survivor(UUID(stream.owner)))
            if opens:
                case_rules.check_opened_once(case_key, fact, self._marker(case_id, stream, st.CASE_MARKER))
        else:
            stream.owner = str(customer_id)
        if opens or not stream.version:
            stream.marker = fact["event_id"] if opens else None
        first = not stream.version
        stream.version += 1
        self._add(case_id, stream.version, st.CASE_STARTED if first else st.CASE_RECORDED,
                  st.case_state(self.now, fact, first, case_key, stream.owner),
                  fact, customer_id)

    def _add(self, stream_id: UUID, version: int, topic: str, state: dict[str, Any], fact: Fact,
             customer_id: UUID) -> None:
        eid = fact["event_id"]
        content = self.sent.get(eid)
        key = None
        if content is not None:  # a sender's fact (the ledger's own have no digest)
            key = self.app.keys.key_for_write(customer_id)
            self.changes.digests[eid] = fact_digest.digest(key, content)
        self.pending.append(_Pending(stream_id, version, topic, state, customer_id, key))
        self.changes.facts.append((eid, customer_id.hex, stream_id.hex, version))
        if fact["source"] == "ledger":
            self.result.derived += 1
        else:
            self.result.recorded += 1

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



_EVENT_NAMESPACE = identity.NAMESPACE.bytes


def event_id(source: str, source_id: str) -> str:
    """``str(identity.event_uuid(source, source_id))`` without building a UUID object (a uuid5:
    SHA-1 of namespace and name, version and variant bits set), once per fact of every batch."""
    raw = bytearray(hashlib.sha1(_EVENT_NAMESPACE + f"fact:{source}\x1f{source_id}".encode(),
                                 usedforsecurity=False).digest()[:16])
    raw[6] = (raw[6] & 0x0F) | 0x50
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _notified(fact: Fact) -> bool:
    """An address change the customer did not ask for: they are told (see _notify_address_change)."""
    return fact["type"] == "address.changed" and bool(fact["data"].get("requested_by") != "customer")
