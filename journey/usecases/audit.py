"""Tamper evidence (``journey verify``) and a data subject's access request (GDPR art. 15).

Verification reads the event store only (every stored event's hash chain, ledger/chain.py),
so it runs beside a server that holds the projections; the access export reads the customer's
view, raw events and projection rows (replay/subject_access.py) and writes them to one file.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from consumers.log_follower import Progress
from journey.references import reference_key
from journey.system import System
from journey.usecases import customers
from ledger import chain


class CheckpointExists(chain.CheckpointError):
    """A checkpoint file is never overwritten: an older one could be replaced by a forgery."""


@dataclass(frozen=True, slots=True)
class Verified:
    report: chain.Report
    #: Where the checkpoint was written; None: none was asked for, the chain is broken, or
    #: nothing is chained yet.
    checkpoint_written: str | None


def verify(system: System, checkpoints: Sequence[Path] = (), write_checkpoint: Path | None = None,
           on_progress: Callable[[chain.Report, int], None] | None = None) -> Verified:
    """Recompute every stored event's hash chain and compare the heads with ``checkpoints``
    taken earlier; after a verification that passed, write every chain head to
    ``write_checkpoint`` (a new file). ``on_progress`` gets the report so far and the store's
    head when the verification started.

    Raises :class:`ledger.chain.CheckpointError` for a checkpoint that cannot be read, and
    :class:`CheckpointExists` when ``write_checkpoint`` exists, before reading the store.
    """
    taken = [chain.read_checkpoint(path) for path in checkpoints]
    if write_checkpoint is not None and write_checkpoint.exists():
        raise CheckpointExists(f"{write_checkpoint} exists; a checkpoint is never overwritten")
    head = system.app.recorder.max_notification_id() or 0
    show = None if on_progress is None else (lambda r: on_progress(r, head))
    report = chain.verify_store(system.app.recorder, taken, on_progress=show)
    written = None
    if write_checkpoint is not None and report.intact and report.covered_from is not None:
        chain.checkpoint_of(report).write(write_checkpoint)
        written = str(write_checkpoint)
    return Verified(report, written)


def access_export(system: System, ref: str, out: Path,
                  on_progress: Callable[[Progress], None] | None = None) -> dict[str, Any] | None:
    """Write everything held about whoever ``ref`` names to ``out`` (JSON) and return the
    export's summary; None when nobody is known by it. Raises
    :class:`domain.errors.InvalidFact` for a reference that cannot name anyone."""
    from replay.subject_access import subject_access

    reference_key(ref)
    now = datetime.now(UTC)
    view = customers.customer(system, ref, now=now, on_progress=on_progress)
    if view is None:
        return None
    export = subject_access(system.app, system.projections, view, now)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(export, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS,
                                 default=str) + b"\n")
    summary: dict[str, Any] = export["summary"]
    return summary
