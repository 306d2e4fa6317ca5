"""Parquet snapshots of the projections, so analysts can query while the ledger runs.

DuckDB 2 lets one process hold ``projections.duckdb`` open while it writes, and any other
process (even read-only) gets a lock error. So the process that owns the projections (``journey
serve``'s duty, or ``journey export`` when nobody runs) copies the analyst tables to
``DATA_DIR/analytics/<table>.parquet``, and analysts read those files, never the live one.

Every file is written next to its final name and moved over it with :func:`os.replace` (a
rename in one directory: atomic), so a reader opens either the old or the new file, never a
half-written one. All tables are read in ONE DuckDB transaction, so the files of one export
agree with each other and with the position in ``manifest.json``, which is written last: a
reader that sees a manifest sees the files it describes (or newer ones).

The snapshot carries what the event store keeps in clear (docs/privacy.md): a fact's ``data``
keeps only the fields the catalogue declares non-personal for its type, every column that
names or describes the person (and the source's own id) is left out, and so are the tables
made of nothing else (``customer_views``, ``identities``). A forgotten customer is already a
tombstone in the projection, so the next export drops what the previous one held.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import orjson

from domain.personal import PERSONAL_DATA, PUBLIC_DATA
from projections.duckdb_store import connect

if TYPE_CHECKING:
    from journey.bootstrap import Journey
    from journey.config import Settings
    from projections.duckdb_store import ProjectionStore

SUBDIR = "analytics"
MANIFEST = "manifest.json"
#: ``journey export`` writes it when another process holds the projections; :func:`tick`
#: exports and removes it.
REQUEST = "export.request"
#: Written by :func:`tick` when an export failed, so a waiting ``journey export`` can say why.
FAILED = "export.failed"
ANALYST_DB = "analyst.duckdb"
INTERVAL_ENV = "JOURNEY_EXPORT_INTERVAL"
DEFAULT_INTERVAL = 60.0

#: Tables analysts never get, and why (also written to the manifest).
NOT_EXPORTED: dict[str, str] = {
    "customer_views": "the folded view of each customer: names, contact data and free texts",
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


def is_personal(column: str) -> bool:
    name = column.lower()
    return name in PERSONAL_COLUMNS or name.endswith(PERSONAL_SUFFIXES)


class NoSnapshot(Exception):
    """Nothing has been exported to this directory yet."""


class ExportFailed(Exception):
    """The process holding the projections tried to export and failed."""


@dataclass(frozen=True, slots=True)
class Export:
    """One published snapshot, as the manifest describes it."""

    directory: Path
    position: int
    started_at: float
    exported_at: float
    seconds: float
    rows: dict[str, int]
    dropped: dict[str, list[str]] = field(default_factory=dict)
    cursors: dict[str, int] = field(default_factory=dict)

    def manifest(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "cursors": self.cursors,
            "started_at": _iso(self.started_at),
            "exported_at": _iso(self.exported_at),
            "started_epoch": self.started_at,
            "exported_epoch": self.exported_at,
            "seconds": round(self.seconds, 3),
            "tables": {t: {"file": f"{t}.parquet", "rows": n,
                           "personal_columns_left_out": self.dropped.get(t, [])}
                       for t, n in self.rows.items()},
            "not_exported": NOT_EXPORTED,
        }

    @classmethod
    def from_manifest(cls, directory: Path, doc: Mapping[str, Any]) -> Export:
        tables = doc.get("tables", {})
        return cls(directory=directory, position=int(doc["position"]),
                   started_at=float(doc["started_epoch"]), exported_at=float(doc["exported_epoch"]),
                   seconds=float(doc["seconds"]),
                   rows={t: int(v["rows"]) for t, v in tables.items()},
                   dropped={t: list(v.get("personal_columns_left_out", [])) for t, v in tables.items()},
                   cursors={k: int(v) for k, v in doc.get("cursors", {}).items()})


def analytics_dir(settings: Settings) -> Path:
    return settings.data_dir / SUBDIR


def export_interval(env: Mapping[str, str] | None = None) -> float:
    """Seconds between automatic exports (0: only on request); a bad value is an error."""
    raw = (os.environ if env is None else env).get(INTERVAL_ENV, "")
    if not raw.strip():
        return DEFAULT_INTERVAL
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{INTERVAL_ENV}={raw!r} is not a number of seconds") from None
    if value < 0:
        raise ValueError(f"{INTERVAL_ENV}={raw!r} is negative")
    return value


def read_manifest(directory: Path) -> Export | None:
    try:
        doc = orjson.loads((directory / MANIFEST).read_bytes())
    except FileNotFoundError:
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


def _projection(cur: duckdb.DuckDBPyConnection, table: str) -> tuple[str, list[str]]:
    """The SELECT that copies ``table`` without its personal columns, and the columns left out."""
    columns = cur.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'main' AND table_name = ? ORDER BY ordinal_position", [table]).fetchall()
    kept, dropped = [], []
    typed = any(name == "type" for name, _ in columns)
    for name, kind in columns:
        if is_personal(name):
            dropped.append(name)
        elif kind == "JSON" and name == "data" and typed:
            kept.append(f"{_public_data(name)} AS {_ident(name)}")
        elif kind == "JSON":
            # Extra fields a source sent are kept by the ledger as they came: strip the
            # personal ones by name (the top level of the object, where the catalogue puts them).
            kept.append(f"CASE WHEN json_type({_ident(name)}) = 'OBJECT' "
                        f"THEN json_merge_patch({_ident(name)}, {_quote(_STRIP_PATCH)}) END "
                        f"AS {_ident(name)}")
        else:
            kept.append(_ident(name))
    return f"SELECT {', '.join(kept)} FROM {_ident(table)}", dropped


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


def export(store: ProjectionStore, directory: Path) -> Export:
    """Publish every analyst table of ``store`` as Parquet in ``directory``, then the analyst
    database, then the manifest. Runs in the process that holds the projections open."""
    directory.mkdir(parents=True, exist_ok=True)
    # Left by an exporter killed mid-way (only the projections' holder exports, one at a time).
    # (Not a request's temporary file: a `journey export` may be writing one right now.)
    for pattern in (".*.parquet.*.tmp", f".{ANALYST_DB}.*.tmp", f".{MANIFEST}.*.tmp"):
        for leftover in directory.glob(pattern):
            leftover.unlink(missing_ok=True)
    started = time.time()
    clock = time.monotonic()
    temporaries: dict[str, Path] = {}
    rows: dict[str, int] = {}
    dropped: dict[str, list[str]] = {}
    # A cursor is a connection of its own to the same database: its transaction sees one
    # committed state of every table, whatever the store's connection is in the middle of.
    cur = store.con.cursor()
    try:
        cur.begin()
        cursors = {str(k): int(v) for k, v in
                   cur.execute("SELECT name, position FROM projection_position").fetchall()}
        position = cursors.get(store.name, 0)
        for table in exported_tables(cur):
            select, dropped[table] = _projection(cur, table)
            temporary = directory / f".{table}.parquet.{os.getpid()}.tmp"
            temporaries[table] = temporary
            result = cur.execute(f"COPY ({select}) TO {_quote(temporary)} "
                                 "(FORMAT parquet, COMPRESSION zstd)").fetchall()
            rows[table] = int(result[0][0]) if result else 0
        cur.commit()
        for table, temporary in temporaries.items():
            os.replace(temporary, directory / f"{table}.parquet")
        temporaries.clear()
    finally:
        for leftover in temporaries.values():
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
        with contextlib.suppress(duckdb.Error):
            cur.close()
    done = Export(directory=directory, position=position, started_at=started,
                  exported_at=time.time(), seconds=time.monotonic() - clock, rows=rows,
                  dropped=dropped, cursors=cursors)
    write_analyst_db(done)
    _write_atomically(directory / MANIFEST, orjson.dumps(done.manifest(), option=orjson.OPT_INDENT_2))
    with contextlib.suppress(FileNotFoundError):
        (directory / FAILED).unlink()
    return done


def _write_atomically(path: Path, content: bytes) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(content)
    os.replace(temporary, path)


# --------------------------------------------------------------------------- reading

def view_statements(snapshot: Export) -> list[str]:
    """The analyst views: one per Parquet file, plus ``contacts`` and ``snapshot``.

    Paths are absolute: a view resolves a relative path against the reader's working
    directory, not the database file's. ``snapshot`` holds the export's position and time as
    constants (the views are rebuilt with every export).
    """
    base = snapshot.directory.resolve()
    return [f"CREATE OR REPLACE VIEW {_ident(t)} AS "
            f"SELECT * FROM read_parquet({_quote(base / f'{t}.parquet')})"
            for t in snapshot.rows] + analyst_views(snapshot)


def load_statements(snapshot: Export) -> list[str]:
    """The analyst tables copied into the database (``journey sql``'s sandbox, which may read
    no file once they are in), then ``contacts`` and ``snapshot`` as in :func:`view_statements`."""
    base = snapshot.directory.resolve()
    return [f"CREATE TABLE {_ident(t)} AS SELECT * FROM read_parquet({_quote(base / f'{t}.parquet')})"
            for t in snapshot.rows] + analyst_views(snapshot)


def parquet_files(snapshot: Export) -> list[Path]:
    """The absolute paths of the snapshot's files, as the views and loads name them."""
    base = snapshot.directory.resolve()
    return [base / f"{t}.parquet" for t in snapshot.rows]


def analyst_views(snapshot: Export) -> list[str]:
    """``contacts`` (the touchpoints on a contact channel, with their direction) over
    ``events``, and ``snapshot`` (the export's position and times, as constants)."""
    out = []
    if "events" in snapshot.rows:
        cases = " ".join(f"WHEN {_quote(t)} THEN {_quote(d)}" for t, d in CONTACT_DIRECTIONS.items())
        kinds = ", ".join(_quote(t) for t in CONTACT_DIRECTIONS)
        out.append("CREATE OR REPLACE VIEW contacts AS SELECT *, CASE type " + cases + " END AS direction "
                   f"FROM events WHERE type IN ({kinds})")
    out.append(f"CREATE OR REPLACE VIEW snapshot AS SELECT {int(snapshot.position)}::BIGINT AS position, "
               f"{_quote(_iso(snapshot.started_at))}::TIMESTAMPTZ AS started_at, "
               f"{_quote(_iso(snapshot.exported_at))}::TIMESTAMPTZ AS exported_at")
    return out


def write_analyst_db(snapshot: Export) -> Path:
    """``analyst.duckdb``: only views over the Parquet files, for DuckDB clients of the analysts.

    Built in a new file and moved over the old one, because a reader that has the old file
    open (read-only) would make opening it for writing fail; the reader keeps its old copy.
    """
    final = snapshot.directory / ANALYST_DB
    temporary = snapshot.directory / f".{ANALYST_DB}.{os.getpid()}.tmp"
    leftovers = (temporary, Path(f"{temporary}.wal"))
    try:
        for leftover in leftovers:
            leftover.unlink(missing_ok=True)
        con = connect(str(temporary))
        try:
            for statement in view_statements(snapshot):
                con.execute(statement)
            con.execute("CHECKPOINT")
        finally:
            con.close()
        os.replace(temporary, final)
    finally:
        for leftover in leftovers:
            leftover.unlink(missing_ok=True)
    return final


def open_snapshot(directory: Path) -> tuple[duckdb.DuckDBPyConnection, Export]:
    """An in-memory DuckDB with the analyst views over the latest snapshot in ``directory``.

    In memory rather than ``analyst.duckdb`` itself: nothing another tool does with that file
    (holding it open for writing, say) can lock this reader out.
    """
    snapshot = read_manifest(directory)
    if snapshot is None:
        raise NoSnapshot(f"no analyst snapshot in {directory} yet")
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
#: Directories whose bad JOURNEY_EXPORT_INTERVAL was reported already (once, not every second).
_WARNED: set[Path] = set()


def tick(journey: Journey) -> Export | None:
    """Export if asked to (the request file) or if the interval passed and the position moved.

    Called every second by ``journey serve`` under its lock (journey/api/duties.py). Never
    raises: a failure is reported on stderr and in ``export.failed`` for a waiting
    ``journey export``, and the server goes on.
    """
    directory = analytics_dir(journey.settings)
    request = directory / REQUEST
    try:
        interval = export_interval()
    except ValueError as error:
        if directory not in _WARNED:
            _WARNED.add(directory)
            print(f"journey export: {error}; exporting every {DEFAULT_INTERVAL:g} s", file=sys.stderr)
        interval = DEFAULT_INTERVAL
    try:
        if request.exists():
            # Removed before exporting: a request written while this export runs stays for the
            # next tick (its writer waits for an export that started after it).
            request.unlink(missing_ok=True)
            journey.project()
            return _remember(export(journey.projections, directory))
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


def request_export(directory: Path) -> float:
    """Ask the process holding the projections to export; returns when it was asked."""
    directory.mkdir(parents=True, exist_ok=True)
    asked = time.time()
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


def duty(journey: Journey) -> None:
    """:func:`tick` in the shape of journey/api/duties.py's DUTIES (which ignore results)."""
    tick(journey)


def after_forget(journey: Journey, projected: bool) -> str:
    """A customer was forgotten: the published snapshot still holds what the projections held
    of them, so it is replaced now (``"refreshed"``), or, when another process holds the
    projections (it applies the forget as it follows the ledger), that process is asked to
    export (``"requested"``); ``"none"`` when nothing was ever exported."""
    directory = analytics_dir(journey.settings)
    if read_manifest(directory) is None:
        return "none"
    if projected:
        _remember(export(journey.projections, directory))
        return "refreshed"
    request_export(directory)
    return "requested"
