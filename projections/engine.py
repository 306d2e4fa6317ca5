"""The set-based projection engine: facts become ``events`` rows; derived tables follow the rows.

One engine for the three drivers (the embedded follower, ``journey replay rebuild``, the Kafka
projector). Per fact, only what cannot wait happens in Python: the checks that keep a bad fact
from stopping the readers, and one row of typed columns. Rows go to DuckDB a chunk at a time
through Arrow. Record moves are statements over rows: a merge gives the absorbed record's rows
to the survivor, an unmerge gives them back (the event store says which facts were the
absorbed record's), a forget empties the personal columns. When the transaction ends, every
derived table is recomputed for the customers it touched, from their rows
(projections/derive.py), so the result depends only on the set of rows, never on the order
or the batches they came in.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb
import orjson
import pyarrow as pa

from domain import catalogue
from ledger.application import StoredFact, record_history
from projections import derive, quarantine, readable
from projections.rules import Rules
from projections.tables import over

MARKERS = ("customer.merged", "customer.unmerged")

#: What Python hands DuckDB per fact: the fact itself as JSON, and where it sits. DuckDB takes
#: the columns out of the JSON in bulk (one parse per fact, in C++, off the interpreter).
ROW_COLUMNS = ("position", "customer_id", "stream_id", "stream_version", "recorded_at",
               "occurred_utc", "fact", "copied")
_ROW_SCHEMA = pa.schema([
    ("position", pa.int64()), ("customer_id", pa.string()), ("stream_id", pa.string()),
    ("stream_version", pa.int32()), ("recorded_at", pa.string()), ("occurred_utc", pa.string()),
    ("fact", pa.string()), ("copied", pa.bool_()),
])
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
#: An instant DuckDB reads as Python does; any other spelling Python accepts (a week date, no
#: seconds, the basic format, more than six decimals) is converted to UTC here first.
_PLAIN_INSTANT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:Z|[+-]\d\d:\d\d)")

_QUARANTINE_SCHEMA = pa.schema([
    ("position", pa.int64()), ("reader", pa.string()), ("event_id", pa.string()),
    ("originator", pa.string()), ("customer_id", pa.string()), ("type", pa.string()),
    ("reason", pa.string()),
])


@dataclass(frozen=True, slots=True)
class _Chunk:
    """A chunk's rows and record moves, as they are handed to the writing."""

    rows: list[tuple[Any, ...]]
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
        #: The chunk's rows, one tuple per fact in ROW_COLUMNS order, and their owners.
        self.rows: list[tuple[Any, ...]] = []  # in ROW_COLUMNS order
        self.owners: set[str] = set()
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

    # ------------------------------------------------------------------------ per chunk

    def unseen(self, facts: Sequence[StoredFact]) -> list[StoredFact]:
        """The facts whose store position this file holds no row of yet (Kafka redelivers)."""
        if not facts:
            return []
        self.drain()
        positions = [sf.position for sf in facts]
        present = {int(r[0]) for r in self.con.execute(
            "SELECT position FROM events WHERE position BETWEEN ? AND ? "
            "AND position IN (SELECT unnest(?::BIGINT[]))",
            [min(positions), max(positions), positions]).fetchall()}
        return [sf for sf in facts if sf.position not in present]

    def add(self, chunk: Sequence[StoredFact]) -> None:
        """Write a chunk's rows and record moves; quarantine what the readers cannot handle.

        With a pipeline, the writing runs on its own thread while the caller reads and decodes
        the next chunk: DuckDB works outside the interpreter's lock, so the two use both
        cores. The writes stay in order on the one connection and transaction."""
        good, held = self._screen(chunk)
        before = dict(self.aliases)
        for sf in good:
            self._row(sf)
        self.applied += len(good)
        entries = self._entries(held)
        # A record known only by quarantined facts still has its customers row and identity.
        self.touched.update(e.customer_id for e in entries if e.customer_id is not None)
        chunk_rows = _Chunk(self.rows, self.moves, self.forgotten, before, dict(self.aliases))
        self.rows, self.owners, self.moves, self.forgotten = [], set(), [], set()
        self._submit(entries, chunk_rows)

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
        if chunk.rows:
            self._flush(chunk)

    def _screen(self, chunk: Sequence[StoredFact]
                ) -> tuple[list[StoredFact], list[tuple[StoredFact, str, str | None]]]:
        refuse = self.refuse
        good: list[StoredFact] = []
        held: list[tuple[StoredFact, str, str | None]] = []
        for sf in chunk:
            reason = refuse.get(sf.position) or readable.problem(sf)
            if reason is None:
                good.append(sf)
            else:
                held.append((sf, reason, readable.customer_of(sf)))
        return good, held

    def _entries(self, held: Sequence[tuple[StoredFact, str, str | None]]) -> list[quarantine.Entry]:
        """The quarantine entries of the held facts, naming each one's owner as of now."""
        self.held += len(held)
        return [quarantine.entry_of(sf, self.reader, reason,
                                    None if record is None else self.aliases.get(record, record))
                for sf, reason, record in held]

    def _pointing(self) -> dict[str, list[str]]:
        if self.pointing is None:
            self.pointing = {}
            for alias, target in self.aliases.items():
                self.pointing.setdefault(target, []).append(alias)
        return self.pointing

    def _row(self, sf: StoredFact, copied: bool | None = None) -> None:
        fact = catalogue.upcast(sf.fact)
        aliases = self.aliases
        stream_customer: str = fact["customer_uuid"]
        owner = aliases.get(stream_customer, stream_customer)
        kind = fact["type"]
        data = fact.get("data", {})
        self.touched.add(owner)
        if kind == "customer.merged":
            self._merge(data["from"], owner, sf.position)
        elif kind == "customer.unmerged":
            self._split(owner, data["from"], sf.position)
        elif kind == "customer.forgotten":
            self.forgotten.add(owner)
            self.forgotten_any = True
        occurred: str = fact["occurred_at"]
        self.owners.add(owner)
        self.rows.append((sf.position, owner, str(sf.stream_id), sf.stream_version,
                          sf.recorded_at.isoformat(),
                          None if _PLAIN_INSTANT.fullmatch(occurred)
                          else datetime.fromisoformat(occurred).astimezone(UTC).isoformat(),
                          orjson.dumps(fact).decode(), copied))

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
        return bool(self.con.execute("SELECT 1 FROM events WHERE customer_id = ? LIMIT 1",
                                     [record]).fetchall())

    def _borrow(self, record: str) -> None:
        """Rows for a record whose facts were keyed to another partition: read from the store,
        the source of truth, so that the survivor's view here holds them."""
        assert self.history is not None
        present = {row[0] for row in self.rows}
        borrowed = [sf for sf in self.history(record)
                    if sf.position not in present and readable.problem(sf) is None]
        for sf in self.unseen(borrowed):
            self._row(sf, copied=True)

    def _flush(self, chunk: _Chunk) -> None:
        con = self.con
        columns = {name: list(values)
                   for name, values in zip(ROW_COLUMNS, zip(*chunk.rows, strict=True), strict=True)}
        moves = chunk.moves
        if moves and all(move[0] == "merge" for move in moves):
            self._merge_rows(columns, chunk)
            moves = []
        over(con, _INSERT, pa.Table.from_pydict(columns, schema=_ROW_SCHEMA))
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
        # Nothing personal in the rows of a forgotten customer, whenever their facts come in.
        owners = sorted(set(columns["customer_id"]) | chunk.forgotten)
        con.execute("UPDATE events SET ref = NULL, data = NULL, source_id = event_id "
                    "WHERE customer_id IN (SELECT customer_id FROM tombstones WHERE customer_id IN "
                    "(SELECT unnest(?::VARCHAR[]))) AND (ref IS NOT NULL OR data IS NOT NULL "
                    "OR source_id <> event_id)", [owners])

    def _merge_rows(self, rows: dict[str, list[Any]], chunk: _Chunk) -> None:
        """The chunk's merges, set-based: the chunk's own rows change owner in memory, the rows
        already written in one UPDATE (one per merge scanned the whole table each time)."""
        owners = rows["customer_id"]
        positions = rows["position"]
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
            over(con, "UPDATE events SET customer_id = arrow_batch.new FROM arrow_batch "
                 "WHERE events.customer_id = arrow_batch.old",
                 pa.Table.from_pydict({"old": list(changes), "new": list(changes.values())}))
        aliases, aliases_before = chunk.aliases_after, chunk.aliases_before
        changed = {a: c for a, c in aliases.items() if aliases_before.get(a) != c}
        gone = [a for a in aliases_before if a not in aliases]
        if changed or gone:
            over(con, "DELETE FROM customer_aliases WHERE alias IN (SELECT alias FROM arrow_batch)",
                 pa.Table.from_pydict({"alias": [*changed, *gone]}))
            over(con, "INSERT INTO customer_aliases SELECT alias, customer_id FROM arrow_batch",
                 pa.Table.from_pydict({"alias": list(changed), "customer_id": list(changed.values())}))

    # ------------------------------------------------------------------------ at the end

    def finish(self) -> None:
        """Recompute what is derived from the rows, for every customer this transaction touched."""
        self.drain()
        self.close()
        if self.touched:
            derive.refresh(self.con, self.rules, sorted(self.touched))
