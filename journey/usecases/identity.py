"""Two records are one person, or a merge was wrong: ``customer.merged`` / ``customer.unmerged``.

Both are ordinary facts (docs/events.md), recorded through the one door every fact goes through
(:func:`journey.usecases.recording.record_lines`), so a merge is judged and kept like a call:
who did it, from which department, why. The same facts can be sent as JSON Lines; these
functions only build them from what a person types.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from journey.references import reference_key
from journey.system import System
from journey.usecases import customers, recording

#: The fact each way of changing identities records, and the word its id starts with.
FACTS = {"merge": "customer.merged", "unmerge": "customer.unmerged"}


@dataclass(frozen=True, slots=True)
class Recorded:
    recorded: int
    #: Why the fact was refused (empty: it was recorded, or was already).
    refused: list[str]
    #: The fact as it was sent to the ledger.
    fact: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Record:
    """Who a reference names, as a person checks it before joining or erasing records."""

    #: What the person typed.
    ref: str
    customer_id: str
    customer_number: str | None
    name: str | None
    #: ``(kind, value)`` of each identity the record is known by.
    identities: list[tuple[str, str]]
    events: int
    forgotten: bool


class UnknownRecords(LookupError):
    """Some of the references name nobody: ``unknown`` holds ``(role, ref)`` of each, in the
    order given (``("REF", "C-1")``), so the message can say which."""

    def __init__(self, unknown: list[tuple[str, str]]) -> None:
        self.unknown = unknown
        super().__init__(" and ".join(f"{ref!r} ({role})" for role, ref in unknown))


def record(system: System, ref: str) -> Record | None:
    """The record ``ref`` names now (the projections brought up to the store's head first), or
    None. Raises :class:`domain.errors.InvalidFact` for a reference that cannot name anyone."""
    doc = customers.customer(system, ref, timeline_limit=0)
    if doc is None:
        return None
    idents = [(str(i["kind"]), str(i["value"])) for i in doc.get("identities") or []
              if isinstance(i, dict) and i.get("value") is not None]
    counts = doc.get("counts") or {}
    return Record(ref, str(doc["customer_id"]), doc.get("customer_number"), doc.get("name"), idents,
                  int(counts.get("events") or 0), bool(doc.get("forgotten")))


def records(system: System, named: list[tuple[str, str]]) -> list[Record]:
    """The records each ``(role, ref)`` names; :class:`UnknownRecords` naming every one that
    names nobody (not only the first), InvalidFact for a reference that cannot name anyone."""
    found = [(role, ref, record(system, ref)) for role, ref in named]
    unknown = [(role, ref) for role, ref, r in found if r is None]
    if unknown:
        raise UnknownRecords(unknown)
    return [r for _, _, r in found if r is not None]


def reference(ref: str) -> dict[str, str]:
    """A reference object (the ``customer`` field of a fact) from what a person types; raises
    :class:`domain.errors.InvalidFact` for one that cannot name anyone."""
    kind, _, value = reference_key(ref).partition(":")
    return {"customer_id" if kind == "ledger" else kind: value}


def change(system: System, how: Literal["merge", "unmerge"], ref: str, other: str, reason: str, *,
           department: str | None = None, agent: str | None = None, at: str | None = None,
           source: str = "journey-cli") -> Recorded:
    """Record that ``other`` is the same person as ``ref`` (``merge``), or that an earlier merge
    of ``other`` into ``ref`` was wrong (``unmerge``); ``at`` (ISO 8601) defaults to now.

    The fact's id is made of the two references and the instant, so the same decision sent
    twice is recorded once; ``source`` names the entrance it came through. Raises
    :class:`domain.errors.InvalidFact` for a reference that cannot name anyone.
    """
    survivor, merged = reference(ref), reference(other)
    at = at or datetime.now(UTC).isoformat(timespec="seconds")
    fact: dict[str, Any] = {
        "type": FACTS[how], "source": source,
        "id": f"{how}:{reference_key(ref)}:{reference_key(other)}:{at}",
        "customer": survivor, "occurred_at": at, "data": {"from": merged, "reason": reason},
    }
    for name, value in (("department", department), ("agent", agent)):
        if value:
            fact[name] = value
    summary = recording.record_lines(system, recording.lines_of([fact]))
    recording.after_recording(system)
    return Recorded(summary.recorded, [r.reason for r in summary.rejected], fact)
