"""Tamper evidence: every recorded event chained by hash to the previous event of its customer.

    hash = sha256(prev_hash || stream_id (16 bytes) || stream_version (8 bytes, big-endian)
                  || the event's state bytes exactly as stored)

``prev_hash`` is the hash of the same customer's previous chained event, or 32 zero bytes for
the customer's first one. Every field before the state has a fixed length, so the input cannot be
read two ways. The customer of an event is the one ``IndexChanges.facts`` names for it (the
customer the fact resolved to when it was written); an event written without an index entry
(nothing in the ledger does that, but eventsourcing's API allows it) is chained under its own
stream id instead, so it is still covered.

The recorders write the links and the head of every customer's chain (``journey_chain_heads``)
in the same transaction as the events; ``journey_chain_start`` holds the first position chained
(a store created before the chain existed is covered from the first event recorded after). On
SQLite a link is part of the event's one row in ``journey_log`` (position, event_id, customer_id,
stream_id, stream_version, digest, prev_hash, hash: the fact index and the link together, ids as
16 bytes); on PostgreSQL it is a row of ``journey_chain`` (position, customer_id, stream_id,
stream_version, prev_hash, hash) beside the fact index ``journey_facts``.

:func:`verify_store` re-reads every stored event, recomputes every chain and compares it with
the stored links, the stored heads and any number of :class:`Checkpoint` files; a checkpoint
catches an edit of an event older than itself even when the attacker rewrote the links
consistently. This module holds the pure hashing and verification plus the SQL both recorders
call; it never decodes events, so what it checks is the bytes as stored.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson

GENESIS = bytes(32)
CHECKPOINT_FORMAT = "journey-checkpoint/1"
#: Problems kept in a report (all are counted).
MAX_PROBLEMS = 100
_VERSION = struct.Struct(">q")


def link_hash(prev: bytes, stream_id: UUID, stream_version: int, state: bytes) -> bytes:
    return hashlib.sha256(prev + stream_id.bytes + _VERSION.pack(stream_version) + state).digest()


@dataclass(frozen=True, slots=True)
class Link:
    position: int
    customer_id: str  # hex
    stream_id: str  # hex
    stream_version: int
    prev_hash: bytes
    hash: bytes


def _uuid_hex(value: Any) -> str:
    if isinstance(value, UUID):
        return value.hex
    if isinstance(value, bytes | memoryview):  # journey_log's 16-byte ids
        return UUID(bytes=bytes(value)).hex
    return UUID(str(value)).hex


def _hashed(positions: Sequence[int], streams: Sequence[str], events: Sequence[Any],
            customers: Sequence[str], heads: dict[str, bytes]
            ) -> Iterator[tuple[int, str, str, int, bytes, bytes]]:
    """(position, customer, stream, version, prev_hash, hash) of each just-inserted event
    (``streams``: their stream ids as hex; ``events``: anything with ``originator_version`` and
    ``state``), chained after ``heads`` (the customers' stored heads), which end as the new
    heads. The one place both recorders hash a batch's links (:func:`link_hash`, without
    parsing each hex id into a UUID: its 16 bytes are the hex's)."""
    sha256, pack, fromhex = hashlib.sha256, _VERSION.pack, bytes.fromhex
    for position, stream, event, customer in zip(positions, streams, events, customers, strict=True):
        version = event.originator_version
        prev = heads.get(customer, GENESIS)
        digest = sha256(prev + fromhex(stream) + pack(version) + event.state).digest()
        heads[customer] = digest
        yield position, customer, stream, version, prev, digest


def links_for(positions: Sequence[int], events: Sequence[Any],
              facts: Iterable[tuple[str, str, str, int]] | None,
              read_heads: Callable[[list[str]], Mapping[str, bytes]]) -> list[Link]:
    """The links of a batch of just-inserted events (stored events: originator id, version,
    state), given their positions; ``read_heads`` returns the stored heads of the customers it
    is asked for."""
    owner = {(s, v): c for _, c, s, v in (facts or ())}
    streams = [_uuid_hex(e.originator_id) for e in events]
    customers = [owner.get((stream, e.originator_version), stream)
                 for stream, e in zip(streams, events, strict=True)]
    heads = dict(read_heads(sorted(set(customers))))
    return [Link(*link) for link in _hashed(positions, streams, events, customers, heads)]


def _heads_of(links: Sequence[Link]) -> dict[str, tuple[int, bytes]]:
    heads: dict[str, tuple[int, bytes]] = {}
    for link in links:
        heads[link.customer_id] = (link.position, link.hash)
    return heads


# -- SQLite ----------------------------------------------------------------------------------------

#: The SQLite store's one row per event: the fact index and the event's link (see
#: docs/decisions.md). An event written without an index entry has neither ``event_id`` nor
#: ``customer_id`` (it is no customer's fact; its link is chained under its stream id).
#: ``hash`` and ``prev_hash`` are NULL for a fact recorded before the chain existed (a
#: migrated store). Ids are 16-byte BLOBs.
SQLITE_CREATE = [
    "CREATE TABLE IF NOT EXISTS journey_log (position INTEGER PRIMARY KEY, event_id BLOB, "
    "customer_id BLOB, stream_id BLOB NOT NULL, stream_version INTEGER NOT NULL, "
    "digest BLOB, prev_hash BLOB, hash BLOB, CHECK ((event_id IS NULL) = (customer_id IS NULL)))",
    # The dedupe: a fact recorded concurrently by another writer fails the whole batch.
    "CREATE UNIQUE INDEX IF NOT EXISTS journey_log_by_event ON journey_log (event_id)",
    # facts_of(customer) in log order, covering: the readers then fetch each event by its
    # position (the events table's rowid), in order, with nothing to sort.
    "CREATE INDEX IF NOT EXISTS journey_log_by_customer ON journey_log (customer_id, position)",
    "CREATE TABLE IF NOT EXISTS journey_chain_heads (customer_id TEXT PRIMARY KEY, "
    "position INTEGER NOT NULL, hash BLOB NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS journey_chain_start (id INTEGER PRIMARY KEY CHECK (id = 1), "
    "position INTEGER NOT NULL)",
]


def event_id_bytes(event_id: str) -> bytes:
    """A fact's event id (a uuid, as text) as the 16 bytes ``journey_log`` keeps."""
    return bytes.fromhex(event_id.replace("-", "")) if len(event_id) == 36 else UUID(event_id).bytes


def sqlite_write(cursor: Any, positions: Sequence[int], stored_events: Sequence[Any],
                 facts: Iterable[tuple[str, str, str, int]] | None,
                 digests: Mapping[str, bytes] | None = None) -> None:
    """Inside the recorder's write transaction, after the events are inserted: each event's row
    of ``journey_log`` (its fact's index entry and its link, one INSERT) and the heads. A plain
    INSERT: a fact recorded concurrently by another writer fails the whole batch on the unique
    event id (IntegrityError), which the writer retries against the new state."""
    if not positions:
        return

    def read_heads(customers: list[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        for i in range(0, len(customers), 500):
            part = customers[i:i + 500]
            cursor.execute("SELECT customer_id, hash FROM journey_chain_heads WHERE customer_id IN "
                           f"({','.join('?' * len(part))})", part)
            found.update({r[0]: bytes(r[1]) for r in cursor.fetchall()})
        return found

    facts = facts if isinstance(facts, list) else list(facts or ())
    digests = digests or {}
    streams = [_uuid_hex(s.originator_id) for s in stored_events]
    # The writer lists a batch's facts in the order of its events: then the i-th fact is the
    # i-th event's (checked), without a lookup table per batch.
    per_event: Sequence[tuple[str, str, str, int] | None] = facts
    if len(facts) != len(streams) or any(
            f[2] != stream or f[3] != s.originator_version
            for f, stream, s in zip(facts, streams, stored_events, strict=True)):
        by_key = {(f[2], f[3]): f for f in facts}
        per_event = [by_key.get((stream, s.originator_version)) for stream, s in zip(streams, stored_events,
                                                                                     strict=True)]
        if len(by_key) != len(facts) or sum(f is not None for f in per_event) != len(facts):
            # Every index entry is one event's row: an entry for an event the batch does not
            # hold (or two for one event) has nowhere to go and would be lost.
            raise ValueError("the batch's fact index names events it does not insert")
    customers = [stream if f is None else f[1] for f, stream in zip(per_event, streams, strict=True)]
    heads = dict(read_heads(sorted(set(customers))))
    last: dict[str, tuple[int, bytes]] = {}
    rows: list[tuple[int, bytes | None, bytes | None, bytes, int, bytes | None, bytes, bytes]] = []
    for (position, customer, stream, version, prev, digest), f in zip(
            _hashed(positions, streams, stored_events, customers, heads), per_event, strict=True):
        last[customer] = (position, digest)
        if f is None:
            rows.append((position, None, None, bytes.fromhex(stream), version, None, prev, digest))
        else:
            rows.append((position, event_id_bytes(f[0]), bytes.fromhex(customer), bytes.fromhex(stream),
                         version, digests.get(f[0]), prev, digest))
    cursor.executemany("INSERT INTO journey_log VALUES (?,?,?,?,?,?,?,?)", rows)
    cursor.executemany(
        "INSERT INTO journey_chain_heads VALUES (?,?,?) ON CONFLICT(customer_id) DO UPDATE "
        "SET position=excluded.position, hash=excluded.hash", sorted((c, p, h) for c, (p, h) in last.items()))
    cursor.execute("INSERT OR IGNORE INTO journey_chain_start VALUES (1, ?)", (positions[0],))


# -- PostgreSQL ------------------------------------------------------------------------------------

POSTGRES_CREATE = [
    "CREATE TABLE IF NOT EXISTS {schema}.journey_chain (position bigint PRIMARY KEY, "
    "customer_id uuid NOT NULL, stream_id uuid NOT NULL, stream_version bigint NOT NULL, "
    "prev_hash bytea NOT NULL, hash bytea NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {schema}.journey_chain_heads (customer_id uuid PRIMARY KEY, "
    "position bigint NOT NULL, hash bytea NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {schema}.journey_chain_start (id int PRIMARY KEY CHECK (id = 1), "
    "position bigint NOT NULL)",
]
_PG_READ_HEADS = ("SELECT customer_id, hash FROM {schema}.journey_chain_heads "
                  "WHERE customer_id = ANY(%s::uuid[])")
_PG_INSERT_LINKS = (
    "INSERT INTO {schema}.journey_chain SELECT x.p, x.c, x.s, x.v, decode(x.ph, 'hex'), decode(x.h, 'hex') "
    "FROM json_to_recordset(%s::json) AS x(p bigint, c uuid, s uuid, v bigint, ph text, h text)")
_PG_UPSERT_HEADS = (
    "INSERT INTO {schema}.journey_chain_heads SELECT x.c, x.p, decode(x.h, 'hex') "
    "FROM json_to_recordset(%s::json) AS x(c uuid, p bigint, h text) "
    "ON CONFLICT (customer_id) DO UPDATE SET position = EXCLUDED.position, hash = EXCLUDED.hash")
_PG_START = "INSERT INTO {schema}.journey_chain_start VALUES (1, %s) ON CONFLICT (id) DO NOTHING"


def _pg(schema: str, text: str) -> Any:
    from psycopg.sql import SQL, Identifier

    return SQL(text).format(schema=Identifier(schema))


def postgres_create(schema: str) -> list[Any]:
    return [_pg(schema, s) for s in POSTGRES_CREATE]


def postgres_write(cursor: Any, schema: str, positions: Sequence[int], stored_events: Sequence[Any],
                   facts: Iterable[tuple[str, str, str, int]] | None) -> None:
    """Inside the recorder's transaction, under its table lock, after the events are inserted."""
    if not positions:
        return

    def read_heads(customers: list[str]) -> dict[str, bytes]:
        cursor.execute(_pg(schema, _PG_READ_HEADS), ([UUID(c) for c in customers],))
        return {r["customer_id"].hex: bytes(r["hash"]) for r in cursor.fetchall()}

    links = links_for(positions, stored_events, facts, read_heads)
    cursor.execute(_pg(schema, _PG_INSERT_LINKS), (orjson.dumps([
        {"p": k.position, "c": k.customer_id, "s": k.stream_id, "v": k.stream_version,
         "ph": k.prev_hash.hex(), "h": k.hash.hex()} for k in links]).decode(),))
    cursor.execute(_pg(schema, _PG_UPSERT_HEADS), (orjson.dumps([
        {"c": c, "p": p, "h": h.hex()} for c, (p, h) in _heads_of(links).items()]).decode(),))
    cursor.execute(_pg(schema, _PG_START), (links[0].position,))


# -- reading a store -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class StoredRow:
    """One stored event with the customer its fact names and its stored link (if any)."""

    position: int
    stream_id: str
    stream_version: int
    state: bytes
    link: Link | None


class StoreReader:
    """The reads verification needs, for the SQLite or the PostgreSQL recorder."""

    def __init__(self, recorder: Any) -> None:
        self.recorder = recorder
        self.postgres = hasattr(recorder.datastore, "schema")
        self.table = recorder.events_table_name

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        if self.postgres:
            with self.recorder.datastore.get_connection() as conn, conn.cursor() as curs:
                curs.execute(_pg(self.recorder.datastore.schema, sql.replace("?", "%s")), params)
                return [tuple(r.values()) for r in curs.fetchall()]
        with self.recorder.datastore.transaction(commit=False) as c:
            c.execute(sql.replace("{schema}.", ""), params)
            return [tuple(r) for r in c.fetchall()]

    @property
    def _events(self) -> str:
        return "{schema}." + str(self.table)

    @property
    def _pos(self) -> str:
        return "notification_id" if self.postgres else "rowid"

    def head(self) -> int:
        [(n,)] = self._rows(f"SELECT MAX({self._pos}) FROM {self._events}")
        return int(n or 0)

    def count(self) -> int:
        [(n,)] = self._rows(f"SELECT COUNT(*) FROM {self._events}")
        return int(n)

    def start(self) -> int | None:
        rows = self._rows("SELECT position FROM {schema}.journey_chain_start WHERE id = 1")
        return int(rows[0][0]) if rows else None

    @property
    def _links(self) -> str:
        """The table of the links: on SQLite the rows of ``journey_log`` that have one."""
        return "{schema}.journey_chain" if self.postgres else "journey_log"

    @property
    def _linked(self) -> str:
        return "" if self.postgres else " AND c.hash IS NOT NULL"

    @property
    def _customer(self) -> str:
        """A link's customer: on SQLite an event without an index entry has none (its stream)."""
        return "c.customer_id" if self.postgres else "coalesce(c.customer_id, c.stream_id)"

    def fact_owners(self) -> dict[tuple[str, int], str]:
        sql = "SELECT stream_id, stream_version, customer_id FROM " + (
            "{schema}.journey_facts" if self.postgres else "journey_log WHERE event_id IS NOT NULL")
        return {(_uuid_hex(s), int(v)): _uuid_hex(c) for s, v, c in self._rows(sql)}

    def stored_heads(self) -> dict[str, tuple[int, bytes]]:
        rows = self._rows("SELECT customer_id, position, hash FROM {schema}.journey_chain_heads")
        return {_uuid_hex(c): (int(p), bytes(h)) for c, p, h in rows}

    def orphan_links(self) -> list[Link]:
        rows = self._rows(
            f"SELECT c.position, {self._customer}, c.stream_id, c.stream_version, c.prev_hash, c.hash "
            f"FROM {self._links} c LEFT JOIN {self._events} s ON s.{self._pos} = c.position "
            f"WHERE s.{self._pos} IS NULL{self._linked} ORDER BY c.position")
        return [Link(int(p), _uuid_hex(c), _uuid_hex(s), int(v), bytes(ph), bytes(h))
                for p, c, s, v, ph, h in rows]

    def scan(self, batch: int = 5000) -> Iterator[list[StoredRow]]:
        after = 0
        sql = (f"SELECT s.{self._pos}, s.originator_id, s.originator_version, s.state, "
               f"c.position, {self._customer}, c.stream_id, c.stream_version, c.prev_hash, c.hash "
               f"FROM {self._events} s LEFT JOIN {self._links} c ON c.position = s.{self._pos}{self._linked} "
               f"WHERE s.{self._pos} > ? ORDER BY s.{self._pos} LIMIT ?")
        while True:
            rows = self._rows(sql, (after, batch))
            if not rows:
                return
            out = []
            for p, o, v, state, cp, cc, cs, cv, ph, h in rows:
                link = None if cp is None else Link(int(cp), _uuid_hex(cc), _uuid_hex(cs), int(cv),
                                                    bytes(ph), bytes(h))
                out.append(StoredRow(int(p), _uuid_hex(o), int(v), bytes(state), link))
            after = out[-1].position
            yield out


# -- checkpoints -----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Checkpoint:
    position: int
    covered_from: int | None
    taken_at: str
    #: customer id (hex) -> (position of the customer's last event at ``position``, its hash)
    heads: dict[str, tuple[int, bytes]]
    digest: str = ""

    def body(self) -> dict[str, Any]:
        return {"format": CHECKPOINT_FORMAT, "position": self.position, "covered_from": self.covered_from,
                "taken_at": self.taken_at,
                "heads": {c: [p, h.hex()] for c, (p, h) in sorted(self.heads.items())}}

    def compute_digest(self) -> str:
        return hashlib.sha256(orjson.dumps(self.body(), option=orjson.OPT_SORT_KEYS)).hexdigest()

    def write(self, path: Path) -> None:
        with open(path, "xb") as out:  # never overwrite a checkpoint
            out.write(orjson.dumps({**self.body(), "digest": self.compute_digest()},
                                   option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
            out.write(b"\n")


class CheckpointError(ValueError):
    pass


def read_checkpoint(path: Path) -> Checkpoint:
    try:
        doc = orjson.loads(path.read_bytes())
        if doc.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(f"{path}: not a journey checkpoint ({doc.get('format')!r})")
        cp = Checkpoint(int(doc["position"]), doc["covered_from"], str(doc["taken_at"]),
                        {c: (int(p), bytes.fromhex(h)) for c, (p, h) in doc["heads"].items()},
                        str(doc["digest"]))
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        if isinstance(error, CheckpointError):
            raise
        raise CheckpointError(f"{path}: cannot read checkpoint: {error}") from None
    if cp.compute_digest() != cp.digest:
        raise CheckpointError(f"{path}: the checkpoint's digest does not match its content (edited?)")
    return cp


# -- verification ----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Problem:
    position: int
    customer_id: str | None
    stream_id: str | None
    stream_version: int | None
    what: str

    def as_dict(self) -> dict[str, Any]:
        return {"position": self.position, "customer_id": self.customer_id, "stream_id": self.stream_id,
                "stream_version": self.stream_version, "what": self.what}


@dataclass(slots=True)
class Report:
    events: int = 0
    chained: int = 0
    covered_from: int | None = None
    head: int = 0
    customers: int = 0
    seconds: float = 0.0
    problems: list[Problem] = field(default_factory=list)
    problem_count: int = 0
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    #: recomputed heads at the end (customer -> (position, hash)), for --write-checkpoint
    heads: dict[str, tuple[int, bytes]] = field(default_factory=dict)

    @property
    def intact(self) -> bool:
        return self.problem_count == 0

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    @property
    def first(self) -> Problem | None:
        return min(self.problems, key=lambda p: p.position) if self.problems else None

    def add(self, problem: Problem) -> None:
        self.problem_count += 1
        self.problems.append(problem)
        if len(self.problems) > MAX_PROBLEMS:
            self.problems.remove(max(self.problems, key=lambda p: p.position))

    def as_dict(self) -> dict[str, Any]:
        first = self.first
        return {"intact": self.intact, "events": self.events, "chained": self.chained,
                "covered_from": self.covered_from, "head": self.head, "customers": self.customers,
                "seconds": round(self.seconds, 3), "events_per_second": round(self.rate),
                "first_broken": first.as_dict() if first else None, "problems": self.problem_count,
                "problem_list": [p.as_dict() for p in sorted(self.problems, key=lambda p: p.position)],
                "checkpoints": self.checkpoints}


class Verifier:
    """Feed it the stored events in position order; it recomputes every chain as it goes."""

    def __init__(self, owners: Mapping[tuple[str, int], str], covered_from: int | None,
                 checkpoints: Sequence[Checkpoint] = ()) -> None:
        self.owners = owners
        self.report = Report(covered_from=covered_from)
        #: the truth: heads recomputed from the stored bytes alone
        self.computed: dict[str, tuple[int, bytes]] = {}
        #: the stored hash of each customer's previous link (local continuity, no cascades)
        self.last_stored: dict[str, bytes] = {}
        #: the values of ``last_stored``: hash -> (its customer, its position)
        self.tips: dict[bytes, tuple[str, int]] = {}
        self.pending = sorted(checkpoints, key=lambda c: c.position)
        self.orphans: list[Link] = []

    def _problem(self, row: StoredRow | Link, customer: str | None, what: str) -> None:
        self.report.add(Problem(row.position, customer, row.stream_id, row.stream_version, what))

    def feed(self, rows: Iterable[StoredRow]) -> None:
        start = self.report.covered_from
        for row in rows:
            while self.pending and row.position > self.pending[0].position:
                self._compare(self.pending.pop(0))
            self.report.events += 1
            self.report.head = row.position
            if start is None or row.position < start:
                if row.link is not None:
                    self._problem(row, row.link.customer_id,
                                  f"chain row before the chain's start (position {start})")
                continue
            customer = self.owners.get((row.stream_id, row.stream_version), row.stream_id)
            prev_computed = self.computed.get(customer, (0, GENESIS))[1]
            self.computed[customer] = (row.position, link_hash(prev_computed, UUID(row.stream_id),
                                                               row.stream_version, row.state))
            link = row.link
            if link is None:
                self._problem(row, customer, "no chain row for this event (deleted, or written around "
                                             "the recorder)")
                continue
            self.report.chained += 1
            expected_prev = self.last_stored.get(customer, GENESIS)
            self.last_stored[customer] = link.hash
            other = self.tips.get(link.prev_hash) if link.prev_hash != expected_prev else None
            self.tips.pop(expected_prev, None)
            self.tips[link.hash] = (customer, row.position)
            if link.customer_id != customer:
                self._problem(row, customer, f"chain row names customer {link.customer_id}, the event "
                                             f"belongs to {customer}")
            elif (link.stream_id, link.stream_version) != (row.stream_id, row.stream_version):
                self._problem(row, customer, f"chain row is for stream {link.stream_id} version "
                                             f"{link.stream_version}: chain rows moved or reordered")
            elif link.prev_hash != expected_prev and other is not None and other[0] != customer:
                # On SQLite the link and the fact's customer are one column: a changed customer
                # shows as a link continuing another customer's chain.
                self._problem(row, customer, f"chain row names customer {link.customer_id}, but its "
                                             f"prev_hash is the hash of customer {other[0]}'s event at "
                                             f"position {other[1]}: a chain row's customer was changed")
            elif link.prev_hash != expected_prev:
                self._problem(row, customer, "prev_hash is not the hash of the customer's previous event: "
                                             "an event was deleted, inserted or reordered before this one")
            elif link.hash != link_hash(link.prev_hash, UUID(row.stream_id), row.stream_version, row.state):
                self._problem(row, customer, "hash differs: the stored bytes of this event were changed")

    def add_orphans(self, links: Iterable[Link]) -> None:
        for link in links:
            self._problem(link, link.customer_id, "chain row without its event: the event was deleted")

    def finish(self, stored_heads: Mapping[str, tuple[int, bytes]] | None = None) -> Report:
        for cp in self.pending:
            self._compare(cp)
        self.pending = []
        report = self.report
        if report.covered_from is not None and stored_heads is not None:
            for customer in sorted(set(stored_heads) | set(self.computed)):
                got, want = stored_heads.get(customer), self.computed.get(customer)
                if got != want:
                    position = (want or got or (0, b""))[0]
                    report.add(Problem(position, customer, None, None,
                                       f"journey_chain_heads says {_show(got)}, the recomputed chain ends "
                                       f"at {_show(want)}"))
        if report.covered_from is None and stored_heads:
            report.add(Problem(0, None, None, None, "chain heads exist but the chain's start is missing"))
        report.customers = len(self.computed)
        report.heads = dict(self.computed)
        return report

    def _compare(self, cp: Checkpoint) -> None:
        found = 0
        if cp.covered_from != self.report.covered_from:
            self.report.add(Problem(cp.position, None, None, None,
                                    f"checkpoint says the chain starts at {cp.covered_from}, the store "
                                    f"says {self.report.covered_from}"))
        for customer in sorted(set(cp.heads) | set(self.computed)):
            want, got = cp.heads.get(customer), self.computed.get(customer)
            if want == got:
                continue
            found += 1
            if want is None:
                assert got is not None
                what = (f"event at position {got[0]} is not in the checkpoint taken at {cp.position}: "
                        "inserted later at an old position")
                position = got[0]
            elif got is None or got[0] != want[0]:
                what = (f"checkpoint at {cp.position}: the customer's last event was at position "
                        f"{want[0]}, the store now has it at {got[0] if got else 'none'}: "
                        "events deleted or moved")
                position = want[0]
            else:
                what = (f"checkpoint at {cp.position}: head at position {want[0]} was {want[1].hex()[:16]}, "
                        f"recomputed {got[1].hex()[:16]}: an event of this customer at or before "
                        f"position {want[0]} was changed (and its links rewritten to match)")
                position = want[0]
            self.report.add(Problem(position, customer, None, None, what))
        self.report.checkpoints.append({"position": cp.position, "taken_at": cp.taken_at,
                                        "customers": len(cp.heads), "matches": found == 0,
                                        "differences": found})


def _show(head: tuple[int, bytes] | None) -> str:
    return "nothing" if head is None else f"position {head[0]} {head[1].hex()[:16]}"


def verify_store(recorder: Any, checkpoints: Sequence[Checkpoint] = (),
                 on_progress: Callable[[Report], None] | None = None, batch: int = 5000) -> Report:
    import time

    started = time.monotonic()
    reader = StoreReader(recorder)
    verifier = Verifier(reader.fact_owners(), reader.start(), checkpoints)
    for rows in reader.scan(batch):
        verifier.feed(rows)
        verifier.report.seconds = time.monotonic() - started
        if on_progress is not None:
            on_progress(verifier.report)
    verifier.add_orphans(reader.orphan_links())
    report = verifier.finish(reader.stored_heads())
    report.seconds = time.monotonic() - started
    return report


def checkpoint_of(report: Report) -> Checkpoint:
    """The heads of an intact, just-verified store as a checkpoint at its head."""
    return Checkpoint(report.head, report.covered_from, datetime.now(UTC).isoformat(timespec="seconds"),
                      dict(report.heads))


# -- Kafka -----------------------------------------------------------------------------------------
#
# journey.events carried the decoded fact (format 1 of consumers/wire.py), not the stored bytes,
# so a message alone could not be hashed; format 2 carries the stored state, but as part of a
# larger value. A relay with ``chain=True`` adds four headers to every message:
# chain_customer (hex), chain_prev and chain_hash (hex) and chain_state (the stored bytes).
# verify_messages recomputes every link from them, checks each customer's continuity, checks that
# the value says what the stored bytes say, and compares the heads with a checkpoint.

Headers = list[tuple[str, bytes]]


def kafka_headers(recorder: Any, first: int, last: int) -> dict[int, Headers]:
    """The chain headers of every chained event with first <= position <= last."""
    reader = StoreReader(recorder)
    rows = reader._rows(
        f"SELECT c.position, {reader._customer}, c.prev_hash, c.hash, s.state FROM {reader._links} c "
        f"JOIN {reader._events} s ON s.{reader._pos} = c.position WHERE c.position BETWEEN ? AND ?"
        f"{reader._linked}",
        (first, last))
    return {int(p): [("chain_customer", _uuid_hex(c).encode()), ("chain_prev", bytes(ph).hex().encode()),
                     ("chain_hash", bytes(h).hex().encode()), ("chain_state", bytes(s))]
            for p, c, ph, h, s in rows}


def _message_parts(message: Any) -> tuple[bytes, Headers]:
    if isinstance(message, tuple):
        return message[1], list(message[2])
    return message.value, list(message.headers)


def verify_messages(messages: Iterable[Any], checkpoint: Checkpoint | None = None) -> Report:
    """Check messages of journey.events (kafka-python records, or (key, value, headers) tuples)
    published by a relay with chain headers. Redeliveries (the same position twice) must be
    identical. A customer's first message must start its chain (prev = zeros) unless the
    messages start after the chain did; with a checkpoint, every head it lists must be a message
    whose recomputed hash matches. (A customer whose first message does not start at zeros is
    accepted: the messages may begin after the chain did.)"""
    report = Report()
    by_position: dict[int, tuple[bytes, dict[str, bytes]]] = {}
    for message in messages:
        value, headers = _message_parts(message)
        h = dict(headers)
        try:
            position = int(h["position"])
        except (KeyError, ValueError):
            report.add(Problem(0, None, None, None, "message without a readable position header"))
            continue
        if position in by_position and by_position[position] != (value, h):
            report.add(Problem(position, None, None, None, "two different messages for one position"))
        by_position[position] = (value, h)
    last: dict[str, bytes] = {}
    computed: dict[str, tuple[int, bytes]] = {}
    for position in sorted(by_position):
        value, h = by_position[position]
        report.events += 1
        report.head = position
        stream = h.get("stream_id", b"").decode(errors="replace")
        try:
            customer = h["chain_customer"].decode()
            prev = bytes.fromhex(h["chain_prev"].decode())
            digest = bytes.fromhex(h["chain_hash"].decode())
            state = h["chain_state"]
            version = int(h["customer_version"])
            stream_id = UUID(stream)
        except (KeyError, ValueError):
            report.add(Problem(position, None, stream, None, "message without chain headers"))
            continue
        report.chained += 1

        def bad(what: str) -> None:
            report.add(Problem(position, customer, stream_id.hex, version, what))  # noqa: B023

        recomputed = link_hash(prev, stream_id, version, state)
        if recomputed != digest:
            bad("chain_hash differs from the hash of the message's stored bytes")
        elif customer in last and prev != last[customer]:
            bad("chain_prev is not the hash of the customer's previous message: a message is missing "
                "or out of order")
        last[customer] = digest
        computed[customer] = (position, recomputed)
        problem = _value_differs(value, state, position, stream_id, version)
        if problem:
            bad(problem)
    if checkpoint is not None:
        for customer, (position, digest) in sorted(checkpoint.heads.items()):
            if position not in by_position:
                report.add(Problem(position, customer, None, None,
                                   f"checkpoint head at position {position} has no message"))
                continue
            h = by_position[position][1]
            try:
                prev = bytes.fromhex(h["chain_prev"].decode())
                got = link_hash(prev, UUID(h["stream_id"].decode()), int(h["customer_version"]),
                                h["chain_state"])
            except (KeyError, ValueError):
                continue  # already reported
            if got != digest:
                report.add(Problem(position, customer, None, None,
                                   f"checkpoint head at position {position} differs from the message"))
    report.customers = len(computed)
    report.heads = computed
    return report


def _same_fact(published: dict[str, Any], stored: dict[str, Any]) -> bool:
    """The relay publishes facts as stored (personal part sealed); a fact published decrypted
    (by an older relay) is compared by its public part (see ledger/crypto_mapper.py)."""
    from domain import personal

    if published == stored or personal.ENVELOPE not in stored:
        return published == stored
    public, _ = personal.split(published)
    public.pop("erased", None)
    return public == {k: v for k, v in stored.items() if k != personal.ENVELOPE}


def _value_differs(value: bytes, state: bytes, position: int, stream_id: UUID, version: int) -> str | None:
    """What the message value says that its stored bytes (or headers) do not, if anything.

    Format 2 values (consumers/wire.py) carry a state: the stored one spliced in, or for an
    event the relay had to decode, its timestamp and fact re-encoded; both are compared by the
    timestamp and the fact, which is what consumers read."""
    try:
        doc = orjson.loads(value)
        stored = orjson.loads(state)
        if "state" in doc:
            fields = {"v", "position", "stream_id", "stream_version", "state"}
            fact, recorded_at = doc["state"]["fact"], doc["state"]["timestamp"]
        else:
            fields = {"position", "event_id", "customer_id", "stream_id", "stream_version",
                      "recorded_at", "fact"}
            fact, recorded_at = doc["fact"], doc["recorded_at"]
            if doc["customer_id"] != fact["customer_uuid"] or doc["event_id"] != fact["event_id"]:
                return "the value's customer_id or event_id differs from its fact"
        if not _same_fact(fact, stored["fact"]):
            return "the value's fact differs from the stored event"
        if datetime.fromisoformat(recorded_at) != datetime.fromisoformat(stored["timestamp"]):
            return "the value's recorded_at differs from the stored event"
        if (int(doc["position"]), UUID(doc["stream_id"]), int(doc["stream_version"])) != \
                (position, stream_id, version):
            return "the value's position, stream or version differs from the headers"
        if set(doc) != fields:
            return "the value has unexpected fields"
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        return f"the value cannot be read as an event ({type(error).__name__})"
    return None
