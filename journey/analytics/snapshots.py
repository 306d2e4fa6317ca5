"""Parquet snapshots of the projections, so analysts can query while the ledger runs.

DuckDB 2 lets one process hold ``projections.duckdb`` open while it writes, and any other
process (even read-only) gets a lock error. So the process that owns the projections (``journey
serve``'s duty, or ``journey export`` when nobody runs) copies the analyst tables to Parquet,
and analysts read those files, never the live one.

Each export is a **generation**: a new directory ``DATA_DIR/analytics/generations/<name>/``
holding every table's Parquet file, ``analyst.duckdb`` (views over those files) and
``manifest.json`` (the position the rows were read at). Nothing in a generation changes once
it is written. All tables are read in ONE DuckDB transaction, so the files of a generation
agree with each other and with its position. It is then published by moving pointers, each
with :func:`os.replace` (a rename in one directory: atomic): ``current`` (a symbolic link to
the generation, for tools reading the Parquet files), ``analyst.duckdb`` (a hard link to the
generation's) and last ``manifest.json``, which names the generation. A reader that resolves
a pointer once reads one generation to the end, and what it reports (the manifest's position,
the ``snapshot`` view) is the position of the rows it reads, however many exports happen
meanwhile: a session never mixes the files of two exports.

So a reader's generation must outlive the export that supersedes it. The exporter keeps the
generation just superseded, and every older one a reader still has open: a DuckDB session on
its ``analyst.duckdb`` (DuckDB's own read lock on the file) or a ``journey sql``/``plot``
reading it (a read lock this module takes, :func:`pin`); the rest are deleted. An export after
a forget deletes every other generation, open or not: the person leaves the disk, and a
session that had one open gets "no files found" and opens ``analyst.duckdb`` again.

The snapshot carries what the event store keeps in clear (docs/privacy.md): a fact's ``data``
keeps only the fields the catalogue declares non-personal for its type, every column that
names or describes the person (and the source's own id) is left out, and so are the tables
made of nothing else (``identities``). A forgotten customer is already a
tombstone in the projection, so the next export drops what the previous one held.

The Kafka projectors' partition files are published the same way, each to a directory of its
own (``DATA_DIR/analytics/partitions/<topic>-<partition>/``, :class:`PartitionPublisher`), and
read as ONE dataset (:func:`pin_dataset`, ``partitions/analyst.duckdb``): each fact counted once
(the rows a partition copied in for a cross-partition merge are left out) and each customer
once (a record absorbed in another partition, whose own partition still holds its orphan view,
is left out: its id is an alias in some partition's ``customer_aliases``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import struct
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import duckdb
import orjson
import pyarrow.parquet as pq

from domain.personal import PERSONAL_DATA, PUBLIC_DATA
from projections.duckdb_store import connect

if TYPE_CHECKING:
    from journey.config import Settings
    from projections.duckdb_store import ProjectionStore

SUBDIR = "analytics"
MANIFEST = "manifest.json"
#: ``journey export`` writes it when another process holds the projections; :func:`tick`
#: exports and removes it.
REQUEST = "export.request"
#: Written by :func:`tick` when an export failed, so a waiting ``journey export`` can say why.
FAILED = "export.failed"
#: Written by :func:`after_forget` next to the request: the export it asks for deletes every
#: other generation, open or not (a plain request never overwrites this one).
PURGE = "export.purge"
ANALYST_DB = "analyst.duckdb"
#: The generations' directory, and the symbolic link to the current one.
GENERATIONS = "generations"
CURRENT = "current"
#: The storage format ``analyst.duckdb`` is written in: the oldest that DuckDB 1.x reads (any
#: 1.x command line, DBeaver's driver...) and that DuckDB 2 reads too. Its own default format
#: (v2.0.0) is refused by every 1.x ("version number 69, but we can only read versions between
#: 64 and ..."). The file holds only views, which need nothing newer.
ANALYST_STORAGE_VERSION = "v1.0.0"
#: The setting of the seconds between automatic exports (Settings.export_interval).
INTERVAL_ENV = "JOURNEY_EXPORT_INTERVAL"
DEFAULT_INTERVAL = 60.0

#: Tables analysts never get, and why (also written to the manifest).
NOT_EXPORTED: dict[str, str] = {
    "customer_views": "bookkeeping: which customers the projection holds, up to which position",
    "tombstones": "the counts kept of forgotten customers: the customers table shows them",
    "identities": "identity keys: phone numbers, e-mails, handles, national ids",
    "projection_position": "bookkeeping: the manifest's position says the same",
}

#: Column names that hold personal data in any projection table: the data fields the store
#: encrypts, the reference kinds (a customer number names the person), the address parts, and
#: national-id and bank fields that sources may send as extra data.
PERSONAL_COLUMNS = frozenset(PERSONAL_DATA | {
    "customer_number", "ref", "source_id", "view", "street", "number", "postal_code", "city",
    "national_id", "dni", "nie", "nif", "passport", "loyalty_card", "card", "card_number",
    "iban", "bank", "bank_account", "account_number", "swift", "bic",
})
#: Suffixes of personal columns (``reply_text``, ``yes_text``, ``customer_name``...).
PERSONAL_SUFFIXES = ("_text", "_name", "_phone", "_email", "_handle", "_reason", "_subject",
                     "_issue", "_address", "_iban", "_national_id")

#: Touchpoints between the company and the person on a contact channel: the analyst view
#: ``contacts`` and the base plot count these. Direction: who started the contact.
CONTACT_DIRECTIONS: dict[str, str] = {
    "call.outbound": "outbound", "email.sent": "outbound", "sms.sent": "outbound",
    "letter.sent": "outbound", "social.reply": "outbound",
    "call.inbound": "inbound", "email.received": "inbound", "store.visit": "inbound",
    "social.mention": "inbound",
}


class Holder(Protocol):
    """What the exporter needs of the process's open ledger (``journey.bootstrap.Journey`` is
    one): named here, so that this module does not import the layers above it."""

    @property
    def settings(self) -> Settings: ...

    @property
    def projections(self) -> ProjectionStore: ...

    def project(self) -> int:
        """Bring the projections up to the store's head."""
        ...


def is_personal(column: str) -> bool:
    name = column.lower()
    return name in PERSONAL_COLUMNS or name.endswith(PERSONAL_SUFFIXES)


class NoSnapshot(Exception):
    """Nothing has been exported to this directory yet."""


class ExportFailed(Exception):
    """The process holding the projections tried to export and failed."""


@dataclass(frozen=True, slots=True)
class Export:
    """One published snapshot (a generation), as its manifest describes it.

    ``directory`` is the analytics directory; the files are in :attr:`location`.
    """

    directory: Path
    generation: str
    position: int
    started_at: float
    exported_at: float
    seconds: float
    rows: dict[str, int]
    dropped: dict[str, list[str]] = field(default_factory=dict)
    cursors: dict[str, int] = field(default_factory=dict)
    #: JSON columns per table: Parquet holds them as text (a string column for every reader,
    #: where DuckDB's JSON type reads as bytes elsewhere); the analyst views make them JSON again.
    json_columns: dict[str, list[str]] = field(default_factory=dict)

    @property
    def location(self) -> Path:
        """The generation's directory: its Parquet files, ``analyst.duckdb`` and manifest."""
        return self.directory / GENERATIONS / self.generation

    def manifest(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "generation": f"{GENERATIONS}/{self.generation}",
            "cursors": self.cursors,
            "started_at": _iso(self.started_at),
            "exported_at": _iso(self.exported_at),
            "started_epoch": self.started_at,
            "exported_epoch": self.exported_at,
            "seconds": round(self.seconds, 3),
            "tables": {t: {"file": f"{t}.parquet", "rows": n,
                           "json_columns": self.json_columns.get(t, []),
                           "personal_columns_left_out": self.dropped.get(t, [])}
                       for t, n in self.rows.items()},
            "not_exported": NOT_EXPORTED,
        }

    @classmethod
    def from_manifest(cls, directory: Path, doc: Mapping[str, Any]) -> Export:
        tables = doc.get("tables", {})
        return cls(directory=directory, generation=Path(str(doc["generation"])).name,
                   position=int(doc["position"]),
                   started_at=float(doc["started_epoch"]), exported_at=float(doc["exported_epoch"]),
                   seconds=float(doc["seconds"]),
                   rows={t: int(v["rows"]) for t, v in tables.items()},
                   dropped={t: list(v.get("personal_columns_left_out", [])) for t, v in tables.items()},
                   cursors={k: int(v) for k, v in doc.get("cursors", {}).items()},
                   json_columns={t: list(v.get("json_columns", [])) for t, v in tables.items()})


def analytics_dir(settings: Settings) -> Path:
    return settings.data_dir / SUBDIR


def _clear_copied(pointer: Path) -> None:
    """A data directory copied without its links (``cp -r``, a backup tool) holds a real
    directory where ``current`` was a link: it is a copy of a generation that is published
    anyway, so it goes, and the new link takes its place."""
    if pointer.is_dir() and not pointer.is_symlink():
        shutil.rmtree(pointer)


def read_manifest(directory: Path) -> Export | None:
    """The current snapshot of ``directory`` (its top-level manifest), None before the first."""
    try:
        doc = orjson.loads((directory / MANIFEST).read_bytes())
    except FileNotFoundError:
        return None
    if "generation" not in doc:  # files of one directory, replaced one by one: none to trust
        return None
    return Export.from_manifest(directory, doc)


# --------------------------------------------------------------------------- writing

def _quote(path: Path | str) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


#: Removes the personal keys of a JSON object (RFC 7396: a null in the patch deletes the key).
_STRIP_PATCH = orjson.dumps({k: None for k in sorted(PERSONAL_COLUMNS)}).decode()


def _projection(cur: duckdb.DuckDBPyConnection, table: str) -> tuple[str, list[str], list[str]]:
    """The SELECT that copies ``table`` without its personal columns, the columns left out,
    and the JSON columns (written as text: see :attr:`Export.json_columns`)."""
    columns = cur.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'main' AND table_name = ? ORDER BY ordinal_position", [table]).fetchall()
    kept, dropped, json = [], [], []
    typed = any(name == "type" for name, _ in columns)
    for name, kind in columns:
        if is_personal(name):
            dropped.append(name)
        elif kind == "JSON" and name == "data" and typed:
            json.append(name)
            kept.append(f"CAST({_public_data(name)} AS VARCHAR) AS {_ident(name)}")
        elif kind == "JSON":
            # Extra fields a source sent are kept by the ledger as they came: strip the
            # personal ones by name (the top level of the object, where the catalogue puts them).
            json.append(name)
            kept.append(f"CAST(CASE WHEN json_type({_ident(name)}) = 'OBJECT' "
                        f"THEN json_merge_patch({_ident(name)}, {_quote(_STRIP_PATCH)}) END AS VARCHAR) "
                        f"AS {_ident(name)}")
        else:
            kept.append(_ident(name))
    return f"SELECT {', '.join(kept)} FROM {_ident(table)}", dropped, json


def _public_data(column: str) -> str:
    """A fact's ``data`` with only the fields the catalogue declares non-personal for its type
    (what the store keeps in clear): an undeclared field a source sent (an ``iban``, a nested
    ``contact.mobile``) never reaches analysts, whatever its name. Absent fields stay absent
    (a null in a merge patch deletes its key)."""
    col = _ident(column)
    whens = []
    for type_name, names in sorted(PUBLIC_DATA.items()):
        pairs = ", ".join(f"{_quote(n)}, {col} -> {_quote(f'$.{_ident(n)}')}" for n in sorted(names))
        whens.append(f"WHEN {_quote(type_name)} THEN json_merge_patch('{{}}', json_object({pairs}))")
    return f"CASE WHEN json_type({col}) = 'OBJECT' THEN CASE \"type\" {' '.join(whens)} END END"


def exported_tables(cur: duckdb.DuckDBPyConnection) -> list[str]:
    """Every base table of the projections except :data:`NOT_EXPORTED`: a derived table added
    later (projections/derived.py) reaches analysts without a change here."""
    rows = cur.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' "
        "AND table_type = 'BASE TABLE' AND table_catalog = current_database() "
        "ORDER BY table_name").fetchall()
    return [str(name) for (name,) in rows if name not in NOT_EXPORTED]


def _new_generation(directory: Path, started: float, position: int) -> Path:
    """A new, empty generation directory; its name sorts in the order of the exports."""
    stamp = datetime.fromtimestamp(started, UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    parent = directory / GENERATIONS
    parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(100):
        location = parent / (f"{stamp}-{position}" + (f"-{attempt}" if attempt else ""))
        try:
            location.mkdir()
        except FileExistsError:
            continue
        return location
    raise FileExistsError(f"cannot name a new generation in {parent}")


def export(store: ProjectionStore, directory: Path, *, purge: bool = False) -> Export:
    """Write every analyst table of ``store`` as a new generation in ``directory``, publish it,
    and delete the generations no reader needs (``purge``: every other one, read or not: the
    export after a forget). Runs in the process that holds the projections open."""
    directory.mkdir(parents=True, exist_ok=True)
    # Left by an exporter killed mid-way (only the projections' holder exports, one at a time).
    # (Not a request's temporary file: a `journey export` may be writing one right now.)
    # Parquet files directly in the directory are an older layout's, which a new generation
    # replaces (they would keep a forgotten person).
    for pattern in (f".{ANALYST_DB}.*.tmp", f".{MANIFEST}.*.tmp", f".{CURRENT}.*.tmp", "*.parquet",
                    ".*.parquet.*.tmp"):
        for leftover in directory.glob(pattern):
            leftover.unlink(missing_ok=True)
    started = time.time()
    clock = time.monotonic()
    rows: dict[str, int] = {}
    dropped: dict[str, list[str]] = {}
    json_columns: dict[str, list[str]] = {}
    location: Path | None = None
    published = False
    # A cursor is a connection of its own to the same database: its transaction sees one
    # committed state of every table, whatever the store's connection is in the middle of.
    cur = store.con.cursor()
    try:
        cur.begin()
        cursors = {str(k): int(v) for k, v in
                   cur.execute("SELECT name, position FROM projection_position").fetchall()}
        position = cursors.get(store.name, 0)
        location = _new_generation(directory, started, position)
        for table in exported_tables(cur):
            select, dropped[table], json = _projection(cur, table)
            if json:
                json_columns[table] = json
            result = cur.execute(f"COPY ({select}) TO {_quote(location / f'{table}.parquet')} "
                                 "(FORMAT parquet, COMPRESSION zstd)").fetchall()
            rows[table] = int(result[0][0]) if result else 0
        cur.commit()
        done = Export(directory=directory, generation=location.name, position=position,
                      started_at=started, exported_at=time.time(), seconds=time.monotonic() - clock,
                      rows=rows, dropped=dropped, cursors=cursors, json_columns=json_columns)
        write_analyst_db(done)
        manifest = orjson.dumps(done.manifest(), option=orjson.OPT_INDENT_2)
        (location / MANIFEST).write_bytes(manifest)
        pointers = _pointers(done, manifest)
        published = True  # from the first rename on, a pointer may name the generation
        for temporary, final in pointers:
            _clear_copied(final)
            os.replace(temporary, final)
    finally:
        with contextlib.suppress(duckdb.Error):
            cur.close()
        if location is not None and not published:
            shutil.rmtree(location, ignore_errors=True)
    prune(directory, keep=done.generation, purge=purge)
    with contextlib.suppress(FileNotFoundError):
        (directory / FAILED).unlink()
    return done


def _pointers(done: Export, manifest: bytes) -> list[tuple[Path, Path]]:
    """The pointers to the generation, made under temporary names: ``current``,
    ``analyst.duckdb`` and, last, ``manifest.json``, as (temporary, final). Renaming each over
    its final name (atomic) publishes the generation; a reader finds the old one or the new
    one, whole. Nothing is renamed here, so a failure leaves the published snapshot as it was."""
    directory, pid = done.directory, os.getpid()
    link = directory / f".{CURRENT}.{pid}.tmp"
    link.unlink(missing_ok=True)
    os.symlink(Path(GENERATIONS) / done.generation, link, target_is_directory=True)
    # A hard link, not a copy: a session on analyst.duckdb holds DuckDB's lock on the
    # generation's own file, which is how :func:`prune` sees it is still read.
    database = directory / f".{ANALYST_DB}.{pid}.tmp"
    database.unlink(missing_ok=True)
    os.link(done.location / ANALYST_DB, database)
    pointer = directory / f".{MANIFEST}.{pid}.tmp"
    pointer.write_bytes(manifest)
    return [(link, directory / CURRENT), (database, directory / ANALYST_DB), (pointer, directory / MANIFEST)]


def _write_atomically(path: Path, content: bytes) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(content)
    os.replace(temporary, path)


# --------------------------------------------------------------------------- generations in use

#: ``struct flock`` on 64-bit Linux (l_type, l_whence, l_start, l_len, l_pid, padding).
_FLOCK = "hhqqi4x"
#: Open-file-description locks (Linux): unlike classic POSIX locks they conflict within one
#: process too, and closing another descriptor of the file does not drop them.
_OFD = hasattr(fcntl, "F_OFD_SETLK")


def _lock(fd: int, exclusive: bool) -> bool:
    """Lock the whole file behind ``fd`` at once; False when another holder prevents it.

    The lock is of the kind DuckDB takes on a database file (a read lock for a read-only
    session, a write lock otherwise), so a DuckDB session and a :func:`pin` both hold a
    generation against :func:`prune`."""
    kind = fcntl.F_WRLCK if exclusive else fcntl.F_RDLCK
    try:
        if _OFD:
            fcntl.fcntl(fd, fcntl.F_OFD_SETLK, struct.pack(_FLOCK, kind, os.SEEK_SET, 0, 0, 0))
        else:  # classic POSIX locks: the same kind of lock, without the in-process guarantees
            fcntl.lockf(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except OSError as error:
        if error.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


#: One pinned generation per analytics directory per process: directory -> descriptor.
_PINS: dict[Path, int] = {}


def pin(directory: Path) -> Export:
    """The current snapshot of ``directory``, held against :func:`prune` until :func:`unpin`
    (or the next :func:`pin` of the directory, or the end of the process): a read lock on its
    ``analyst.duckdb``, as a DuckDB session holds. :class:`NoSnapshot` before the first export.

    The pointer may move between reading it and locking the generation it names, and the
    generation may be deleted in between: then it is found gone and the new pointer is read
    again. A write lock in the way is :func:`prune`'s, for the moment it takes to rename the
    generation away, or a DuckDB session that opened ``analyst.duckdb`` for writing, which
    holds the generation as well as a pin would: then the reader goes on without a pin, never
    waiting for another tool."""
    key = directory.resolve()
    for _ in range(100):
        snapshot = read_manifest(directory)
        if snapshot is None:
            raise NoSnapshot(f"no analyst snapshot in {directory} yet")
        try:
            fd = os.open(snapshot.location / ANALYST_DB, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        pinned = False
        for pause in (0.0, 0.01, 0.05, 0.2):
            time.sleep(pause)
            if pinned := _lock(fd, exclusive=False):
                break
        if not (snapshot.location / MANIFEST).exists():
            os.close(fd)
            continue
        unpin(directory)
        if pinned:
            _PINS[key] = fd
        else:
            os.close(fd)
        return snapshot
    raise NoSnapshot(f"the analyst snapshot in {directory} keeps changing under this reader")


def unpin(directory: Path) -> None:
    """Let :func:`prune` delete the generation :func:`pin` held (once it is superseded)."""
    fd = _PINS.pop(directory.resolve(), None)
    if fd is not None:
        os.close(fd)


def prune(directory: Path, keep: str, *, purge: bool = False) -> list[str]:
    """Delete the generations of ``directory`` that nobody needs; returns their names.

    Kept: ``keep`` (the current one), the newest older one (a reader that resolved the pointer
    just before it moved, with a tool that takes no lock: pandas, Polars...), and every one
    whose ``analyst.duckdb`` somebody holds (a DuckDB session, :func:`pin`). ``purge`` deletes
    all but ``keep``, held or not. A generation is moved out of sight (renamed, under the
    exclusive lock that tells it is not held) before its files are deleted, so a reader never
    pins a half-deleted one.

    Limitation of classic POSIX locks, which DuckDB takes: a DuckDB session in THIS process
    loses its lock when the probe closes its descriptor. The exporter opens no session.
    """
    parent = directory / GENERATIONS
    try:
        names = sorted(p.name for p in parent.iterdir() if p.is_dir() and not p.name.startswith("."))
    except FileNotFoundError:
        return []
    older = [n for n in names if n < keep]
    previous = older[-1] if older and not purge else None
    deleted = []
    for name in names:
        if name in (keep, previous):
            continue
        location = parent / name
        fd: int | None = None
        if not purge:
            try:
                fd = os.open(location / ANALYST_DB, os.O_RDWR | os.O_CLOEXEC)
            except FileNotFoundError:
                fd = None  # never finished: an exporter was killed while writing it
            else:
                if not _lock(fd, exclusive=True):
                    os.close(fd)
                    continue
        trash = parent / f".{name}.{os.getpid()}.deleted"
        try:
            os.rename(location, trash)
        finally:
            if fd is not None:
                os.close(fd)
        shutil.rmtree(trash, ignore_errors=True)
        deleted.append(name)
    for leftover in parent.glob(".*.deleted"):
        shutil.rmtree(leftover, ignore_errors=True)
    return deleted


# --------------------------------------------------------------------------- reading

def _select(snapshot: Export, table: str) -> str:
    """The rows of one table of the generation, with its JSON columns typed as JSON again."""
    path = _quote(snapshot.location.resolve() / f"{table}.parquet")
    json = snapshot.json_columns.get(table, [])
    replace = (" REPLACE (" + ", ".join(f"CAST({_ident(c)} AS JSON) AS {_ident(c)}" for c in json) + ")"
               if json else "")
    return f"SELECT *{replace} FROM read_parquet({path})"


def view_statements(snapshot: Export | Dataset) -> list[str]:
    """The analyst views: one per Parquet file (per table of the dataset), plus ``contacts``
    and ``snapshot``.

    Paths are absolute: a view resolves a relative path against the reader's working
    directory, not the database file's. ``snapshot`` holds the generation's position and time
    as constants (a generation's files never change).
    """
    if isinstance(snapshot, Dataset):
        return _dataset_statements(snapshot.sources(), snapshot.keyed(), snapshot.json_columns(),
                                   "CREATE OR REPLACE VIEW") + analyst_views(snapshot)
    return [f"CREATE OR REPLACE VIEW {_ident(t)} AS {_select(snapshot, t)}"
            for t in snapshot.rows] + analyst_views(snapshot)


def load_statements(snapshot: Export | Dataset) -> list[str]:
    """The analyst tables copied into the database (``journey sql``'s sandbox, which may read
    no file once they are in), then ``contacts`` and ``snapshot`` as in :func:`view_statements`."""
    if isinstance(snapshot, Dataset):
        return _dataset_statements(snapshot.sources(), snapshot.keyed(), snapshot.json_columns(),
                                   "CREATE TABLE") + analyst_views(snapshot)
    return [f"CREATE TABLE {_ident(t)} AS {_select(snapshot, t)}"
            for t in snapshot.rows] + analyst_views(snapshot)


def parquet_files(snapshot: Export | Dataset) -> list[Path]:
    """The absolute paths of the snapshot's files, as the views and loads name them."""
    if isinstance(snapshot, Dataset):
        return [path for table in snapshot.tables for path in snapshot.files(table)]
    base = snapshot.location.resolve()
    return [base / f"{t}.parquet" for t in snapshot.rows]


def analyst_views(snapshot: Export | Dataset) -> list[str]:
    """``contacts`` (the touchpoints on a contact channel, with their direction) over
    ``events``, and ``snapshot`` (the export's position and times, as constants; for the
    partitioned dataset, one row per partition)."""
    out = []
    if "events" in snapshot.rows:
        out.append(_contacts())
    if isinstance(snapshot, Dataset):
        rows = ", ".join(f"({_quote(name)}, {int(part.position)}::BIGINT, "
                         f"{_quote(_iso(part.started_at))}::TIMESTAMPTZ, "
                         f"{_quote(_iso(part.exported_at))}::TIMESTAMPTZ)"
                         for name, part in sorted(snapshot.parts.items()))
        out.append(f"CREATE OR REPLACE VIEW snapshot AS SELECT * FROM (VALUES {rows}) "
                   "AS s(partition, position, started_at, exported_at)")
        return out
    out.append(f"CREATE OR REPLACE VIEW snapshot AS SELECT {int(snapshot.position)}::BIGINT AS position, "
               f"{_quote(_iso(snapshot.started_at))}::TIMESTAMPTZ AS started_at, "
               f"{_quote(_iso(snapshot.exported_at))}::TIMESTAMPTZ AS exported_at")
    return out


def _contacts() -> str:
    cases = " ".join(f"WHEN {_quote(t)} THEN {_quote(d)}" for t, d in CONTACT_DIRECTIONS.items())
    kinds = ", ".join(_quote(t) for t in CONTACT_DIRECTIONS)
    return ("CREATE OR REPLACE VIEW contacts AS SELECT *, CASE type " + cases + " END AS direction "
            f"FROM events WHERE type IN ({kinds})")


def write_analyst_db(snapshot: Export) -> Path:
    """The generation's ``analyst.duckdb``: only views over its Parquet files, for the
    analysts' own DuckDB clients, in :data:`ANALYST_STORAGE_VERSION` so that DuckDB 1.x reads
    it as well as 2.x."""
    path = snapshot.location / ANALYST_DB
    con = connect(":memory:")
    try:
        con.execute(f"ATTACH {_quote(path)} AS analyst (STORAGE_VERSION {_quote(ANALYST_STORAGE_VERSION)})")
        con.execute("USE analyst")
        for statement in view_statements(snapshot):
            con.execute(statement)
        con.execute("USE memory")
        con.execute("DETACH analyst")
    finally:
        con.close()
    return path


def open_snapshot(directory: Path, *, partitioned: bool = False
                  ) -> tuple[duckdb.DuckDBPyConnection, Export | Dataset]:
    """An in-memory DuckDB with the analyst views over the latest snapshot in ``directory``
    (``partitioned``: the partitioned dataset there, :func:`pin_dataset`), pinned (:func:`pin`):
    the views read that generation however many exports follow.

    In memory rather than ``analyst.duckdb`` itself: nothing another tool does with that file
    (holding it open for writing, say) can lock this reader out.
    """
    snapshot: Export | Dataset = pin_dataset(directory) if partitioned else pin(directory)
    con = connect(":memory:")
    try:
        for statement in view_statements(snapshot):
            con.execute(statement)
    except BaseException:
        con.close()
        raise
    return con, snapshot


# --------------------------------------------------------------------------- the duty

#: directory -> (wall-clock time of the last export, its position), so that a tick every
#: second costs a dictionary look-up until the interval has passed.
_LAST: dict[Path, tuple[float, int]] = {}


def tick(journey: Holder, interval: float) -> Export | None:
    """Export if asked to (the request file) or if ``interval`` seconds (0: only on request)
    passed and the position moved.

    Called every second by ``journey serve`` under its lock (journey/api/duties.py). Never
    raises: a failure is reported on stderr and in ``export.failed`` for a waiting
    ``journey export``, and the server goes on.
    """
    directory = analytics_dir(journey.settings)
    request, purge = directory / REQUEST, directory / PURGE
    try:
        if request.exists() or purge.exists():
            # Removed before exporting: a request written while this export runs stays for the
            # next tick (its writer waits for an export that started after it).
            purging = purge.exists()
            purge.unlink(missing_ok=True)
            request.unlink(missing_ok=True)
            journey.project()
            return _remember(export(journey.projections, directory, purge=purging))
        if interval <= 0:
            return None
        last = _LAST.get(directory)
        if last is None:
            published = read_manifest(directory)
            if published is not None:
                last = _LAST[directory] = (published.exported_at, published.position)
        if last is not None and (time.time() - last[0] < interval
                                 or journey.projections.position() == last[1]):
            return None
        return _remember(export(journey.projections, directory))
    except Exception as error:  # a duty must not take the server down
        print(f"journey export: failed: {error}", file=sys.stderr, flush=True)
        # Try again after an interval (or on the next request), not at every tick.
        _LAST[directory] = (time.time(), -1)
        with contextlib.suppress(OSError):
            directory.mkdir(parents=True, exist_ok=True)
            _write_atomically(directory / FAILED,
                              orjson.dumps({"at": time.time(), "error": str(error)}))
        return None


def _remember(done: Export) -> Export:
    _LAST[done.directory] = (done.exported_at, done.position)
    return done


def request_export(directory: Path, *, purge: bool = False) -> float:
    """Ask the process holding the projections to export (``purge``: and to delete every
    other generation); returns when it was asked."""
    directory.mkdir(parents=True, exist_ok=True)
    asked = time.time()
    if purge:
        _write_atomically(directory / PURGE, orjson.dumps({"requested_at": asked, "pid": os.getpid()}))
    _write_atomically(directory / REQUEST, orjson.dumps({"requested_at": asked, "pid": os.getpid()}))
    return asked


def exported_since(directory: Path, asked: float) -> Export | None:
    """The snapshot that started after ``asked``, if there is one yet; raises
    :class:`ExportFailed` when the exporter reported a failure since."""
    snapshot = read_manifest(directory)
    if snapshot is not None and snapshot.started_at >= asked:
        return snapshot
    try:
        failure = orjson.loads((directory / FAILED).read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError):
        return None
    if float(failure.get("at", 0)) >= asked:
        raise ExportFailed(str(failure.get("error")))
    return None


def duty(journey: Holder) -> None:
    """:func:`tick` in the shape of journey/api/duties.py's DUTIES (which ignore results),
    every ``Settings.export_interval`` seconds (:data:`INTERVAL_ENV`)."""
    tick(journey, journey.settings.export_interval)


def after_forget(journey: Holder, projected: bool) -> str:
    """A customer was forgotten: every published generation still holds what the projections
    held of them, so a new one replaces them all now (``"refreshed"``), or, when another
    process holds the projections (it applies the forget as it follows the ledger), that
    process is asked to (``"requested"``); ``"none"`` when nothing was ever exported."""
    directory = analytics_dir(journey.settings)
    if read_manifest(directory) is None:
        return "none"
    if projected:
        _remember(export(journey.projections, directory, purge=True))
        return "refreshed"
    request_export(directory, purge=True)
    return "requested"


# --------------------------------------------------------------------------- the partitioned dataset

#: The partitioned dataset's directory, under the analytics directory: one snapshot directory
#: per partition file (``<topic>-<partition>``, the file's name), and ``analyst.duckdb``.
PARTITIONS = "partitions"
#: Tables of one row per fact that only the fact's own partition holds: united as they are.
PER_FACT = frozenset({"quarantine"})
#: The longest chain of merges the dataset's aliases are followed along (a guard only: merges
#: never form cycles, but two partitions' generations of different moments might disagree).
ALIAS_DEPTH = 64


def dataset_dir(analytics: Path) -> Path:
    """Where the Kafka projectors publish their partitions' snapshots."""
    return analytics / PARTITIONS


@dataclass(frozen=True, slots=True)
class Dataset:
    """The partitioned dataset as a reader pinned it: each partition's generation, by name.

    Each generation agrees with itself; two partitions' generations may be of different
    moments (each projector exports on its own clock)."""

    directory: Path
    parts: dict[str, Export]

    @property
    def rows(self) -> dict[str, int]:
        """Rows per table summed over the partitions (copies and orphans included)."""
        out: dict[str, int] = {}
        for part in self.parts.values():
            for table, count in part.rows.items():
                out[table] = out.get(table, 0) + count
        return dict(sorted(out.items()))

    @property
    def tables(self) -> list[str]:
        return list(self.rows)

    @property
    def exported_at(self) -> float:
        """When the oldest partition's generation was exported."""
        return min(part.exported_at for part in self.parts.values())

    def files(self, table: str) -> list[Path]:
        return [part.location.resolve() / f"{table}.parquet"
                for _, part in sorted(self.parts.items()) if table in part.rows]

    def sources(self) -> dict[str, str]:
        """Each table's rows over every partition: a ``read_parquet`` of the pinned files."""
        return {t: "read_parquet([" + ", ".join(map(_quote, self.files(t))) + "], union_by_name = true)"
                for t in self.tables}

    def keyed(self) -> set[str]:
        """The tables with a ``customer_id`` column (read from the files' Parquet schemas)."""
        return {t for t in self.tables if "customer_id" in pq.read_schema(self.files(t)[0]).names}

    def json_columns(self) -> dict[str, list[str]]:
        out: dict[str, set[str]] = {}
        for part in self.parts.values():
            for table, columns in part.json_columns.items():
                out.setdefault(table, set()).update(columns)
        return {t: sorted(c) for t, c in out.items()}


def _partitions(directory: Path) -> list[Path]:
    try:
        return sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))
    except FileNotFoundError:
        return []


def pin_dataset(directory: Path) -> Dataset:
    """Every partition's current snapshot in ``directory`` (:func:`dataset_dir`), each pinned
    (:func:`pin`) until :func:`unpin_dataset`. :class:`NoSnapshot` when none was exported."""
    parts: dict[str, Export] = {}
    try:
        for sub in _partitions(directory):
            if read_manifest(sub) is not None:
                parts[sub.name] = pin(sub)
    except BaseException:
        unpin_dataset(Dataset(directory, parts))
        raise
    if not parts:
        raise NoSnapshot(f"no partition snapshot in {directory} yet")
    return Dataset(directory, parts)


def unpin_dataset(dataset: Dataset) -> None:
    for name in dataset.parts:
        unpin(dataset.directory / name)


def release(snapshot: Export | Dataset) -> None:
    """Let go of what :func:`pin` or :func:`pin_dataset` held."""
    if isinstance(snapshot, Dataset):
        unpin_dataset(snapshot)
    else:
        unpin(snapshot.directory)


def _with_json(alias: str, json: Iterable[str], replaced: Iterable[str] = ()) -> str:
    """``alias.*``, with the JSON columns typed as JSON again and the ``replaced`` ones
    (``expression AS name``) in their places."""
    replacing = [f"CAST({alias}.{_ident(c)} AS JSON) AS {_ident(c)}" for c in json] + list(replaced)
    return f"{alias}.*" + (" REPLACE (" + ", ".join(replacing) + ")" if replacing else "")


def _dataset_statements(sources: Mapping[str, str], keyed: set[str],
                        json_columns: Mapping[str, list[str]], create: str) -> list[str]:
    """The tables of every partition as one dataset.

    ``customer_aliases``: every partition's aliases, each followed to its last survivor (a
    record merged in one partition into a record merged later in another). ``events``: each
    fact once, from its own partition (``copied`` rows are the copies a partition made for a
    merge across partitions), owned by the customer it was merged into. Every other table
    about customers: without the records merged into another customer (the orphan view a
    record's own partition keeps when a merge happened in another partition: the survivor's
    partition holds the customer, with the absorbed record's facts)."""
    out = []
    aliases = "customer_aliases" in sources
    if aliases:
        out.append(
            f"{create} customer_aliases AS WITH RECURSIVE "
            f"raw AS (SELECT DISTINCT alias, customer_id FROM {sources['customer_aliases']}), "
            "chain(alias, customer_id, depth) AS (SELECT alias, customer_id, 0 FROM raw UNION ALL "
            "SELECT c.alias, r.customer_id, c.depth + 1 FROM chain c JOIN raw r ON r.alias = c.customer_id "
            f"WHERE c.depth < {ALIAS_DEPTH}) "
            "SELECT alias, arg_max(customer_id, depth) AS customer_id FROM chain GROUP BY alias")
    for table, source in sources.items():
        json = json_columns.get(table, [])
        if table == "customer_aliases":
            continue
        if table == "events":
            if aliases:
                columns = _with_json("e", json, ["coalesce(a.customer_id, e.customer_id) AS customer_id"])
                join = " LEFT JOIN customer_aliases a ON a.alias = e.customer_id"
            else:
                columns, join = _with_json("e", json), ""
            out.append(f"{create} events AS SELECT {columns} FROM {source} e{join} "
                       "WHERE e.copied IS NOT TRUE")
        elif aliases and table in keyed and table not in PER_FACT:
            out.append(f"{create} {_ident(table)} AS SELECT {_with_json('t', json)} FROM {source} t "
                       "ANTI JOIN customer_aliases a ON a.alias = t.customer_id")
        else:
            out.append(f"{create} {_ident(table)} AS SELECT {_with_json('t', json)} FROM {source} t")
    return out


def write_dataset_db(directory: Path) -> Path | None:
    """``DATA_DIR/analytics/partitions/analyst.duckdb``: views over every partition's current
    generation as one dataset, for the analysts' own DuckDB clients (in
    :data:`ANALYST_STORAGE_VERSION`). Its views name the ``current`` links by a pattern, so
    they read each partition's newest generation whenever a query opens its files, and a
    session on it pins none; what it says changes only when a table (or a JSON column)
    appears. Rewritten after every partition export, under a temporary name and renamed
    (atomic), so projectors exporting at once cannot leave a half-written one. None before any
    partition was exported."""
    parts = {sub.name: snapshot for sub in _partitions(directory)
             if (snapshot := read_manifest(sub)) is not None}
    if not parts:
        return None
    base = directory.resolve()
    tables = sorted({t for part in parts.values() for t in part.rows})
    sources = {t: f"read_parquet({_quote(base / '*' / CURRENT / f'{t}.parquet')}, union_by_name = true)"
               for t in tables}
    keyed = set()
    for t in tables:
        sample = next(part.location / f"{t}.parquet" for part in parts.values() if t in part.rows)
        with contextlib.suppress(OSError):  # superseded and deleted meanwhile: keyed or not, next time
            if "customer_id" in pq.read_schema(sample).names:
                keyed.add(t)
    json = Dataset(directory, parts).json_columns()
    statements = _dataset_statements(sources, keyed, json, "CREATE OR REPLACE VIEW")
    if "events" in sources:
        statements.append(_contacts())
    statements.append(
        "CREATE OR REPLACE VIEW snapshot AS SELECT "
        "regexp_extract(filename, '([^/]+)/manifest\\.json$', 1) AS partition, position, started_at, "
        f"exported_at FROM read_json({_quote(base / '*' / MANIFEST)}, filename = true, "
        "columns = {position: 'BIGINT', started_at: 'TIMESTAMPTZ', exported_at: 'TIMESTAMPTZ'})")
    final = directory / ANALYST_DB
    temporary = directory / f".{ANALYST_DB}.{os.getpid()}.tmp"
    temporary.unlink(missing_ok=True)
    con = connect(":memory:")
    try:
        con.execute(f"ATTACH {_quote(temporary)} AS analyst "
                    f"(STORAGE_VERSION {_quote(ANALYST_STORAGE_VERSION)})")
        con.execute("USE analyst")
        for statement in statements:
            con.execute(statement)
        con.execute("USE memory")
        con.execute("DETACH analyst")
    finally:
        con.close()
    os.replace(temporary, final)
    return final


def export_partition(store: ProjectionStore, directory: Path, *, purge: bool = False) -> Export:
    """Publish one Kafka partition file's snapshot into the dataset ``directory``
    (:func:`dataset_dir`), under the file's name, then the dataset's ``analyst.duckdb``."""
    done = export(store, directory / Path(store.path).stem, purge=purge)
    write_dataset_db(directory)
    return done


#: Seconds before a failed partition export is tried again, at the least.
RETRY_AFTER = 10.0


def _forgotten(store: ProjectionStore) -> int:
    return int(store.con.execute("SELECT count(*) FROM tombstones").fetchall()[0][0])


class PartitionPublisher:
    """A Kafka projector's export duty (consumers.kafka_projector.Publisher): each partition
    file it holds is exported into the dataset ``directory`` after its transactions, at most
    every ``interval`` seconds (``JOURNEY_EXPORT_INTERVAL``, as ``journey serve`` exports the
    embedded file; 0: never on its own) and when the projector lets the partition go; at once,
    deleting every older generation, when a customer was forgotten in it.

    A failed export is reported on stderr and tried again an interval later: a duty must not
    stop the projector."""

    def __init__(self, directory: Path, interval: float) -> None:
        self.directory = directory
        self.interval = interval
        #: partition name -> (time of its last export, its position; -1 after a failure).
        self.last: dict[str, tuple[float, int]] = {}
        #: partition name -> customers forgotten in it as of its last export.
        self.tombstones: dict[str, int] = {}

    def _last(self, name: str) -> tuple[float, int] | None:
        if name not in self.last:
            published = read_manifest(self.directory / name)
            if published is None:
                return None
            self.last[name] = (published.exported_at, published.position)
        return self.last[name]

    def _purge(self, name: str, store: ProjectionStore) -> bool:
        """Was somebody forgotten in the partition since its last export? Not known for the
        export before this process started: then a partition with any tombstone purges once."""
        count = _forgotten(store)
        before = self.tombstones.get(name)
        if before is None:
            return count > 0 and read_manifest(self.directory / name) is not None
        return count != before

    def due(self, store: ProjectionStore, final: bool = False) -> bool:
        """Has the partition moved since its last export, and is an export due now?"""
        name = Path(store.path).stem
        last = self._last(name)
        if last is not None and last[1] == store.position(store.name):
            return False
        if last is not None and last[1] == -1 and time.time() - last[0] < max(self.interval, RETRY_AFTER):
            return False  # failed just now: not again at every poll
        if self._purge(name, store):
            return True
        if self.interval <= 0:
            return False
        return last is None or final or time.time() - last[0] >= self.interval

    def publish(self, store: ProjectionStore) -> Export | None:
        """Export the partition now; never raises."""
        name = Path(store.path).stem
        try:
            purge = self._purge(name, store)
            count = _forgotten(store)
            done = export_partition(store, self.directory, purge=purge)
        except Exception as error:  # a duty must not take the projector down
            print(f"journey project: exporting {name} failed: {error}", file=sys.stderr, flush=True)
            self.last[name] = (time.time(), -1)
            with contextlib.suppress(OSError):
                target = self.directory / name
                target.mkdir(parents=True, exist_ok=True)
                _write_atomically(target / FAILED, orjson.dumps({"at": time.time(), "error": str(error)}))
            return None
        self.last[name] = (done.exported_at, done.position)
        self.tombstones[name] = count
        return done
