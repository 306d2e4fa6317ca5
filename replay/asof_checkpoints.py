"""Fold checkpoints: an as-of view of a long history that costs what lies near T, not the whole
history (docs/audit.md, "As-of views of long histories").

An as-of view folds every fact of the customer that passes the cut. For a customer with 10,000
facts that was ~200 ms at 1M stored events, most of it reading, opening and folding facts far
from T. A checkpoint of one record R, made from exactly the facts R had when it was made
(versions up to ``covered[s]`` of each stream ``s``), holds:

- for each of those facts, in (occurred, position) order: the occurred instant, the store
  position and the recorded instant, in microseconds. Public fields (a sealed fact shows them
  on Kafka too), kept in the clear;
- per axis, the fold state (``projections.customer_view``) of the facts at or before a few cuts
  along that axis, at most ``SNAPSHOTS`` of them. They hold personal data, so they are sealed
  with R's own key: forgetting R destroys the key and shreds them with everything else.

A view at T starts from the last cut at or before T and folds the covered facts between that
cut and T and the facts R received since (fewer than ``REBUILD_AFTER``; more makes a new
checkpoint first). ``customer_view`` is a fold over the SET of facts, so this is the view
folding every fact gives; ``tests/integration/test_asof_checkpoints.py`` holds the two paths to
the same documents. Only the page of the timeline asked for is read and opened.

A checkpoint is made on the first paged view of a record with at least ``MIN_FACTS`` facts,
and only for a record with nothing merged into it and not forgotten: a merge marker or a
forget among the new facts drops it (those views fold several records, or erase: the full
path does them), and such a record is listed as refused, so its later views fold every fact
without reading its history once more to find out. A checkpoint carries the hash of the
code that folds (``FOLD_VERSION``), so a release that folds differently ignores the old ones.
They live in a SQLite file next to the ledger (``asof-checkpoints.sqlite``): derived data,
deleting the file loses nothing.
"""

from __future__ import annotations

import bisect
import hashlib
import heapq
import logging
import os
import sqlite3
import threading
import weakref
import zlib
from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast
from uuid import UUID

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from domain import catalogue
from ledger.application import MERGE_MARKERS, JourneyApplication, StoredFact, record_history
from ledger.sqlite_recorder import JourneySQLiteRecorder
from projections import customer_view, readable
from projections.customer_view import View
from projections.rules import DEFAULT_RULES, Rules
from replay import asof_view, fact_reader
from replay.asof_view import AsOf, Axis, fold_into, page_of, paged, prepare

log = logging.getLogger("journey.asof")


#: Records with fewer facts are folded whole (a 1,000-fact view takes ~12 ms).
MIN_FACTS = 2_000
#: Fold states kept per axis; the covered facts between two of them are folded per view.
SNAPSHOTS = 16
#: Facts received since the checkpoint beyond which a view makes a new one first.
REBUILD_AFTER = 1_000
FILE_NAME = "asof-checkpoints.sqlite"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
_NONCE = 12
_IN_BATCH = 500


def _fold_version() -> str:
    """The hash of the code a fold state depends on (the fold, the upcasters, this module)."""
    digest = hashlib.sha256()
    for module in (customer_view, catalogue, asof_view):
        digest.update(Path(cast(str, module.__file__)).read_bytes())
    digest.update(Path(__file__).read_bytes())
    return digest.hexdigest()[:32]


FOLD_VERSION = _fold_version()


class Unavailable(Exception):
    """No checkpoint can answer this view: the caller folds every fact. ``final``: none ever
    will (a merge or a forget is in the record's history for good)."""

    def __init__(self, reason: str, final: bool = False) -> None:
        super().__init__(reason)
        self.final = final


def micros(moment: datetime) -> int:
    return (moment.astimezone(UTC) - _EPOCH) // _MICRO


@dataclass
class Checkpoint:
    customer_id: str
    #: stream id (hex) -> the last version of that stream the checkpoint covers.
    covered: dict[str, int]
    #: The covered facts in (occurred, position) order: occurred µs, position, recorded µs.
    occurred: array[int]
    positions: array[int]
    recorded: array[int]
    #: per axis: the cuts (µs, ascending) and their sealed fold states.
    cuts: dict[str, list[int]]
    sealed: dict[str, bytes]


# ------------------------------------------------------------------------- the file


class CheckpointFile:
    """The sidecar SQLite file. One connection per process, used under a lock (the API serves
    views from a thread pool)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.con = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=None)
        self.con.execute("PRAGMA journal_mode=WAL")
        self.con.execute("PRAGMA synchronous=NORMAL")
        self.con.execute(
            "CREATE TABLE IF NOT EXISTS checkpoints (customer_id TEXT PRIMARY KEY, "
            "fold_version TEXT NOT NULL, covered BLOB NOT NULL, facts BLOB NOT NULL, "
            "cuts BLOB NOT NULL, occurred_states BLOB NOT NULL, recorded_states BLOB NOT NULL)")
        # Records that will never have one: looked up so that their views do not read the
        # whole history twice (once to find the merge, once to fold) every time.
        self.con.execute("CREATE TABLE IF NOT EXISTS refused (customer_id TEXT PRIMARY KEY, "
                         "reason TEXT NOT NULL)")

    def refused(self, customer_id: str) -> bool:
        with self.lock:
            return self.con.execute("SELECT 1 FROM refused WHERE customer_id = ?",
                                    (customer_id,)).fetchone() is not None

    def refuse(self, customer_id: str, reason: str) -> None:
        with self.lock:
            self.con.execute("DELETE FROM checkpoints WHERE customer_id = ?", (customer_id,))
            self.con.execute("INSERT OR REPLACE INTO refused VALUES (?, ?)", (customer_id, reason))

    def load(self, customer_id: str) -> Checkpoint | None:
        with self.lock:
            row = self.con.execute(
                "SELECT fold_version, covered, facts, cuts, occurred_states, recorded_states "
                "FROM checkpoints WHERE customer_id = ?", (customer_id,)).fetchone()
        if row is None or row[0] != FOLD_VERSION:
            return None
        facts = array("q")
        facts.frombytes(row[2])
        n = len(facts) // 3
        return Checkpoint(customer_id, orjson.loads(row[1]), facts[:n], facts[n:2 * n], facts[2 * n:],
                          orjson.loads(row[3]), {"occurred": row[4], "recorded": row[5]})

    def save(self, cp: Checkpoint) -> None:
        facts = cp.occurred + cp.positions + cp.recorded
        with self.lock:
            self.con.execute(
                "INSERT OR REPLACE INTO checkpoints VALUES (?, ?, ?, ?, ?, ?, ?)",
                (cp.customer_id, FOLD_VERSION, orjson.dumps(cp.covered), facts.tobytes(),
                 orjson.dumps(cp.cuts), cp.sealed["occurred"], cp.sealed["recorded"]))


#: One file handle per open ledger (dropped with it).
_files: weakref.WeakKeyDictionary[JourneyApplication, CheckpointFile | None] = weakref.WeakKeyDictionary()
_files_lock = threading.Lock()


def checkpoint_file(app: JourneyApplication) -> CheckpointFile | None:
    """The checkpoint file of this ledger: next to its SQLite file; None for other stores
    (the fast reader is SQLite's) and in-memory ones."""
    with _files_lock:
        if app not in _files:
            _files[app] = _open_file(app)
        return _files[app]


def _open_file(app: JourneyApplication) -> CheckpointFile | None:
    recorder = app.recorder
    if not isinstance(recorder, JourneySQLiteRecorder) or fact_reader.reader(
            app, fact_reader.Cut("position", position=0)) is None:
        return None
    pool = recorder.datastore.pool
    if pool.is_sqlite_memory_mode or not pool.db_name:
        return None
    return CheckpointFile(Path(pool.db_name).resolve().with_name(FILE_NAME))


# ------------------------------------------------------------------------- sealing


def _seal(key: bytes, customer_id: str, axis: str, states: list[bytes]) -> bytes:
    """Each fold state compressed and sealed on its own, length-prefixed one after the other:
    a view opens the one it starts from (a record with thousands of address changes has
    states of megabytes; opening all 16 took 116 of its 195 ms)."""
    aead = AESGCM(key)
    parts = []
    for j, state in enumerate(states):
        nonce = os.urandom(_NONCE)
        sealed = nonce + aead.encrypt(nonce, zlib.compress(state, 1), _aad(customer_id, axis, j))
        parts.append(len(sealed).to_bytes(4, "big") + sealed)
    return b"".join(parts)


def _open(key: bytes, customer_id: str, axis: str, sealed: bytes, j: int) -> bytes:
    """The ``j``-th fold state of :func:`_seal`'s output, as JSON."""
    at = 0
    for _ in range(j):
        at += 4 + int.from_bytes(sealed[at:at + 4], "big")
    size = int.from_bytes(sealed[at:at + 4], "big")
    part = sealed[at + 4:at + 4 + size]
    try:
        plain = AESGCM(key).decrypt(part[:_NONCE], part[_NONCE:], _aad(customer_id, axis, j))
    except InvalidTag as error:
        raise Unavailable("the checkpoint does not open with the record's key") from error
    return zlib.decompress(plain)


def _aad(customer_id: str, axis: str, j: int) -> bytes:
    return f"{customer_id}/{axis}/{j}/{FOLD_VERSION}".encode()


# ------------------------------------------------------------------------- reading


def _count(recorder: JourneySQLiteRecorder, customer_id: str) -> int:
    with recorder.datastore.transaction(commit=False) as c:
        c.execute("SELECT COUNT(*) FROM journey_log WHERE customer_id = ?",
                  (UUID(customer_id).bytes,))
        return int(c.fetchall()[0][0])


def _uncovered(recorder: JourneySQLiteRecorder, customer_id: str, covered: dict[str, int]
               ) -> list[StoredFact]:
    """The record's facts the checkpoint does not cover (sealed), in position order: the
    record's positions from its index, each event by its rowid, filtered on the event's own
    stream and version (what the join reads anyway)."""
    table = recorder.events_table_name
    known = list(covered.items())
    where = " OR ".join(["(s.originator_id = ? AND s.originator_version > ?)"] * len(known))
    params: list[Any] = [UUID(customer_id).bytes, *[s for s, _ in known]]
    for stream, version in known:
        params += [stream, version]
    sql = (f"SELECT s.rowid, s.originator_id, s.originator_version, s.state FROM journey_log f "
           f"JOIN {table} s ON s.rowid = f.position WHERE f.customer_id = ? "
           f"AND (s.originator_id NOT IN ({','.join('?' * len(known))}){' OR ' + where if where else ''}) "
           "ORDER BY f.position")
    with recorder.datastore.transaction(commit=False) as c:
        c.execute(sql, params)
        rows = c.fetchall()
    streams: dict[str, UUID] = {}
    return [_sealed(p, streams.get(o) or streams.setdefault(o, UUID(o)), v, state) for p, o, v, state in rows]


def _at_positions(recorder: JourneySQLiteRecorder, positions: Iterable[int]) -> dict[int, StoredFact]:
    wanted = sorted(set(positions))
    found: dict[int, StoredFact] = {}
    with recorder.datastore.transaction(commit=False) as c:
        for i in range(0, len(wanted), _IN_BATCH):
            batch = wanted[i:i + _IN_BATCH]
            c.execute(f"SELECT rowid, originator_id, originator_version, state FROM "
                      f"{recorder.events_table_name} WHERE rowid IN ({','.join('?' * len(batch))})", batch)
            for position, stream, version, state in c.fetchall():
                found[position] = _sealed(position, UUID(stream), version, state)
    return found


def _sealed(position: int, stream: UUID, version: int, state: bytes) -> StoredFact:
    stored: dict[str, Any] = orjson.loads(state)
    stamp = stored["timestamp"]
    recorded = datetime.fromisoformat(stamp) if isinstance(stamp, str) else stamp
    return StoredFact(position, stream, version, recorded, stored["fact"])


def _occurred_us(sf: StoredFact) -> int:
    return micros(datetime.fromisoformat(sf.fact["occurred_at"]))


#: Why a record holding a fact the readers cannot handle is folded the full way: that way
#: leaves such facts out and lists them (a fix makes the checkpoint possible again).
_UNREADABLE = "the record holds facts the readers cannot handle"


def _disqualifies(sf: StoredFact) -> bool:
    """Facts after which a record's view is not one record's fold of its own facts."""
    kind = sf.fact["type"]
    return kind in MERGE_MARKERS or kind == "customer.forgotten"


# ------------------------------------------------------------------------- building


def build(app: JourneyApplication, customer_id: str) -> Checkpoint:
    """A checkpoint of the record's facts as they are now; raises Unavailable when the record
    cannot have one (merged records, forgotten, no key, too few facts)."""
    skipped: set[int] = set()
    read = fact_reader.reader(app, fact_reader.Cut("position", position=2**62), skipped)
    if read is None:
        raise Unavailable("not a store the fast reader reads")
    history = record_history(read, customer_id, lambda sf: True)
    if skipped:
        raise Unavailable(_UNREADABLE)
    facts = history.facts
    if history.members != {customer_id} or history.split_off or any(_disqualifies(sf) for sf in facts):
        raise Unavailable("the record has merges or was forgotten", final=True)
    if len(facts) < MIN_FACTS:
        raise Unavailable("too few facts to need one")
    key = app.keys.key_of(UUID(customer_id))
    if key is None:
        raise Unavailable("the record has no key")
    covered: dict[str, int] = {}
    for sf in facts:
        stream = sf.stream_id.hex
        covered[stream] = max(covered.get(stream, 0), sf.stream_version)
    opener = fact_reader.opener(app)
    opened = [opener(sf) for sf in facts]
    if any(readable.problem(sf) is not None for sf in opened):
        raise Unavailable(_UNREADABLE)
    prepared = prepare(opened)
    occurred = [_occurred_us(p[0]) for p in prepared]
    recorded = [micros(p[0].recorded_at) for p in prepared]
    by_occurred = sorted(range(len(prepared)), key=lambda i: (occurred[i], prepared[i][0].position))
    by_recorded = sorted(range(len(prepared)), key=lambda i: (recorded[i], prepared[i][0].position))
    cuts: dict[str, list[int]] = {}
    sealed: dict[str, bytes] = {}
    for axis, order, times in (("occurred", by_occurred, occurred), ("recorded", by_recorded, recorded)):
        spacing = max(1, -(-len(order) // SNAPSHOTS))
        view = customer_view.new_view(customer_id)
        axis_cuts: list[int] = []
        states: list[bytes] = []
        folded = 0
        for n, i in enumerate(order):
            fold_into(view, [prepared[i]])
            folded += 1
            last = n + 1 == len(order)
            if folded >= spacing and not last and times[order[n + 1]] > times[i]:
                axis_cuts.append(times[i])
                states.append(orjson.dumps(view))
                folded = 0
        cuts[axis] = axis_cuts
        sealed[axis] = _seal(key, customer_id, axis, states)
    return Checkpoint(customer_id, covered,
                      array("q", (occurred[i] for i in by_occurred)),
                      array("q", (prepared[i][0].position for i in by_occurred)),
                      array("q", (recorded[i] for i in by_occurred)), cuts, sealed)


# ------------------------------------------------------------------------- views


def paged_view(app: JourneyApplication, customer_id: str, at: datetime, axis: Axis, limit: int,
               oldest: bool = False, rules: Rules = DEFAULT_RULES) -> dict[str, Any] | None:
    """``replay.asof.document`` from the record's checkpoint (made now if it has none): the
    same document; None when no fact passes the cut. Raises Unavailable when no checkpoint can
    answer (the caller folds every fact)."""
    recorder = app.recorder
    if not isinstance(recorder, JourneySQLiteRecorder) or _count(recorder, customer_id) < MIN_FACTS:
        raise Unavailable("too few facts to need one, or not a SQLite store")
    files = checkpoint_file(app)
    if files is None:
        raise Unavailable("no checkpoint file for this store")
    if files.refused(customer_id):
        raise Unavailable("the record has merges or was forgotten", final=True)
    cp = files.load(customer_id)
    fresh: list[StoredFact] = []
    if cp is not None:
        fresh = _uncovered(recorder, customer_id, cp.covered)
        if any(_disqualifies(sf) for sf in fresh):
            files.refuse(customer_id, "merged or forgotten since its checkpoint")
            raise Unavailable("the record was merged or forgotten since its checkpoint", final=True)
    if cp is None or len(fresh) > REBUILD_AFTER:
        try:
            cp = build(app, customer_id)
        except Unavailable as error:
            if error.final:
                files.refuse(customer_id, str(error))
            raise
        files.save(cp)
        log.info("as-of checkpoint of %s: %d facts, %d + %d fold states", customer_id,
                 len(cp.positions), len(cp.cuts["occurred"]), len(cp.cuts["recorded"]))
        fresh = _uncovered(recorder, customer_id, cp.covered)
    key = app.keys.key_of(UUID(customer_id))
    if key is None:
        raise Unavailable("the record's key is gone")
    at = at.astimezone(UTC)
    t = micros(at)
    occurred, positions, recorded = cp.occurred, cp.positions, cp.recorded
    cuts = cp.cuts[axis]
    j = bisect.bisect_right(cuts, t) - 1
    base = j >= 0
    cut = cuts[j] if base else None

    # The covered facts kept (indices, in timeline order) and those to fold onto the state.
    if axis == "occurred":
        end = bisect.bisect_right(occurred, t)
        kept = list(range(end))
        start = bisect.bisect_right(occurred, cut, 0, end) if cut is not None else 0
        to_fold = [positions[i] for i in range(start, end)]
        late_positions = [positions[i] for i in kept if recorded[i] > t]
    else:
        kept = [i for i in range(len(positions)) if recorded[i] <= t]
        to_fold = [positions[i] for i in kept if cut is None or recorded[i] > cut]
        late_positions = []

    fresh_kept = [sf for sf in fresh
                  if (_occurred_us(sf) if axis == "occurred" else micros(sf.recorded_at)) <= t]
    total = len(kept) + len(fresh_kept)
    if total == 0:
        return None
    fresh_order = sorted(((_occurred_us(sf), sf.position, sf) for sf in fresh_kept),
                         key=lambda x: (x[0], x[1]))
    merged = list(heapq.merge([(occurred[i], positions[i]) for i in page_of(kept, limit, oldest)],
                              [(o, p) for o, p, _ in fresh_order]))
    page = page_of(merged, limit, oldest)
    late_positions = sorted(late_positions + [sf.position for sf in fresh_kept
                                              if axis == "occurred" and sf.recorded_at > at])
    late_page = page_of(late_positions, limit, oldest)

    by_position = {sf.position: sf for sf in fresh_kept}
    wanted = [p for p in (*to_fold, *(p for _, p in page), *late_page) if p not in by_position]
    by_position.update(_at_positions(recorder, wanted))
    opener = fact_reader.opener(app)
    opened: dict[int, StoredFact] = {}

    def fact(position: int) -> StoredFact:
        if position not in opened:
            opened[position] = opener(by_position[position])
        return opened[position]

    view = (cast(View, orjson.loads(_open(key, customer_id, axis, cp.sealed[axis], j))) if base
            else customer_view.new_view(customer_id))
    folded = [fact(p) for p in (*to_fold, *(sf.position for sf in fresh_kept))]
    if any(readable.problem(sf) is not None for sf in folded):
        raise Unavailable(_UNREADABLE)
    fold_into(view, prepare(folded))
    through = max(max((positions[i] for i in kept), default=0),
                  max((sf.position for sf in fresh_kept), default=0))
    shown = [fact(p) for _, p in page]
    late = [fact(p) for p in late_page]
    result = AsOf(customer_id, axis, at, shown,
                  late=[sf for sf in shown if axis == "occurred" and sf.recorded_at > at])
    doc = {
        **customer_view.render(view, now=at, rules=rules),
        "as_of": {"axis": axis, "at": at.isoformat(), "facts": total, "through_position": through},
        "recorded_late": [AsOf.late_entry(sf) for sf in late],
        "timeline": result.timeline(),
    }
    return paged(doc, limit, oldest, timeline_total=total, late_total=len(late_positions))
