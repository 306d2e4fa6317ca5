"""What the projection does per fact without knowing the log's order, and where it runs.

Most of a fact's projection cost does not depend on what came before it: decoding the stored
row, the readability checks (projections/readable.py), the upcast, the fact as JSON, its
instants. Only its owner does (a merge earlier in the log moves a record's facts to the
survivor). :func:`prepare` does the order-free part for a chunk and hands back an Arrow table
in the engine's row layout, each row naming its stream's record, and the few facts the owner
step must look at (merges, unmerges, forgets) and those the readers cannot handle.

A long catch-up runs :func:`prepare` in worker processes (:class:`Preparer`), so the decode
and the checks use the second core while the main process reads the store, assigns owners and
writes DuckDB. A worker never touches the store: the main process finds the records a chunk's
rows name, looks their keys up (its key ring, as the single-process decode does) and sends
them with the rows. A chunk the worker cannot decode with those keys alone (a row that is not
the transcoder's JSON, a record named in another spelling) comes back as None and is decoded
in the main process, where the quarantine recognises what is wrong with it.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
from collections.abc import Collection, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from queue import SimpleQueue
from typing import Any

import orjson
import pyarrow as pa

from domain import catalogue
from ledger.decoding import Keys, Row, StoredFact, decode_states
from projections import readable

log = logging.getLogger(__name__)

#: What the engine hands DuckDB per fact (projections/engine.py's insert reads these columns):
#: the fact itself as JSON, and where it sits. ``customer_id`` is the stream's record here; the
#: engine sets each row's owner before it writes.
ROW_COLUMNS = ("position", "customer_id", "stream_id", "stream_version", "recorded_at",
               "occurred_utc", "fact", "copied")
ROW_SCHEMA = pa.schema([
    ("position", pa.int64()), ("customer_id", pa.string()), ("stream_id", pa.string()),
    ("stream_version", pa.int32()), ("recorded_at", pa.string()), ("occurred_utc", pa.string()),
    ("fact", pa.string()), ("copied", pa.bool_()),
])
#: Facts whose owner step does more than look the record's survivor up.
MARKERS = frozenset({"customer.merged", "customer.unmerged", "customer.forgotten"})
#: An instant DuckDB reads as Python does; any other spelling Python accepts (a week date, no
#: seconds, the basic format, more than six decimals) is converted to UTC here first.
_PLAIN_INSTANT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:Z|[+-]\d\d:\d\d)")


#: Worker processes of a long catch-up: the cores but one (the projecting process reads the
#: store or Kafka, gives the rows their owners and drives DuckDB), and at least two. Measured
#: on two cores at 1M events: one worker left the projecting process waiting for it (slower
#: than no worker at 100k), two kept both cores busy (26,000 facts/s against 20,000 alone).
WORKERS = max(2, (os.cpu_count() or 1) - 1)
#: Facts (records, from Kafka) behind at once from which a catch-up starts them.
PARALLEL_FROM = 20_000


@dataclass(frozen=True, slots=True)
class Parallel:
    """When and with how many worker processes a catch-up prepares its facts: from
    ``from_facts`` facts (records, from Kafka) behind at once, starting a worker costs about
    half a second, which such a catch-up wins back; ``workers`` 0 prepares everything in the
    projecting process (a one-core container)."""

    workers: int = WORKERS
    from_facts: int = PARALLEL_FROM

    def wanted(self, behind: int) -> bool:
        return self.workers > 0 and behind >= self.from_facts


@dataclass(frozen=True, slots=True)
class Held:
    """A fact the readers cannot handle: what its quarantine entry says, but for its owner."""

    position: int
    reason: str
    record: str | None  # the record its envelope names readably
    event_id: str | None
    originator: str | None
    type: str | None


@dataclass(frozen=True, slots=True)
class Prepared:
    """A chunk of the log, prepared: the rows of the facts the readers can handle, in log order,
    and the facts set aside."""

    table: pa.Table  # ROW_SCHEMA; customer_id holds each row's record
    positions: list[int]
    records: list[str]
    #: (row index, type, the record named by data.from or None) of the markers, in log order.
    marks: list[tuple[int, str, str | None]]
    held: list[Held]

    @property
    def facts(self) -> int:
        return len(self.positions) + len(self.held)

    @property
    def last(self) -> int:
        """The chunk's last position (rows and held facts alike)."""
        return max(self.positions[-1] if self.positions else 0,
                   max((h.position for h in self.held), default=0))

    def without(self, gone: Collection[int]) -> Prepared:
        """The chunk without the facts at these positions (a file holds them already)."""
        if not gone:
            return self
        kept = [i for i, position in enumerate(self.positions) if position not in gone]
        index = {old: new for new, old in enumerate(kept)}
        return Prepared(self.table.take(pa.array(kept, pa.int64())),
                        [self.positions[i] for i in kept], [self.records[i] for i in kept],
                        [(index[i], kind, named) for i, kind, named in self.marks if i in index],
                        [h for h in self.held if h.position not in gone])


@dataclass(frozen=True, slots=True)
class Tracked:
    """A prepared chunk of a source with offsets of its own (a Kafka partition): the records it
    was made of, the offset of the last one, and their facts (redeliveries of facts the file
    holds are dropped when it is written)."""

    records: int
    last: int
    prepared: Prepared


def prepare(facts: Sequence[StoredFact], refuse: Mapping[int, str] | None = None,
            copied: bool | None = None) -> Prepared:
    """The order-free part of projecting ``facts`` (in log order). ``refuse``: positions set
    aside whatever the checks say (they failed on their own); ``copied``: rows borrowed from
    the store for a record whose own rows live in another file."""
    positions: list[int] = []
    records: list[str] = []
    streams: list[str] = []
    versions: list[int] = []
    recorded: list[str] = []
    occurred: list[str | None] = []
    texts: list[str] = []
    marks: list[tuple[int, str, str | None]] = []
    held: list[Held] = []
    problem, upcast, plain, dumps = readable.problem, catalogue.upcast, _PLAIN_INSTANT.fullmatch, orjson.dumps
    for sf in facts:
        reason = (refuse.get(sf.position) if refuse else None) or problem(sf)
        if reason is not None:
            fact_: Any = sf.fact if isinstance(sf.fact, dict) else {}
            event_id, kind_ = fact_.get("event_id"), fact_.get("type")
            held.append(Held(sf.position, reason, readable.customer_of(sf),
                             event_id if isinstance(event_id, str) else None,
                             str(sf.stream_id) if sf.stream_id is not None else None,
                             kind_ if isinstance(kind_, str) else None))
            continue
        fact = upcast(sf.fact)
        kind = fact["type"]
        if kind in MARKERS:
            marks.append((len(positions), kind, fact.get("data", {}).get("from")))
        at: str = fact["occurred_at"]
        positions.append(sf.position)
        records.append(fact["customer_uuid"])
        streams.append(str(sf.stream_id))
        versions.append(sf.stream_version)
        recorded.append(sf.recorded_at.isoformat())
        occurred.append(None if plain(at) else datetime.fromisoformat(at).astimezone(UTC).isoformat())
        texts.append(dumps(fact).decode())
    table = pa.Table.from_arrays([
        pa.array(positions, pa.int64()), pa.array(records, pa.string()),
        pa.array(streams, pa.string()), pa.array(versions, pa.int32()),
        pa.array(recorded, pa.string()), pa.array(occurred, pa.string()),
        pa.array(texts, pa.string()), pa.nulls(len(positions), pa.bool_()) if copied is None
        else pa.array([copied] * len(positions), pa.bool_())], schema=ROW_SCHEMA)
    return Prepared(table, positions, records, marks, held)


# ------------------------------------------------------------------------ in worker processes

_NAMED = b'"customer_uuid":"'
_FORGET = b'"customer.forgotten"'
_UUID_TEXT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def records_named(rows: Sequence[Row]) -> tuple[set[str], bool]:
    """The records the rows' states name (every ``customer_uuid`` in them: a superset of the
    keys their decode needs), and whether one of them may be a ``customer.forgotten``."""
    names: set[str] = set()
    forgets = False
    width = len(_NAMED)
    for row in rows:
        state = row[4]
        at = state.find(_NAMED)
        while at >= 0:
            at += width
            names.add(state[at:at + 36].decode("ascii", "replace"))
            at = state.find(_NAMED, at)
        if not forgets and _FORGET in state:
            forgets = True
    return {n for n in names if _UUID_TEXT.fullmatch(n)}, forgets


class _Keys:
    """The key ring a worker decodes with: exactly the keys the main process sent for the
    chunk. A record it was not sent (named in a spelling :func:`records_named` does not find)
    raises, and the chunk is decoded in the main process."""

    def __init__(self, keys: Mapping[str, bytes | None]) -> None:
        self.keys = keys

    def keys_named(self, names: Collection[str]) -> dict[str, bytes | None]:
        return {name: self.keys[name] for name in names}

    def drop_cache(self) -> None:
        """The main process looked the chunk's keys up after any forget the chunk holds."""


def prepare_rows(rows: Sequence[Row], keys: Mapping[str, bytes | None]) -> Prepared | None:
    """Decode and prepare stored rows with these keys; None when a row needs the main
    process (it cannot be decoded with the keys alone)."""
    try:
        facts = decode_states(_Keys(keys), rows)
    except Exception:  # a row's fault, or a key not sent: the main process decodes the chunk
        return None
    return prepare(facts)


def _serve(requests: Connection, replies: Connection) -> None:
    """A worker: prepare each chunk it is sent until the main process goes away."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process stops it; no traceback
    while True:
        try:
            rows, keys = requests.recv()
        except (EOFError, OSError):
            return
        try:
            reply: Any = prepare_rows(rows, keys)
        except Exception as error:  # prepare itself failed: the main process redoes the chunk
            log.debug("preparing a chunk failed: %r", error)
            reply = None
        try:
            replies.send(reply)
        except (BrokenPipeError, OSError):
            return


class Preparer:
    """Worker processes that prepare chunks of stored rows, results in submission order.

    A worker is a fresh interpreter (``python -m projections.preparing``) that inherits
    nothing but two pipes: no open store, no DuckDB threads, no main module to import again.
    Each worker gets a thread here that sends it a chunk and waits for the result, so the main
    thread goes on reading the store meanwhile. A worker whose parent dies reads the end of
    its pipe and exits; a worker that dies makes its chunk come back as None (prepared in the
    main process)."""

    def __init__(self, workers: int) -> None:
        root = str(Path(__file__).resolve().parent.parent)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [root, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))])}
        self._idle: SimpleQueue[tuple[Connection, Connection]] = SimpleQueue()
        self._processes: list[subprocess.Popen[bytes]] = []
        for _ in range(workers):
            requests_in, requests_out = os.pipe()
            replies_in, replies_out = os.pipe()
            process = subprocess.Popen(
                [sys.executable, "-m", "projections.preparing", str(requests_in), str(replies_out)],
                pass_fds=(requests_in, replies_out), stdin=subprocess.DEVNULL, env=env, cwd=root)
            os.close(requests_in)
            os.close(replies_out)
            self._processes.append(process)
            self._idle.put((Connection(requests_out, readable=False), Connection(replies_in, writable=False)))
        self._threads = ThreadPoolExecutor(workers, thread_name_prefix="journey-prepare")

    def submit(self, rows: Sequence[Row], ring: Keys) -> Future[Prepared | None]:
        """Send stored rows to a worker with the keys they need, looked up in ``ring`` (after
        dropping its cache when the rows may hold a forget, as the decode here would). A row
        too big to try is decoded in the main process (None at once), where the quarantine
        stands in for it."""
        if any(len(row[4]) > readable.MAX_FACT_BYTES * 2 for row in rows):
            skipped: Future[Prepared | None] = Future()
            skipped.set_result(None)
            return skipped
        names, forgets = records_named(rows)
        if forgets:
            ring.drop_cache()
        return self._threads.submit(self._call, rows, ring.keys_named(names))

    def _call(self, rows: Sequence[Row], keys: Mapping[str, bytes | None]) -> Prepared | None:
        pipes = self._idle.get()
        try:
            pipes[0].send((rows, keys))
            reply: Prepared | None = pipes[1].recv()
            return reply
        except Exception as error:  # a worker gone or broken: the main process prepares
            log.warning("a projection worker failed (%r); preparing its chunk here", error)
            return None
        finally:
            self._idle.put(pipes)

    def close(self) -> None:
        self._threads.shutdown(wait=True, cancel_futures=True)
        while not self._idle.empty():
            for end in self._idle.get():
                end.close()
        for process in self._processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def __enter__(self) -> Preparer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


if __name__ == "__main__":  # a worker: its classes are the module's, not __main__'s
    from projections import preparing

    preparing._serve(Connection(int(sys.argv[1]), writable=False),
                     Connection(int(sys.argv[2]), readable=False))
