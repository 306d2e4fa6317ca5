"""Why a fact was refused as a conflict: which recorded (or earlier) fact it collides with and
which fields differ.

A reason goes to the rejects file, the API's 422 and the dead-letter topic, which people
with the right to send facts read: it names the fields that differ and shows the values of
public fields only. A personal value (a phone number, a name, a free text) is never printed:
the sender knows what they sent, and the recorded value is not theirs to read this way.
"""

from __future__ import annotations

from typing import Any

import orjson

from domain import personal
from ledger.application import MERGE_MARKERS, StoredFact
from ledger.fact_digest import content_of

#: Longest value shown in a reason (JSON text); longer ones are cut.
MAX_VALUE_CHARS = 80

_ABSENT = object()


def recorded_conflict(sent: dict[str, Any], recorded: StoredFact) -> str:
    """The reason for refusing a fact whose content (:func:`content_of`) is ``sent``:
    ``recorded`` has its source and id, other content."""
    fact = recorded.fact
    where = (f"source {_show(fact.get('source'))}, id {_show(fact.get('id'))}: event "
             f"{fact.get('event_id')}, position {recorded.position}, recorded at "
             f"{recorded.recorded_at.isoformat()}")
    erased = bool(fact.get("erased"))
    theirs, unknown = _as_sent(fact)
    found = differences(content_of(theirs), sent, "recorded", "sent", unknown,
                        compare_personal=not erased)
    note = ("; its personal part can no longer be read (the customer was forgotten)"
            if erased else "")
    return f"conflict: a different fact was recorded with this source and id ({where}){note}: {found}"


def batch_conflict(fact: dict[str, Any], sent: dict[str, Any], earlier: dict[str, Any],
                   earlier_line: int) -> str:
    """The reason for refusing ``fact`` (whose content is ``sent``): line ``earlier_line`` of
    its batch has its source and id and the content ``earlier``."""
    found = differences(earlier, sent, "earlier", "this one")
    # A line of a file, an offset of a partition or an index of a request: the writer does not
    # know which, the caller's reader does.
    return (f"conflict: the same source {_show(fact.get('source'))} and id {_show(fact.get('id'))} "
            f"came earlier in this batch (line or offset {earlier_line}) with other content: {found}")


def differences(first: dict[str, Any], second: dict[str, Any], first_name: str, second_name: str,
                unknown: frozenset[str] = frozenset(), compare_personal: bool = True) -> str:
    """The field paths where two contents differ (``data.outcome: recorded "answered", sent
    "no_answer"``), personal values left out; ``unknown``: paths one side cannot show."""
    hidden = _personal_paths(first) | _personal_paths(second)
    changed: list[tuple[str, Any, Any]] = []
    _walk(first, second, "", changed)
    parts = []
    for path, a, b in changed:
        top = ".".join(path.split(".")[:2])
        if top in unknown:
            continue
        if top in hidden:
            if compare_personal:
                parts.append(f"{path} differs (personal data: values not shown)")
        else:
            parts.append(f"{path}: {first_name} {_show(a)}, {second_name} {_show(b)}")
    if not parts:
        return "the content differs in a way the recorded form no longer shows"
    return "; ".join(parts)


def _as_sent(fact: dict[str, Any]) -> tuple[dict[str, Any], frozenset[str]]:
    """A recorded fact as its sender wrote it, as far as that can be told: a merge's data
    gets back the reference it named the other record by, without the identities the ledger
    listed. Returns the paths that cannot be told (a merge that named the record by a string
    has it replaced by the ledger id)."""
    if fact.get("type") not in MERGE_MARKERS or not isinstance(fact.get("data"), dict):
        return fact, frozenset()
    data = dict(fact["data"])
    data.pop("identities", None)
    unknown: frozenset[str] = frozenset()
    if "from_ref" in data:
        data["from"] = data.pop("from_ref")
    else:
        unknown = frozenset(("data.from",))
    return {**fact, "data": data}, unknown


def _personal_paths(content: dict[str, Any]) -> set[str]:
    _, private = personal.split(content)
    return {f"{section}.{name}" for section, fields in private.items() for name in fields}


def _walk(a: Any, b: Any, path: str, out: list[tuple[str, Any, Any]]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            _walk(a.get(k, _ABSENT), b.get(k, _ABSENT), f"{path}.{k}" if path else str(k), out)
    elif a is _ABSENT or b is _ABSENT or a != b or type(a) is not type(b):
        out.append((path, a, b))


def _show(value: Any) -> str:
    if value is _ABSENT:
        return "(absent)"
    text = orjson.dumps(value).decode()
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS - 3] + "..."
