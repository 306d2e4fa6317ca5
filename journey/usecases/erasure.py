"""Forgetting a person everywhere the ledger put their data, not only in the event store.

Destroying the keys (``Ledger.forget``) makes the store's copy unreadable; what the ledger
itself wrote elsewhere under its data directory is cleaned here, in this order:

1. while the keys still open the person's facts, learn the values that name them (identities,
   customer numbers, source ids, every personal field: :func:`personal_values`) and redact the
   rejects files' lines that mention any of them: a rejected line never reached the store, so
   no key protects it, and after the keys are gone nothing could tell which lines were theirs;
2. destroy the keys (one transaction of the store, which then scrubs its own files);
3. re-derive the projections (the person becomes a tombstone) and rewrite the DuckDB file
   without its free blocks;
4. publish a new analyst snapshot (or ask the process holding the projections for one);
5. delete the ``rebuild-*`` directories that hold the person: a rebuild is a copy as of its
   position, and bringing it past the forget would make it something else;
6. delete the rows of the records merged into the person from the Kafka projector's partition
   files that no process holds (:func:`clean_partitions`).

A forget repeated for someone already forgotten redoes steps 3 to 6 (an earlier run may have
stopped half-way); step 1 cannot be redone once the keys are gone. docs/privacy.md lists what
stays out of reach.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import duckdb
import orjson

from domain import identity, personal
from journey.system import System
from ledger.application import JourneyApplication
from ledger.writer import ForgetResult
from projections import quarantine, readable
from projections.compaction import rewrite

#: A free-text value this short and plain ("billing", "invoice") names nobody and would
#: redact every other person's rejected lines that use the word.
MIN_VALUE = 5
#: What a redacted rejects line says instead of the line.
REDACTED = "redacted: it named a customer who was forgotten (GDPR art. 17)"


@dataclass
class Erasure:
    """What one forget did beyond the event store."""

    result: ForgetResult
    #: The projections were brought up to date here (False: another process holds them).
    projected: bool = False
    #: Rejects file -> lines redacted in it.
    rejects: dict[str, int] = field(default_factory=dict)
    #: ``rebuild-*`` directories deleted because they held the person.
    rebuilds: list[str] = field(default_factory=list)
    #: Kafka projector partition file -> rows of merged-away records deleted from it.
    partitions: dict[str, int] = field(default_factory=dict)
    #: The analyst snapshot: "refreshed", "requested" (from the process holding the
    #: projections) or "none" (there is no snapshot).
    snapshot: str = "none"
    #: Step -> seconds it took.
    seconds: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        r = self.result
        return {"customer_id": str(r.customer_id), "already_forgotten": r.already,
                "records": [str(x) for x in r.records], "forgotten_at": r.forgotten_at,
                "projected": self.projected, "rejects_redacted": self.rejects,
                "rebuilds_deleted": self.rebuilds, "partitions_cleaned": self.partitions,
                "snapshot": self.snapshot,
                "seconds": {k: round(v, 3) for k, v in self.seconds.items()}}


#: Told what could not be cleaned and why (a file another process holds, one that cannot be
#: read); the forget goes on without it.
Warn = Callable[[str], None]


def _ignore(text: str) -> None:
    pass


def forget(system: System, reference_key: str, reason: str, *, project: bool = True,
           warn: Warn = _ignore) -> Erasure | None:
    """Forget whoever ``reference_key`` names, everywhere under the data directory; None when
    nobody is known by it."""
    redacted: dict[str, int] = {}
    clock = time.monotonic()

    def before_shredding(records: list[UUID]) -> None:
        values = personal_values(system.app, records)
        redacted.clear()
        redacted.update(redact_rejects(system.settings.rejects_dir, values))

    result = system.ledger.forget(reference_key, reason, before_shredding)
    if result is None:
        return None
    erasure = Erasure(result, rejects=redacted)
    erasure.seconds["store"] = time.monotonic() - clock
    if project:
        clock = time.monotonic()
        erasure.projected = _project(system, compact=result.already)
        erasure.seconds["projections"] = time.monotonic() - clock
    from journey.analytics import snapshots

    clock = time.monotonic()
    erasure.snapshot = snapshots.after_forget(system, erasure.projected)
    erasure.seconds["snapshot"] = time.monotonic() - clock
    ids = {str(result.customer_id), *map(str, result.records)}
    if erasure.projected:
        ids.update(_aliases(system, str(result.customer_id)))
    erasure.rebuilds = drop_rebuilds(system.settings.data_dir, ids, warn)
    merged = {str(r) for r in _merged_into(system.app, result.customer_id)}
    erasure.partitions = clean_partitions(system.settings.partitions_dir, merged, warn)
    return erasure


def _project(system: System, *, compact: bool) -> bool:
    """Bring the projections past the forget (they compact their file when they apply it);
    False when another process (``journey serve``) holds them: it applies the forget itself."""
    try:
        system.project()
        if compact:  # a repeated forget: the first run may have stopped before compacting
            system.projections.compact()
    except duckdb.IOException as error:
        if "lock" not in str(error).lower():
            raise
        return False
    return True


def _merged_into(app: JourneyApplication, customer_id: UUID) -> list[UUID]:
    """Every record merged into the customer, however deep (the write-side index keeps the
    merges after a forget, so a repeated forget finds them too)."""
    found: list[UUID] = []
    todo = [customer_id]
    while todo:
        for merged in app.index.merged_into(todo.pop()):
            if merged not in found and merged != customer_id:
                found.append(merged)
                todo.append(merged)
    return found


def _aliases(system: System, customer_id: str) -> set[str]:
    rows = system.projections.con.execute(
        "SELECT alias FROM customer_aliases WHERE customer_id = ?", [customer_id]).fetchall()
    return {str(r[0]) for r in rows}


# ----------------------------------------------------------------------------- what names them

def personal_values(app: JourneyApplication, records: Iterable[UUID]) -> set[str]:
    """Every value that names the person, from their records' facts (opened with the keys,
    so only before they are destroyed), identity keys and customer numbers: the personal
    part of each fact (domain/personal.py: its source id, reference and personal fields,
    nested values included), plus the spellings a source may have used for a phone."""
    records = list(records)
    values: set[str] = set()
    index = app.index
    for record in records:
        for key in index.identities_of(record):
            values.add(key.split(":", 1)[1])
        # A stored entry nobody can decode (quarantined by the readers) names nobody here.
        for sf in quarantine.decode(app, index.facts_of(record)):
            if readable.UNDECODABLE in sf.fact:
                continue
            _, private = personal.split(sf.fact)
            values.update(_leaves(private))
    for found in index.customer_records(records).values():
        if found.customer_number:
            values.add(found.customer_number)
    for value in list(values):
        if value.startswith("+") and value[1:].isdigit():
            values.update(identity.phone_spellings(value))  # as a local source writes it, too
    return {v for v in values if _names_someone(v)}


def _leaves(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    elif isinstance(value, str):
        yield value.strip()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield str(value)


def _names_someone(value: str) -> bool:
    """Long enough, and not a plain lower-case word (a digit, an @, a capital or a space:
    a number, an address, a name, a sentence)."""
    return len(value) >= MIN_VALUE and (
        any(c.isdigit() or c.isupper() or c.isspace() or c == "@" for c in value))


def _pattern(values: Iterable[str]) -> re.Pattern[bytes] | None:
    """One pattern for every value that names someone, matched against lines folded to lower
    case: the value as UTF-8 and as JSON escapes it (ASCII-only escapes as written or in lower
    case: an escape keeps the case of its letter)."""
    forms: set[bytes] = set()
    for value in filter(_names_someone, values):
        for spelling in {value, value.lower()}:
            forms.add(spelling.lower().encode())
            forms.add(orjson.dumps(spelling)[1:-1].lower())
            forms.add(json.dumps(spelling)[1:-1].lower().encode())
    if not forms:
        return None
    return re.compile(b"|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True)))


# ----------------------------------------------------------------------------- rejects files

def redact_rejects(directory: Path, values: Iterable[str]) -> dict[str, int]:
    """Replace every line of ``directory``'s rejects files that mentions one of ``values``;
    returns file -> lines redacted. Each file is rewritten next to itself and moved over the
    old one, so a reader sees the old or the new file, never half of one."""
    pattern = _pattern(values)
    done: dict[str, int] = {}
    if pattern is None or not directory.is_dir():
        return done
    for path in sorted(directory.rglob("*.jsonl")):
        count = _redact_file(path, pattern)
        if count:
            done[str(path)] = count
    return done


def _redact_file(path: Path, pattern: re.Pattern[bytes]) -> int:
    lines = path.read_bytes().splitlines(keepends=True)
    count = 0
    out = []
    at = datetime.now(UTC).isoformat(timespec="seconds")
    for number, line in enumerate(lines, 1):
        if pattern.search(_folded(line)) is None:
            out.append(line)
            continue
        count += 1
        out.append(orjson.dumps(_redacted(line, number, at, pattern)) + b"\n")
    if count:
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temporary.write_bytes(b"".join(out))
        with contextlib.suppress(OSError):
            os.chmod(temporary, path.stat().st_mode)
        os.replace(temporary, path)
    return count


def _folded(line: bytes) -> bytes:
    """The line lower-cased as text (``bytes.lower`` leaves "Á" as it is)."""
    return line.decode("utf-8", "replace").lower().encode()


def _redacted(line: bytes, number: int, at: str, pattern: re.Pattern[bytes]) -> dict[str, Any]:
    """What stays of a redacted line: where it came from (unless that names them too)."""
    doc: dict[str, Any] = {}
    with contextlib.suppress(orjson.JSONDecodeError):
        parsed = orjson.loads(line)
        if isinstance(parsed, dict):
            doc = parsed
    kept: dict[str, Any] = {}
    source = doc.get("input")
    if isinstance(source, str) and pattern.search(_folded(source.encode())) is None:
        kept["input"] = source
    kept["line"] = doc.get("line") if isinstance(doc.get("line"), int) else number
    kept["reason"] = REDACTED
    kept["text"] = None
    kept["redacted_at"] = at
    return kept


# ----------------------------------------------------------------------------- Kafka partitions

def clean_partitions(directory: Path, merged: set[str], warn: Warn = _ignore) -> dict[str, int]:
    """Delete the rows of records merged into the person from the Kafka projector's partition
    files, and rewrite the files that had some; returns file -> rows deleted.

    A prospect keyed to another partition than the record it joined keeps its own view there:
    that partition receives neither the merge nor the forget (both are keyed by the surviving
    record, whose partition reads the prospect's history from the store). Its rows there are
    a stale copy the projector would never touch again. The survivor's own rows are left to the
    projector, which turns them into a tombstone when it applies the forget (the aliases that
    name the merged records there point at the survivor, and stay). A file the
    projector holds open is skipped (and ``warn`` told)."""
    done: dict[str, int] = {}
    if not merged or not directory.is_dir():
        return done
    for path in sorted(directory.glob("*.duckdb")):
        try:
            deleted = _delete_records(path, sorted(merged))
            if deleted:
                rewrite(path)
                done[str(path)] = deleted
        except duckdb.IOException as error:
            warn(f"{path} is held by another process ({error}); the records merged into the "
                 "customer stay in it")
    return done


def _delete_records(path: Path, ids: list[str]) -> int:
    marks = ",".join("?" * len(ids))
    con = duckdb.connect(str(path))
    try:
        tables = [str(t) for (t,) in con.execute(
            "SELECT DISTINCT table_name FROM information_schema.columns WHERE column_name = "
            "'customer_id' AND table_schema = 'main' ORDER BY table_name").fetchall()]
        con.begin()
        deleted = 0
        for table in tables:
            found = con.execute(f'DELETE FROM "{table}" WHERE customer_id IN ({marks})', ids).fetchall()
            deleted += int(found[0][0]) if found else 0
        con.commit()
        return deleted
    finally:
        con.close()


# ----------------------------------------------------------------------------- rebuilds

def drop_rebuilds(data_dir: Path, ids: set[str], warn: Warn = _ignore) -> list[str]:
    """Delete the ``rebuild-*`` directories whose projections hold any of ``ids`` (or cannot
    be read to tell); returns the directories deleted."""
    from replay.rebuild import FILENAME

    dropped = []
    for directory in sorted(data_dir.glob("rebuild-*")):
        database = directory / FILENAME
        if not directory.is_dir() or not database.exists():
            continue
        if _holds(database, ids, warn) is False:
            continue
        shutil.rmtree(directory)
        dropped.append(str(directory))
    return dropped


def _holds(database: Path, ids: set[str], warn: Warn) -> bool | None:
    """Whether the rebuilt projections have rows of these records; None: cannot tell."""
    marks = ",".join("?" * len(ids))
    try:
        con = duckdb.connect(str(database), read_only=True)
    except duckdb.Error as error:
        warn(f"{database} cannot be read ({error}); deleting it")
        return None
    try:
        for table in ("customer_views", "events", "customer_aliases"):
            found = con.execute(f"SELECT count(*) FROM {table} WHERE customer_id IN ({marks})",
                                sorted(ids)).fetchall()
            if found and found[0][0]:
                return True
        return False
    except duckdb.Error:
        return None
    finally:
        con.close()


# ----------------------------------------------------------------------------- a confirmed forget


class ForgetRefused(ValueError):
    """The forget was not done as asked: no reason given, or the confirmation names somebody
    else (or nobody)."""


class WrongConfirmation(ForgetRefused):
    """The typed confirmation is not the person's reference, customer number or name."""


class NobodyToForget(LookupError):
    """Nobody is known by the reference."""


def _folded_words(text: str) -> str:
    return " ".join(text.split()).casefold()


def confirmations(ref: str, doc: dict[str, Any]) -> list[str]:
    """What a person may type to confirm that ``doc`` (the customer document ``ref`` found) is
    the one to forget: the reference as they looked it up, the customer number, the name or
    the ledger id. Case and repeated spaces do not matter; a value not recorded is no answer."""
    values = [ref, doc.get("customer_number"), doc.get("name"), doc.get("customer_id")]
    return [v for v in values if isinstance(v, str) and v.strip()]


def forget_confirmed(system: System, ref: str, confirm: str, reason: str, *,
                     warn: Warn = _ignore) -> Erasure:
    """Forget whoever ``ref`` names, once ``confirm`` names them too (:func:`confirmations`):
    a forget cannot be undone, so the person asking types who they mean a second time, and a
    slip in one of the two (another customer's number pasted) stops it before any key goes.

    Raises :class:`NobodyToForget`, :class:`WrongConfirmation`, :class:`ForgetRefused` (an
    empty reason: it is recorded in clear with the forget, and says why it was done) or
    :class:`domain.errors.InvalidFact` (a reference that cannot name anyone).
    """
    from journey.references import reference_key
    from journey.usecases import customers

    key = reference_key(ref)
    why = reason.strip()
    if not why:
        raise ForgetRefused("reason: say why the person is forgotten (recorded in clear: write no "
                            "personal data in it)")
    doc = customers.customer(system, ref, timeline_limit=1)
    if doc is None:
        raise NobodyToForget(f"nobody known as {ref!r} ({key})")
    typed = _folded_words(confirm)
    if not typed or typed not in {_folded_words(v) for v in confirmations(ref, doc)}:
        raise WrongConfirmation(
            f"confirm: {confirm!r} is not {ref!r}: type the customer's reference, customer number "
            "or name exactly to confirm whom to forget")
    erasure = forget(system, key, why, warn=warn)
    if erasure is None:  # forgotten by another process between the look-up and the forget
        raise NobodyToForget(f"nobody known as {ref!r} ({key})")
    return erasure
