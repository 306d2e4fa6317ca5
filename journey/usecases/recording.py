"""Recording facts: the one way in for every entrance.

``journey append`` gives lines of a file, the HTTP API and the Python API give parsed values;
all of them end in :func:`record_lines`, so the same door (the catalogue's validation, the
limits, conflicts reported, batches across customers) judges every fact the same way. Values
are turned into the JSON line ``journey append`` would read by one function
(:func:`consumers.jsonl_ingest.as_line`), so a fact is refused for the same reason whichever
way it came.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from consumers.jsonl_ingest import (
    DEFAULT_BATCH,
    IngestSummary,
    Line,
    OverlongLine,
    RefusedFact,
    RejectedLine,
    as_line,
    ingest,
    read_lines,
)
from consumers.log_follower import Progress
from journey.forwarding import Server, running_server
from journey.sharing import Busy
from journey.system import System

#: Facts per store transaction unless the caller says otherwise (the write path's own size).
BATCH = DEFAULT_BATCH


def record_lines(system: System, lines: Iterable[Line | OverlongLine | RefusedFact], *,
                 batch: int = BATCH, on_progress: Callable[[IngestSummary], None] | None = None
                 ) -> IngestSummary:
    """Record every acceptable line; the others are in ``rejected`` with their 1-based number.

    Projecting is left to the caller (:func:`after_recording`): a server that holds the
    projections projects by itself, and a bulk load may want to project once at the end.
    """
    return ingest(system.ledger, lines, batch_size=batch, on_progress=on_progress, parse=system.parse,
                  workers=system.settings.parse_workers)


def lines_of(facts: Iterable[Any]) -> Iterator[bytes | RefusedFact]:
    """Facts given as Python values as the lines :func:`record_lines` reads."""
    return (as_line(fact) for fact in facts)


def open_lines(source: str) -> Iterator[bytes | OverlongLine]:
    """The lines of a file (``-``: standard input) as a spreadsheet export writes them (BOM,
    CRLF or CR-only line ends), an over-long one cut off unread instead of held in memory."""
    if source == "-":
        yield from read_lines(sys.stdin.buffer)
        return
    with open(source, "rb") as handle:
        yield from read_lines(handle)


@dataclass(frozen=True, slots=True)
class Recorded:
    summary: IngestSummary
    #: Where the rejected lines were written (None: nothing was rejected).
    rejects_file: Path | None


def record_file(system: System, source: str, rejects: Path | None = None, *, batch: int = BATCH,
                on_progress: Callable[[IngestSummary], None] | None = None) -> Recorded:
    """Record the lines of ``source`` (a path, or ``-`` for standard input) and keep the
    rejected ones, with their reasons, in ``rejects`` (default: a new file under the data
    directory's rejects/, never another append's)."""
    summary = record_lines(system, open_lines(source), batch=batch, on_progress=on_progress)
    path = None
    if summary.rejected:
        if rejects is None:
            # Two appends of same-named files in the same second must not share a file.
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
            name = "stdin" if source == "-" else Path(source).name
            path = write_rejects(
                system.settings.rejects_dir / f"{name}.{stamp}.{os.getpid()}.rejects.jsonl",
                summary.rejected, source, fresh=True)
        else:
            path = write_rejects(rejects, summary.rejected, source)
    return Recorded(summary, path)


def write_rejects(path: Path, rejected: Sequence[RejectedLine], source: str, *,
                  fresh: bool = False) -> Path:
    """Write the rejected lines to ``path``; ``fresh``: never an existing file (another
    append's), so ``.1``, ``.2``... is added until the name is free. Returns the file written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_EXCL if fresh else os.O_TRUNC)
    chosen, n = path, 0
    while True:
        try:
            fd = os.open(chosen, flags, 0o600)
            break
        except FileExistsError:
            n += 1
            chosen = path.with_name(f"{path.name.removesuffix('.rejects.jsonl')}.{n}.rejects.jsonl")
    with open(fd, "wb") as out:
        for r in rejected:
            out.write(orjson.dumps({"input": source, "line": r.line, "reason": r.reason, "text": r.text}))
            out.write(b"\n")
    return chosen


@dataclass(frozen=True, slots=True)
class AfterRecording:
    #: The projections were brought up to the store's head here.
    projected: bool
    #: The running ``journey serve`` that holds the projections and projects the facts itself.
    server: Server | None
    #: Another process held the projections longer than JOURNEY_WAIT: the facts are recorded,
    #: and the next command that reads the projections catches up.
    busy: Busy | None = None


def after_recording(system: System, on_progress: Callable[[Progress], None] | None = None
                    ) -> AfterRecording:
    """Bring the projections up to date, unless the data directory's server does it."""
    server = running_server(system.settings)
    if server is not None:
        return AfterRecording(False, server)
    try:
        system.project(on_progress=on_progress)
    except Busy as busy:
        return AfterRecording(False, None, busy)
    return AfterRecording(True, None)


@dataclass(frozen=True, slots=True)
class FactProblem:
    index: int
    reason: str


@dataclass(slots=True)
class FactsOutcome:
    facts: int
    recorded: int
    duplicates: int
    derived: int
    rejected: list[FactProblem]
    as_of_position: int

    def counts(self) -> dict[str, Any]:
        return {"facts": self.facts, "recorded": self.recorded, "duplicates": self.duplicates,
                "derived": self.derived, "as_of_position": self.as_of_position}


def record_facts(system: System, facts: Sequence[Any],
                 refused: dict[int, str] | None = None) -> FactsOutcome:
    """Record ``facts`` (parsed values, the API's request) and project them; ``refused``
    (index -> reason) are left out before validation (a department writing for another one).
    Indexes are 0-based, as in the request.

    A fact the store's JSON encoder could not even write back (nested hundreds of levels
    deep, an integer beyond 64 bits) is judged against the limits first, so it is one
    rejected fact with its reason, never a failed request.
    """
    refused = dict(refused or {})
    # A refused fact stays in the numbering as an empty line, which ingest skips: the line
    # numbers of the others remain their index + 1.
    lines: list[bytes | RefusedFact] = []
    for i, line in enumerate(lines_of(facts)):
        lines.append(b"" if i in refused else line)
    summary = record_lines(system, lines)
    system.project()
    problems = [FactProblem(i, why) for i, why in refused.items()]
    problems += [FactProblem(r.line - 1, r.reason) for r in summary.rejected]
    problems.sort(key=lambda p: p.index)
    return FactsOutcome(len(facts), summary.recorded, summary.duplicates, summary.derived,
                        problems, system.projections.position())
