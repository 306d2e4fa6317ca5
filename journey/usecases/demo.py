"""The demo: a fresh embedded ledger with a realistic generated dataset, and a desk per role.

It replaces only a ledger it made itself (a ``.demo`` marker in the data directory), so a
mistyped ``--data-dir`` never wipes real work.

Its facts are recorded at the instants a live ledger would have recorded them (minutes after
they happened, or late for an upload: journey/demo_data.py), not at the moment the demo is
built, so "as the company knew it on 1 June" finds what had come in by then. Those instants
are written beside the facts file (one a line) and handed to the writer as its clock; no
door a sender uses can give one.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from consumers.jsonl_ingest import IngestSummary, ingest
from consumers.log_follower import Progress
from journey import demo_data
from journey.config import Settings
from journey.sharing import Holder, holder_now
from journey.system import System
from journey.usecases import recording
from ledger.writer import RecordingClock

MARKER = ".demo"

#: The demo's people at the console: (token name, role). One per kind of desk a newcomer
#: might sit at, so each sees what their role may see (docs/security.md).
DESKS = (("clerk-ana", "stores"), ("agent-luis", "customer_care"), ("social-marta", "social_media"),
         ("auditor-irene", "auditor"), ("admin", "admin"))


class NotADemo(Exception):
    """The data directory holds a ledger the demo did not make."""


class InUse(Exception):
    def __init__(self, holder: Holder) -> None:
        super().__init__(holder.describe())
        self.holder = holder


def prepare(settings: Settings, *, force: bool) -> Path:
    """An empty data directory marked as the demo's; returns where the facts file goes."""
    home = settings.data_dir
    holder = holder_now(settings.lock_path)
    if holder is not None:
        raise InUse(holder)
    if home.exists() and any(home.iterdir()):
        if not (home / MARKER).exists() and not force:
            raise NotADemo(str(home))
        shutil.rmtree(home)
    home.mkdir(parents=True)
    (home / MARKER).write_text("created by journey demo\n")
    return home / "demo.jsonl"


def recorded_at_file(source: Path) -> Path:
    """Where the recording instant of each line of the facts file is kept (line for line)."""
    return source.with_name(source.stem + ".recorded-at.txt")


def write_facts(source: Path, customers: int, seed: int) -> int:
    """Generate the demo's touchpoints into ``source``, and when each is recorded beside it;
    returns how many lines."""
    instants: list[int] = []

    def facts() -> Iterator[dict[str, Any]]:
        for at, fact in demo_data.recorded(customers, seed=seed):
            instants.append(at)
            yield fact

    count = demo_data.write_jsonl(source, facts())
    recorded_at_file(source).write_text(
        "".join(datetime.fromtimestamp(at, UTC).isoformat() + "\n" for at in instants))
    return count


def recording_clock(source: Path, now: datetime) -> RecordingClock | None:
    """Each line's recording instant, none later than ``now`` (a ledger records nothing in
    the future: a demo built before its last facts came in shows them as recorded now).
    None without the instants file (a facts file the demo did not write): recorded as any
    append would."""
    path = recorded_at_file(source)
    if not path.exists():
        return None
    instants = [min(datetime.fromisoformat(line), now) for line in path.read_text().split()]

    def clock(line: int) -> datetime:
        return instants[line - 1] if 0 < line <= len(instants) else now

    return clock


@dataclass(frozen=True, slots=True)
class Built:
    summary: IngestSummary
    counts: dict[str, int]


def record(system: System, source: Path,
           on_record: Callable[[IngestSummary], None] | None = None,
           on_project: Callable[[Progress], None] | None = None) -> Built:
    """Record the generated facts, each at its recording instant, and project them."""
    clock = recording_clock(source, datetime.now(UTC))
    summary = ingest(system.ledger, recording.open_lines(str(source)), batch_size=recording.BATCH,
                     on_progress=on_record, parse=system.parse, clock=clock,
                     workers=system.settings.parse_workers)
    if summary.rejected:  # never for the generated facts; kept where any append keeps them
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        recording.write_rejects(
            system.settings.rejects_dir / f"{source.name}.{stamp}.{os.getpid()}.rejects.jsonl",
            summary.rejected, str(source), fresh=True)
    system.project(on_progress=on_project)
    return Built(summary, system.projections.table_counts())
