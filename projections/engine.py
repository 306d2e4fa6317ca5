"""The set-based projection engine: facts become ``events`` rows; derived tables follow the rows.

One engine for the three drivers (the embedded follower, ``journey replay rebuild``, the Kafka
projector). A chunk of facts arrives prepared (projections/preparing.py: decoded, checked, one
row each, in an Arrow table, possibly by another process); what only the log's order decides
happens here: each row's owner, as of its place after the merges and unmerges before it. Rows
go to DuckDB a chunk at a time. Record moves are statements over rows: a merge gives the
absorbed record's rows to the survivor, an unmerge gives them back (the event store says which
facts were the absorbed record's), a forget empties the personal columns. When the transaction ends, every
derived table is recomputed for the customers it touched, from their rows
(projections/derive.py), so the result depends only on the set of rows, never on the order
or the batches they came in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from domain import catalogue
from ledger.application import StoredFact, record_history
from projections import derive, preparing, quarantine, readable
from projections.preparing import Held, Prepared
from projections.rules import Rules
from projections.tables import over

_FIELDS = ('{"event_id":"VARCHAR","type":"VARCHAR","v":"INTEGER","occurred_at":"VARCHAR",'
           '"source":"VARCHAR","id":"VARCHAR","department":"VARCHAR","agent":"VARCHAR",'
           '"erased":"BOOLEAN","customer":"JSON","data":"JSON"}')
#: The channel of a type that has one (domain/catalogue.py), else the fact's data says it.
_TYPE_CHANNELS = ", ".join(f"('{name}', '{spec.channel}')" for name, spec in catalogue.TYPES.items()
                           if spec.channel is not None)
_INSERT = f"""
    INSERT INTO events
    SELECT position, f.event_id, customer_id, stream_id, stream_version, f.type, coalesce(f.v, 1),
           occurred, f.occurred_at, recorded, f.source, f.id, f.department, f.agent,
           coalesce(typed.channel,
                    CASE WHEN json_type(f.data, '$.channel') = 'VARCHAR' THEN f.data->>'$.channel' END,
                    CASE WHEN json_type(f.data, '$.channels') = 'VARCHAR' AND f.data->>'$.channels' = 'all'
                         THEN 'any'
                         WHEN json_type(f.data, '$.channels') = 'ARRAY'
                              AND json_array_length(f.data, '$.channels') = 1
                         THEN f.data->>'$.channels[0]' END),
           f.data->>'$.purpose', f.data->>'$.campaign', f.data->>'$.case_id',
           (epoch_us(recorded) - epoch_us(occurred)) / 1000000.0, copied,
           CASE WHEN f.erased THEN NULL ELSE f.customer END, coalesce(f.data, '{{}}')
    FROM (SELECT position, customer_id, stream_id, stream_version, copied,
                 recorded_at::TIMESTAMPTZ AS recorded,
                 coalesce(occurred_utc, json_extract_string(fact, '$.occurred_at'))::TIMESTAMPTZ AS occurred,
                 json_transform(fact, '{_FIELDS}') AS f
          FROM arrow_batch)
    LEFT JOIN (VALUES {_TYPE_CHANNELS}) AS typed(type, channel) ON typed.type = f.type"""
_QUARANTINE_SCHEMA = pa.schema([
    ("position", pa.int64()), ("reader", pa.string()), ("event_id", pa.string()),
    ("originator", pa.string()), ("customer_id", pa.string()), ("type", pa.string()),
    ("reason", pa.string()),
])


@dataclass(frozen=True, slots=True)
class _Chunk:
    """A chunk's rows and record moves, as they are handed to the writing."""

    parts: list[tuple[Prepared, list[str]]]  # prepared rows and each row's owner
    moves: list[tuple[Any, ...]]
    forgotten: set[str]
    aliases_before: dict[str, str]
    aliases_after: dict[str, str]


class Batch:
    """One transaction's worth of facts: rows written chunk by chunk, derived rows at the end."""

    def __init__(self, con: duckdb.DuckDBPyConnection, aliases: dict[str, str], reader: str,
                 rules: Rules, history: Callable[[str], list[StoredFact]] | None,
                 pipelined: bool = False) -> None:
        """``aliases``: the store's record -> survivor map, changed in place as merges and
        unmerges come (the store reloads it after a rollback). ``reader``: the name the
        quarantine entries give. ``rules``: what the derived rows apply."""
        self.con = con
        self.rules = rules
        self.reader = reader
        self.history = history
        self.aliases = aliases
        #: The chunk's prepared rows with each row's owner, and the owners of the chunk.
        self.parts: list[tuple[Prepared, list[str]]] = []
        self.owners: set[str] = set()
        #: The positions of the chunk being owned (a borrow skips them: they are written anyway).
        self.current: set[int] = set()
        #: Record moves of the chunk, in log order: ("merge", absorbed, survivor, position) or
        #: ("split", absorbed, members, event ids of the absorbed records' facts).
        self.moves: list[tuple[Any, ...]] = []
        #: Customers whose derived rows the transaction's end recomputes.
        self.touched: set[str] = set()
        #: Customers forgotten in the chunk.
        self.forgotten: set[str] = set()
        #: Somebody was forgotten in this transaction (the file is compacted afterwards).
        self.forgotten_any = False
        #: One partition's file (Kafka): a merged record whose rows live in another file is
        #: read from the store; a record split off again is dropped here (its own partition's
        #: file has it).
        self.partitioned = False
        #: Positions to quarantine whatever the checks say (they failed on their own).
        self.refuse: Mapping[int, str] = {}
        #: Facts applied (not redeliveries) and quarantined in this transaction.
        self.applied = 0
        self.held = 0
        #: record -> the aliases that (may) point at it: a merge moves them without scanning
        #: every alias. Entries may be stale: the aliases dict is checked before one is moved.
        self.pointing: dict[str, list[str]] | None = None
        #: The thread that writes a chunk while the next one is prepared (None: write inline).
        self.pipeline = ThreadPoolExecutor(1, thread_name_prefix="journey-rows") if pipelined else None
        self.pending: Future[None] | None = None
        #: Owner changes of rows already written, not applied yet: the rows that say a key are
        #: the value's. A chunk's merges add to it instead of updating the table (each UPDATE
        #: scanned every row); it is applied once, before anything reads the rows' owners.
        self.deferred: dict[str, str] = {}
        #: The customers with a tombstone (read when first needed, on the writing thread).
        self.tombstoned: set[str] | None = None

    # ------------------------------------------------------------------------ per chunk

    def unseen(self, facts: Sequence[StoredFact]) -> list[StoredFact]:
        """The facts whose store position this file holds no row of yet (Kafka redelivers)."""
        present = self._present([sf.position for sf in facts])
        return [sf for sf in facts if sf.position not in present]

    def _present(self, positions: Sequence[int]) -> set[int]:
        """Which of these store positions this file holds a row of."""
        if not positions:
            return set()
        self.drain()
        return {int(r[0]) for r in self.con.execute(
            "SELECT position FROM events WHERE position BETWEEN ? AND ? "
            "AND position IN (SELECT unnest(?::BIGINT[]))",
            [min(positions), max(positions), positions]).fetchall()}

    def unseen_prepared(self, prepared: Prepared) -> Prepared:
        """:meth:`unseen` for a prepared chunk."""
        return prepared.without(self._present([*prepared.positions, *(h.position for h in prepared.held)]))

    def add(self, chunk: Sequence[StoredFact]) -> None:
        """Write a chunk's rows and record moves; quarantine what the readers cannot handle."""
        self.add_prepared(preparing.prepare(chunk, self.refuse))

    def add_prepared(self, prepared: Prepared) -> None:
        """Write a prepared chunk (projections/preparing.py): each row gets its owner, in log
        order, and the record moves the chunk's markers make.

        With a pipeline, the writing runs on its own thread while the caller reads and prepares
        the next chunk: DuckDB works outside the interpreter's lock, so the two use both
        cores. The writes stay in order on the one connection and transaction."""
        before = dict(self.aliases)
        self.current = set(prepared.positions)
        owners = self._own(prepared)
        self.parts.append((prepared, owners))
        self.applied += len(prepared.positions)
        entries = self._entries(prepared.held)
        # A record known only by quarantined facts still has its customers row and identity.
        self.touched.update(e.customer_id for e in entries if e.customer_id is not None)
        chunk = _Chunk(self.parts, self.moves, self.forgotten, before, dict(self.aliases))
        self.parts, self.owners, self.moves, self.forgotten = [], set(), [], set()
        self._submit(entries, chunk)

    def _own(self, prepared: Prepared) -> list[str]:
        """Each row's owner: its record's survivor as of its place in the log. A marker moves
        records as it comes, so the rows after it see the move."""
        aliases = self.aliases
        records, positions = prepared.records, prepared.positions
        owners: list[str] = []
        start = 0
        for index, kind, named in (*prepared.marks, (len(records), "", None)):
            segment = [aliases.get(r, r) for r in records[start:index]]
            owners.extend(segment)
            self.owners.update(segment)
            self.touched.update(segment)
            if index == len(records):
                break
            record = records[index]
            owner = aliases.get(record, record)
            self.touched.add(owner)
            if kind == "customer.merged":
                self._merge(str(named), owner, positions[index])
            elif kind == "customer.unmerged":
                self._split(owner, str(named), positions[index])
            else:
                self.forgotten.add(owner)
                self.forgotten_any = True
            self.owners.add(owner)
            owners.append(owner)
            start = index + 1
        return owners

    def _submit(self, entries: list[quarantine.Entry], chunk: _Chunk) -> None:
        if self.pipeline is None:
            self._write(entries, chunk)
            return
        self.drain()
        self.pending = self.pipeline.submit(self._write, entries, chunk)

    def drain(self) -> None:
        """Wait for the chunk being written (and raise what it raised)."""
        pending, self.pending = self.pending, None
        if pending is not None:
            pending.result()

    def close(self) -> None:
        """Stop the pipeline, after the chunk being written (its error, if any, is the caller's
        to see through :meth:`drain`: this only makes sure nothing still uses the connection)."""
        if self.pipeline is not None:
            self.pipeline.shutdown(wait=True)
            self.pipeline = None

    def _write(self, entries: list[quarantine.Entry], chunk: _Chunk) -> None:
        if entries:
            over(self.con, "INSERT OR IGNORE INTO quarantine SELECT *, now() FROM arrow_batch",
                 pa.Table.from_pylist([e.to_json() for e in entries], schema=_QUARANTINE_SCHEMA))
        if chunk.parts:
            self._flush(chunk)

    def _entries(self, held: Sequence[Held]) -> list[quarantine.Entry]:
        """The quarantine entries of the held facts, naming each one's owner as of now."""
        self.held += len(held)
        aliases = self.aliases
        return [quarantine.Entry(position=h.position, reader=self.reader, event_id=h.event_id,
                                 originator=h.originator, type=h.type, reason=h.reason,
                                 customer_id=None if h.record is None else aliases.get(h.record, h.record))
                for h in held]

    def _pointing(self) -> dict[str, list[str]]:
        if self.pointing is None:
            self.pointing = {}
            for alias, target in self.aliases.items():
                self.pointing.setdefault(target, []).append(alias)
        return self.pointing

    def _merge(self, absorbed: str, survivor: str, position: int) -> None:
        if self.partitioned and self.history is not None and not self._local(absorbed):
            self._borrow(absorbed)
        aliases = self.aliases
        pointing = self._pointing()
        for alias in pointing.pop(absorbed, ()):
            if aliases.get(alias) == absorbed:
                aliases[alias] = survivor
                pointing.setdefault(survivor, []).append(alias)
        aliases[absorbed] = survivor
        pointing.setdefault(survivor, []).append(absorbed)
        self.moves.append(("merge", absorbed, survivor, position))
        self.touched.add(absorbed)

    def _split(self, survivor: str, absorbed: str, position: int) -> None:
        """The absorbed record, and the records merged into it, are people of their own again:
        the facts of theirs before the unmerge (the event store says which) go back to them."""
        if self.history is None:
            raise RuntimeError("customer.unmerged needs the event store (ProjectionStore.history)")
        gathered = record_history(self.history, absorbed,
                                  lambda sf: sf.position < position and readable.problem(sf) is None)
        members = gathered.members
        aliases = self.aliases
        for member in members:
            if member == absorbed:
                aliases.pop(member, None)
            else:
                aliases[member] = absorbed
        self.pointing = None  # rare: rebuilt from the aliases when next needed
        self.moves.append(("split", absorbed, members, {sf.fact["event_id"] for sf in gathered.facts}))
        self.touched.update(members)
        self.touched.add(survivor)

    def _local(self, record: str) -> bool:
        """Does this file hold rows of the record (written, or in this chunk)?"""
        if record in self.owners:
            return True
        self.drain()
        self.settle()
        return bool(self.con.execute("SELECT 1 FROM events WHERE customer_id = ? LIMIT 1",
                                     [record]).fetchall())

    def _borrow(self, record: str) -> None:
        """Rows for a record whose facts were keyed to another partition: read from the store,
        the source of truth, so that the survivor's view here holds them."""
        assert self.history is not None
        present = self.current | {p for part, _ in self.parts for p in part.positions}
        borrowed = self.unseen([sf for sf in self.history(record)
                                if sf.position not in present and readable.problem(sf) is None])
        if borrowed:
            part = preparing.prepare(borrowed, copied=True)
            self.parts.append((part, self._own(part)))

    def _flush(self, chunk: _Chunk) -> None:
        con = self.con
        owners = [owner for _, part_owners in chunk.parts for owner in part_owners]
        moves = chunk.moves
        if chunk.forgotten or any(move[0] != "merge" for move in moves):
            self.settle()  # an unmerge or a forget works on the rows' true owners
        if moves and all(move[0] == "merge" for move in moves):
            self._merge_rows(owners, [p for part, _ in chunk.parts for p in part.positions], chunk)
            moves = []
        if owners:
            tables = [part.table for part, _ in chunk.parts if part.positions]
            table = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
            over(con, _INSERT, table.set_column(1, "customer_id", pa.array(owners, pa.string())))
        for move in moves:
            if move[0] == "merge":
                _, alias, survivor, at = move
                # Only rows from before the merge: a later unmerge in this chunk gave the record
                # its own rows back, and those must stay its own.
                con.execute("UPDATE events SET customer_id = ? WHERE customer_id = ? AND position < ?",
                            [survivor, alias, at])
                con.execute("UPDATE customer_aliases SET customer_id = ? WHERE customer_id = ?",
                            [survivor, alias])
                con.execute("INSERT INTO customer_aliases VALUES (?, ?)", [alias, survivor])
                continue
            _, absorbed, members, event_ids = move
            over(con, "UPDATE events SET customer_id = ? WHERE event_id IN "
                 "(SELECT event_id FROM arrow_batch)",
                 pa.Table.from_pydict({"event_id": sorted(event_ids)}), [absorbed])
            con.execute("DELETE FROM customer_aliases WHERE alias = ?", [absorbed])
            for member in sorted(members - {absorbed}):
                con.execute("UPDATE customer_aliases SET customer_id = ? WHERE alias = ?", [absorbed, member])
            if self.partitioned:
                con.execute("DELETE FROM events WHERE customer_id = ?", [absorbed])
        if chunk.forgotten:
            derive.remember_forgotten(con, sorted(chunk.forgotten))
            self.tombstoned = None  # read again: the forgotten have tombstones now
        self._blank(set(owners) | chunk.forgotten)

    def _blank(self, owners: set[str]) -> None:
        """Nothing personal in the rows of a forgotten customer, whenever their facts come in.
        The forgotten are few: the statement (a scan of the rows) runs only when one of them
        owns rows here."""
        if self.tombstoned is None:
            self.tombstoned = {r[0] for r in
                               self.con.execute("SELECT customer_id FROM tombstones").fetchall()}
        owners = owners & self.tombstoned
        if not owners:
            return
        self.con.execute("UPDATE events SET ref = NULL, data = NULL, source_id = event_id "
                         "WHERE customer_id IN (SELECT customer_id FROM tombstones WHERE customer_id IN "
                         "(SELECT unnest(?::VARCHAR[]))) AND (ref IS NOT NULL OR data IS NOT NULL "
                         "OR source_id <> event_id)", [sorted(owners)])

    def _merge_rows(self, owners: list[str], positions: list[int], chunk: _Chunk) -> None:
        """The chunk's merges, set-based: the chunk's own rows change owner in memory (``owners``,
        in the order of ``positions``), the rows already written in one UPDATE (one per merge
        scanned the whole table each time)."""
        by_owner: dict[str, list[int]] = {}
        for i, owner in enumerate(owners):
            by_owner.setdefault(owner, []).append(i)
        moved: dict[str, str] = {}  # owner before this chunk -> owner after its merges
        for _, absorbed, survivor, at in chunk.moves:
            for old, new in moved.items():
                if new == absorbed:
                    moved[old] = survivor
            moved.setdefault(absorbed, survivor)
            mine = by_owner.pop(absorbed, [])
            stay = [i for i in mine if positions[i] >= at]
            if stay:
                by_owner[absorbed] = stay
            for i in mine:
                if positions[i] < at:
                    owners[i] = survivor
                    by_owner.setdefault(survivor, []).append(i)
        con = self.con
        changes = {old: new for old, new in moved.items() if old != new}
        if changes:
            deferred = {said: changes.get(owner, owner) for said, owner in self.deferred.items()}
            for old, new in changes.items():
                deferred.setdefault(old, new)
            self.deferred = {said: owner for said, owner in deferred.items() if said != owner}
        aliases, aliases_before = chunk.aliases_after, chunk.aliases_before
        changed = {a: c for a, c in aliases.items() if aliases_before.get(a) != c}
        gone = [a for a in aliases_before if a not in aliases]
        if changed or gone:
            over(con, "DELETE FROM customer_aliases WHERE alias IN (SELECT alias FROM arrow_batch)",
                 pa.Table.from_pydict({"alias": [*changed, *gone]}))
            over(con, "INSERT INTO customer_aliases SELECT alias, customer_id FROM arrow_batch",
                 pa.Table.from_pydict({"alias": list(changed), "customer_id": list(changed.values())}))

    # ------------------------------------------------------------------------ at the end

    def settle(self) -> None:
        """Apply the deferred owner changes to the rows (on the writing thread, or drained)."""
        if self.deferred:
            over(self.con, "UPDATE events SET customer_id = arrow_batch.new FROM arrow_batch "
                 "WHERE events.customer_id = arrow_batch.old",
                 pa.Table.from_pydict({"old": list(self.deferred), "new": list(self.deferred.values())}))
            self._blank(set(self.deferred.values()))  # a record merged into a forgotten one
            self.deferred = {}

    def finish(self) -> None:
        """Recompute what is derived from the rows, for every customer this transaction touched."""
        self.drain()
        self.close()
        self.settle()
        if self.touched:
            derive.refresh(self.con, self.rules, sorted(self.touched))
