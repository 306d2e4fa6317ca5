"""Tamper evidence (``journey verify``), a data subject's access request (GDPR art. 15), and
what the contact policy answered at a past instant: the auditors' questions.

Verification reads the event store only (every stored event's hash chain, ledger/chain.py),
so it runs beside a server that holds the projections (:class:`Verification` runs it in a
thread of its own for the HTTP API); the access export reads the customer's view, raw events
and projection rows (replay/subject_access.py); a contact decision as of an instant folds the
customer's facts from the store up to that instant (replay/asof.py) and asks the policy
version in force then.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import orjson

from consumers.log_follower import Progress
from domain import catalogue
from domain.contact_policy import CHANNELS, PURPOSES, decide
from domain.errors import InvalidFact
from journey.exclusions import entries_in
from journey.policy import PolicyError, load_policies
from journey.references import reference_key
from journey.system import System
from journey.usecases import customers
from journey.usecases.contact import ContactQuestionError, UnknownCustomer
from ledger import chain
from projections import customer_view
from replay import asof


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

    export = access_document(system, ref, on_progress=on_progress)
    if export is None:
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(export_bytes(export))
    summary: dict[str, Any] = export["summary"]
    return summary


def access_document(system: System, ref: str,
                    on_progress: Callable[[Progress], None] | None = None) -> dict[str, Any] | None:
    """The access export of whoever ``ref`` names (what :func:`access_export` writes): its
    ``summary``, ``customer_view``, ``raw_events`` and ``tables``; None when nobody is known by
    it. Raises :class:`domain.errors.InvalidFact` for a reference that cannot name anyone."""
    from replay.subject_access import subject_access

    reference_key(ref)
    now = datetime.now(UTC)
    view = customers.customer(system, ref, now=now, on_progress=on_progress)
    if view is None:
        return None
    return subject_access(system.app, system.projections, view, now)


def export_bytes(export: dict[str, Any]) -> bytes:
    """The export as its file holds it: indented JSON (the person may read it), one newline."""
    return orjson.dumps(export, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS,
                        default=str) + b"\n"


# ----------------------------------------------------------------------------- a verification run


class Verification:
    """At most one verification at a time, run in a thread of its own, and what it found.

    A verification reads every stored event; on a large store that is minutes, longer than a
    request may wait. Its state is a small document: ``state`` (``idle``, ``running``,
    ``done``, ``failed``), when it started and finished, how far it got (``progress``) and,
    once done, ``report`` (what ``journey verify --json`` prints). A second start while one runs
    returns the running one: two scans of the same store tell nothing more.

    It reads the event store through the recorder's connection pool, never the projections, so
    it needs no lock the desk's requests wait on.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._doc: dict[str, Any] = {"state": "idle", "started_at": None, "finished_at": None,
                                     "progress": None, "report": None, "error": None}
        self._thread: threading.Thread | None = None

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {**self._doc, "progress": dict(self._doc["progress"] or {}) or None}

    def start(self, system: System, started_by: str | None = None) -> dict[str, Any]:
        """Start a verification of ``system``'s store unless one runs; the state either way."""
        with self._lock:
            if self._doc["state"] != "running":
                self._doc = {"state": "running", "started_at": _now(), "finished_at": None,
                             "started_by": started_by,
                             "progress": {"position": 0, "head": None, "events": 0},
                             "report": None, "error": None}
                self._thread = threading.Thread(target=self._run, args=(system,),
                                                name="journey-verify", daemon=True)
                self._thread.start()
        return self.state()

    def wait(self, timeout: float | None = None) -> dict[str, Any]:
        """The state once the running verification (if any) ended, or ``timeout`` passed."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return self.state()

    def _run(self, system: System) -> None:
        def progress(report: chain.Report, head: int) -> None:
            with self._lock:
                self._doc["progress"] = {"position": report.head, "head": head, "events": report.events}

        try:
            done = verify(system, on_progress=progress)
        except Exception as error:  # whatever stops the scan: the page says it, the server goes on
            with self._lock:
                self._doc.update(state="failed", finished_at=_now(),
                                 error=f"{type(error).__name__}: {error}")
            return
        with self._lock:
            report = done.report
            self._doc.update(state="done", finished_at=_now(), report=report.as_dict(),
                             progress={"position": report.head, "head": report.head,
                                       "events": report.events})


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# ----------------------------------------------------------------------------- contact, as of


def contact_decision_as_of(system: System, ref: str, *, channel: str, purpose: str, at: str,
                           axis: Literal["recorded", "occurred"] = "recorded",
                           campaign: str | None = None, policy: str | None = None) -> dict[str, Any]:
    """May the company contact whoever ``ref`` names on ``channel`` for ``purpose`` at the past
    instant ``at``, as the policy version in force then answers over the customer's history
    as the ledger knew it then (``axis`` ``recorded``: the facts recorded by ``at``) or as it
    had happened (``occurred``: the facts that occurred by ``at``, including those recorded
    later)? The history is folded from the event store, not the live projections, so a fact
    recorded later (a late objection) does not change what the ledger knew then.

    The answer carries the decision (allowed, reasons, policy version), the history it read
    (facts, last store position, late facts) and the ``contact.decided`` facts of the same
    channel and purpose the history holds (what agents were told then). Exclusion-list
    entries are the data directory's as they are now, each from the day it applies
    (docs/audit.md).

    Raises :class:`UnknownCustomer` (nobody known by ``ref``, or nobody by ``at``) or
    :class:`ContactQuestionError` (a bad reference, instant, channel, purpose or policy file).
    """
    if channel not in CHANNELS:
        raise ContactQuestionError(f"channel {channel!r} is not one of {', '.join(CHANNELS)}")
    if purpose not in PURPOSES:
        raise ContactQuestionError(f"purpose {purpose!r} is not one of {', '.join(PURPOSES)}")
    try:
        key = reference_key(ref)
        instant = catalogue.parse_instant(at, "at")
    except InvalidFact as error:
        raise ContactQuestionError(str(error)) from None
    except OverflowError:
        raise ContactQuestionError(f"at: {at!r} is out of range") from None
    try:
        book = load_policies(policy or system.settings.policy)
        in_force = book.in_force(instant)
    except PolicyError as error:
        raise ContactQuestionError(str(error)) from None
    customer_id = asof.resolve(system.app, key)
    if customer_id is None:
        raise UnknownCustomer(f"nobody known as {ref!r} ({key})")
    found = asof.as_of(system.app, customer_id, instant, axis, rules=system.settings.rules)
    if not found.facts:
        raise UnknownCustomer(f"nobody known as {ref!r} ({key}) by {instant.isoformat()}")
    rendered = customer_view.render(found.view, now=instant, rules=system.settings.rules)
    keys = [f"{i['kind']}:{i['value']}" for i in rendered["identities"]]
    history = [_policy_fact(sf) for sf in found.facts]
    decision = decide(history, channel=channel, purpose=purpose, at=instant, campaign=campaign,
                      policy=in_force, exclusions=entries_in(system.settings.data_dir, keys),
                      identities=keys)
    told = [{"event_id": f["event_id"], "position": f["position"], "at": f["data"].get("at"),
             "allowed": f["data"].get("allowed"), "reasons": f["data"].get("reasons", []),
             "policy_version": f["data"].get("policy_version")}
            for f in history if f["type"] == "contact.decided"
            and f["data"].get("channel") == channel and f["data"].get("purpose") == purpose]
    return {"customer_id": customer_id, "customer_number": rendered.get("customer_number"),
            "name": rendered.get("name"), "ref": ref, "axis": axis, "at": instant.isoformat(),
            "channel": channel, "purpose": purpose, "campaign": campaign,
            "policy_version": in_force.version,
            "history": {"facts": len(found.facts),
                        "through_position": max(sf.position for sf in found.facts),
                        "recorded_late": len(found.late), "quarantined": found.quarantined},
            "decision": decision.to_json(), "recorded_decisions": told}


def _policy_fact(sf: Any) -> dict[str, Any]:
    """A stored fact as the contact policy reads it (its history rows)."""
    fact = catalogue.upcast(sf.fact)
    return {"type": fact["type"], "event_id": fact["event_id"], "occurred_at": fact["occurred_at"],
            "position": sf.position, "department": fact.get("department"),
            "agent": fact.get("agent"), "data": fact.get("data", {})}
