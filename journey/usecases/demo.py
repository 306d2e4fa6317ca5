"""The demo: a fresh embedded ledger with a realistic generated dataset, and a desk per role.

It replaces only a ledger it made itself (a ``.demo`` marker in the data directory), so a
mistyped ``--data-dir`` never wipes real work.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from consumers.jsonl_ingest import IngestSummary
from consumers.log_follower import Progress
from journey import demo_data
from journey.config import Settings
from journey.sharing import Holder, holder_now
from journey.system import System
from journey.usecases import recording

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


def write_facts(source: Path, customers: int, seed: int) -> int:
    """Generate the demo's touchpoints into ``source``; returns how many lines."""
    return demo_data.write_jsonl(source, demo_data.generate(customers, seed=seed))


@dataclass(frozen=True, slots=True)
class Built:
    summary: IngestSummary
    counts: dict[str, int]


def record(system: System, source: Path,
           on_record: Callable[[IngestSummary], None] | None = None,
           on_project: Callable[[Progress], None] | None = None) -> Built:
    """Record the generated facts and project them."""
    done = recording.record_file(system, str(source), on_progress=on_record)
    system.project(on_progress=on_project)
    return Built(done.summary, system.projections.table_counts())
