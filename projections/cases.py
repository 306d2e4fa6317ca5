"""Cases and promises across departments: records, clocks, contradictions (docs/cases.md).

Pure functions over the entries the customer view keeps (``projections.customer_view``): the
"case" section holds every ``case.*`` fact of a customer, the "promise" section every
``promise.*`` fact, each entry with ``at`` (a sortable UTC key), ``pos`` (store position),
``type``, ``event_id``, ``occurred_at``, ``recorded_at``, ``source``, ``data`` and maybe
``department``/``agent``.

Everything but the ``late`` marks depends only on the SET of facts and their ``occurred_at``:
facts are ordered by ``(at, type rank, event_id)``, never by store position, so a late upload,
another batch split or another recording order gives the same status, owner, clocks and
history order. ``late`` is about recording order by definition (a fact recorded after something
that happened later was already recorded).

This module also registers three derived tables (``cases``, ``promises``, ``contradictions``,
see projections/derived.py). Their rows never read the clock: "overdue" and "age" are computed
by the query (``journey cases``, ``journey promises``).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pyarrow as pa

from domain.identity import case_uuid
from projections import derived
from projections.rules import DEFAULT_COMPLAINT_DAYS as DEFAULT_COMPLAINT_DAYS
from projections.rules import DEFAULT_RULES, Rules

Entry = dict[str, Any]
Record = dict[str, Any]

#: The structured answer a ``case.responded`` may carry (docs/events.md).
ANSWERS = ("yes", "no", "partial", "info")
COMPLAINT_DAYS_ENV = "JOURNEY_COMPLAINT_DAYS"

#: Crockford's base32: no I, L, O or U, so a key read over the phone cannot be misheard as
#: another (I and L are read as 1, O as 0).
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
KEY_SYMBOLS = 10
_MISREAD = str.maketrans("OIL", "011")

#: Ties on ``occurred_at`` are broken by what must come first in a case's life, then by
#: event id (stable for a fact wherever and whenever it is recorded): never by position.
_RANK = {"case.opened": 0, "case.transferred": 1, "case.note": 2, "case.responded": 3,
         "case.resolved": 4, "case.reopened": 5, "promise.made": 0, "promise.kept": 1,
         "promise.broken": 1}

_WHO = ("occurred_at", "recorded_at", "department", "agent", "source", "event_id")


# ----------------------------------------------------------------------------- rules


@functools.lru_cache(maxsize=65536)
def tracking_key(case_id: str) -> str:
    """The short key given to the customer: ``K7F3Q-92QDX``.

    The first 50 bits of SHA-256 of the case's ledger id (``domain.identity.case_uuid``), in
    Crockford base32, two groups of five. Deterministic: every ledger, every rebuild gives a
    case the same key. 50 bits keep accidental collisions unlikely (about one in 2,000 for a
    million cases); ``journey case`` says so when a key names more than one case.
    """
    digest = hashlib.sha256(case_uuid(case_id).bytes).digest()
    number = int.from_bytes(digest[:8], "big") >> (64 - 5 * KEY_SYMBOLS)
    text = "".join(CROCKFORD[(number >> (5 * i)) & 31] for i in reversed(range(KEY_SYMBOLS)))
    return f"{text[:5]}-{text[5:]}"


def parse_tracking_key(text: str) -> str | None:
    """What a person typed as a tracking key, canonical (``k7f3q 92qdx`` -> ``K7F3Q-92QDX``;
    O reads as 0, I and L as 1); None when it cannot be one."""
    cleaned = text.strip().upper().replace("-", "").replace(" ", "").translate(_MISREAD)
    if len(cleaned) != KEY_SYMBOLS or any(c not in CROCKFORD for c in cleaned):
        return None
    return f"{cleaned[:5]}-{cleaned[5:]}"


def complaint_days(environ: Mapping[str, str]) -> int:
    """The days a complaint must be answered in, as ``environ`` (the settings' environment,
    journey/config.py) says: ``JOURNEY_COMPLAINT_DAYS``, default 15. Raises ValueError naming
    the variable when it is not a whole number of days."""
    raw = environ.get(COMPLAINT_DAYS_ENV, "").strip()
    if not raw:
        return DEFAULT_COMPLAINT_DAYS
    return check_days(raw, COMPLAINT_DAYS_ENV)


def check_days(raw: str | int, where: str) -> int:
    try:
        days = int(raw)
    except ValueError:
        raise ValueError(f"{where}: {raw!r} is not a whole number of days") from None
    if days < 0:
        raise ValueError(f"{where}: must not be negative, got {days}")
    return days


def instant(text: str) -> datetime:
    """An ``occurred_at`` (ISO 8601 with offset) as an aware datetime."""
    return datetime.fromisoformat(text)


def due_instant(due_by: str, offset_of: str | None = None) -> str:
    """When a promise's ``due_by`` runs out, as ISO 8601 with offset.

    A plain date means the end of that day (the first instant of the next one) at the UTC
    offset of ``offset_of`` (the promise's own ``occurred_at``: where it was made), UTC if
    unknown; an instant is itself.
    """
    if len(due_by) != 10:
        return instant(due_by).isoformat()
    zone = instant(offset_of).tzinfo if offset_of else None
    day = datetime.fromisoformat(due_by).date() + timedelta(days=1)
    return datetime.combine(day, time(), zone or UTC).isoformat()


def seconds_between(start: str | None, end: str | None) -> float | None:
    if start is None or end is None:
        return None
    return (instant(end) - instant(start)).total_seconds()


def order_key(entry: Entry) -> tuple[str, int, str]:
    """How the facts of a case (or a promise) are ordered: by when they happened only."""
    return entry["at"], _RANK.get(entry["type"], 9), entry["event_id"]


def late_flags(entries: Sequence[Entry]) -> list[bool]:
    """For entries in :func:`order_key` order: was each recorded after something that happened
    strictly later had already been recorded? (The rule of duckdb_store.mark_late.)"""
    flags = [False] * len(entries)
    lowest_after: int | None = None
    i = len(entries)
    while i > 0:
        j = i
        while j > 0 and entries[j - 1]["at"] == entries[i - 1]["at"]:
            j -= 1
        group = range(j, i)
        for k in group:
            flags[k] = lowest_after is not None and lowest_after < entries[k]["pos"]
        low = min(entries[k]["pos"] for k in group)
        lowest_after = low if lowest_after is None else min(lowest_after, low)
        i = j
    return flags


def _who(entry: Entry) -> dict[str, Any]:
    return {k: entry[k] for k in _WHO if k in entry}


# ----------------------------------------------------------------------------- promises


def promise_records(entries: Iterable[Entry]) -> list[Record]:
    """One record per promise id, from the customer's "promise" section."""
    groups: dict[str, list[Entry]] = {}
    for e in entries:
        groups.setdefault(e["data"]["promise_id"], []).append(e)
    ordered: list[tuple[tuple[bool, str, str], Record]] = []
    for promise_id, group in groups.items():
        group.sort(key=order_key)
        made = next((e for e in group if e["type"] == "promise.made"), None)
        closing = [e for e in group if e["type"] != "promise.made"]
        last = closing[-1] if closing else None
        data = made["data"] if made else {}
        due_by = data.get("due_by")
        record = {
            "promise_id": promise_id,
            "status": "open" if last is None else last["type"].split(".", 1)[1],
            "what": data.get("what"),
            "case_id": data.get("case_id"),
            "case_tracking_key": tracking_key(data["case_id"]) if data.get("case_id") else None,
            "topic": data.get("topic"),
            "due_by": due_by,
            "due_at": due_instant(due_by, made["occurred_at"] if made else None) if due_by else None,
            "made": _who(made) if made else None,
            "closed": _who(last) if last else None,
        }
        ordered.append(((made is None, made["at"] if made else "", promise_id), record))
    return [record for _, record in sorted(ordered, key=lambda pair: pair[0])]


# ----------------------------------------------------------------------------- cases


def case_records(case_entries: Iterable[Entry], promise_entries: Iterable[Entry] = (),
                 days: int = DEFAULT_COMPLAINT_DAYS) -> list[Record]:
    """One record per case of a customer: open cases first, then by opening time."""
    groups: dict[str, list[Entry]] = {}
    for e in case_entries:
        groups.setdefault(e["data"]["case_id"], []).append(e)
    promised: dict[str, list[Entry]] = {}
    for e in promise_entries:
        if e["type"] == "promise.made" and e["data"].get("case_id") in groups:
            promised.setdefault(e["data"]["case_id"], []).append(e)
    records = [_case(case_id, sorted(group, key=order_key), promised.get(case_id, []), days)
               for case_id, group in groups.items()]
    return sorted(records, key=lambda c: (c["status"] != "open", c["opened_at"] is None,
                                          _utc(c["opened_at"]), c["case_id"]))


def _utc(text: str | None) -> float:
    return instant(text).timestamp() if text else 0.0


def _case(case_id: str, entries: list[Entry], promises: list[Entry], days: int) -> Record:
    opened: Entry | None = None
    resolved: Entry | None = None
    answer: Entry | None = None
    owner: str | None = None
    status = "open"
    departments: list[str] = []
    counts = {"transfers": 0, "notes": 0, "responses": 0, "reopened": 0}
    history: list[dict[str, Any]] = []
    for e, late in zip(entries, late_flags(entries), strict=True):
        kind, data = e["type"], e["data"]
        if kind == "case.opened":
            opened = opened or e
        elif kind == "case.transferred":
            counts["transfers"] += 1
            owner = data["to"]
        elif kind == "case.note":
            counts["notes"] += 1
        elif kind == "case.responded":
            counts["responses"] += 1
            answer = answer or e
        elif kind == "case.resolved":
            status, resolved = "resolved", e
            if data.get("resolution") and answer is None:
                answer = e
        elif kind == "case.reopened":
            status, resolved = "open", None
            counts["reopened"] += 1
        for department in (e.get("department"), data.get("to") if kind == "case.transferred" else None):
            if department and department not in departments:
                departments.append(department)
        item: dict[str, Any] = {"type": kind}
        item.update((k, v) for k, v in data.items() if k not in ("case_id", "type", "late"))
        history.append({**item, **_who(e), "late": late})
    if owner is None:
        first = opened or (entries[0] if entries else None)
        owner = first.get("department") if first else None
    kind_of = opened["data"]["kind"] if opened else None
    opened_at = opened["occurred_at"] if opened else None
    answered_at = answer["occurred_at"] if answer else None
    resolved_at = resolved["occurred_at"] if resolved else None
    due = (instant(opened_at) + timedelta(days=days)).isoformat() \
        if kind_of == "complaint" and opened_at else None
    return {
        "case_id": case_id,
        "tracking_key": tracking_key(case_id),
        "kind": kind_of,
        "subject": opened["data"].get("subject") if opened else None,
        "status": status,
        "owner_department": owner,
        "departments": departments,
        "opened_at": opened_at,
        "opened_by": _who(opened) if opened else None,
        "first_response_at": answered_at,
        "first_response": ({"type": answer["type"], **_who(answer)} if answer else None),
        "response_s": seconds_between(opened_at, answered_at),
        "resolved_at": resolved_at,
        "resolution": resolved["data"].get("resolution") if resolved else None,
        "resolution_s": seconds_between(opened_at, resolved_at),
        "answer_days": days if due else None,
        "answer_due_by": due,
        "answered_late": (instant(answered_at) > instant(due)) if due and answered_at else None,
        **counts,
        "late_events": sum(1 for h in history if h["late"]),
        "last_activity_at": entries[-1]["occurred_at"] if entries else None,
        "contradictions": contradictions(case_id, entries, promises),
        "history": history,
    }


def is_overdue(case: Record, now: datetime | None) -> bool:
    """An open complaint nobody has answered, past its deadline at ``now``."""
    due = case.get("answer_due_by")
    return bool(now is not None and due is not None and case["status"] == "open"
                and case["first_response_at"] is None and instant(due) < now)


# ----------------------------------------------------------------------------- contradictions


def _statement(entry: Entry, answer: str) -> dict[str, Any]:
    data = entry["data"]
    return {
        "answer": answer,
        "type": entry["type"],
        "text": data.get("what") if entry["type"] == "promise.made" else data.get("text"),
        "promise_id": data.get("promise_id"),
        **{k: entry.get(k) for k in ("department", "agent", "occurred_at", "event_id")},
        "at": entry["at"],
    }


def contradictions(case_id: str, entries: Sequence[Entry], promises: Sequence[Entry]
                   ) -> list[dict[str, Any]]:
    """Pairs of a "yes" and a "no" on one case and topic, from two different departments.

    A "yes" is a ``case.responded`` with ``answer: "yes"`` or a ``promise.made`` on the case;
    a "no" is a ``case.responded`` with ``answer: "no"``. The topic is ``data.topic``, absent
    meaning the case itself (``null``). Statements without a department are not compared.
    """
    said: dict[str | None, dict[str, list[dict[str, Any]]]] = {}
    for e in [*entries, *promises]:
        if e["type"] == "promise.made":
            answer = "yes"
        elif e["type"] == "case.responded" and e["data"].get("answer") in ("yes", "no"):
            answer = e["data"]["answer"]
        else:
            continue
        if not e.get("department"):
            continue
        said.setdefault(e["data"].get("topic"), {"yes": [], "no": []})[answer].append(
            _statement(e, answer))
    found = []
    for topic, sides in said.items():
        for yes in sides["yes"]:
            for no in sides["no"]:
                if yes["department"] == no["department"]:
                    continue
                later = max(yes, no, key=lambda s: (s["at"], s["event_id"]))
                found.append({"case_id": case_id, "topic": topic,
                              "contradicted_at": later["occurred_at"],
                              "_key": (later["at"], yes["event_id"], no["event_id"]),
                              "yes": dict(yes), "no": dict(no)})  # a statement may be in many pairs
    found.sort(key=lambda c: c["_key"])
    for c in found:
        del c["_key"]
        for side in ("yes", "no"):
            del c[side]["at"]
    return found


# ----------------------------------------------------------------------------- derived tables


def _cases_of(view: Mapping[str, Any], rules: Rules) -> list[Record]:
    sections = view["sections"]
    return case_records(sections["case"], sections["promise"], rules.complaint_days)


def case_rows(view: Mapping[str, Any], rules: Rules = DEFAULT_RULES) -> list[dict[str, Any]]:
    customer_id = view["customer_id"]
    rows = []
    for c in _cases_of(view, rules):
        first = c["first_response"] or {}
        rows.append({
            "customer_id": customer_id,
            **{k: c[k] for k in ("case_id", "tracking_key", "kind", "subject", "status",
                                 "owner_department", "departments", "opened_at")},
            "opened_department": (c["opened_by"] or {}).get("department"),
            "first_response_at": c["first_response_at"],
            "first_response_type": first.get("type"),
            "first_response_department": first.get("department"),
            **{k: c[k] for k in ("resolved_at", "resolution", "answer_days", "answer_due_by",
                                 "answered_late", "transfers", "notes", "responses", "reopened",
                                 "late_events", "response_s", "resolution_s", "last_activity_at")},
            "contradictions": len(c["contradictions"]),
        })
    return rows


def promise_rows(view: Mapping[str, Any], rules: Rules = DEFAULT_RULES) -> list[dict[str, Any]]:
    customer_id = view["customer_id"]
    rows = []
    for p in promise_records(view["sections"]["promise"]):
        made, closed = p["made"] or {}, p["closed"] or {}
        rows.append({
            "customer_id": customer_id,
            **{k: p[k] for k in ("promise_id", "case_id", "case_tracking_key", "topic", "what",
                                 "due_by", "due_at", "status")},
            "made_at": made.get("occurred_at"), "made_department": made.get("department"),
            "made_agent": made.get("agent"),
            "closed_at": closed.get("occurred_at"), "closed_department": closed.get("department"),
            "closed_agent": closed.get("agent"),
        })
    return rows


def contradiction_rows(view: Mapping[str, Any], rules: Rules = DEFAULT_RULES) -> list[dict[str, Any]]:
    customer_id = view["customer_id"]
    rows: list[dict[str, Any]] = []
    if not any(e["data"].get("answer") == "no" for e in view["sections"]["case"]):
        return rows  # no "no" was ever said: nothing to contradict (the common case, and cheap)
    for c in _cases_of(view, rules):
        for x in c["contradictions"]:
            row: dict[str, Any] = {"customer_id": customer_id, "case_id": c["case_id"],
                                   "tracking_key": c["tracking_key"],
                                   "owner_department": c["owner_department"], "topic": x["topic"],
                                   "contradicted_at": x["contradicted_at"]}
            for side in ("yes", "no"):
                s = x[side]
                row.update({f"{side}_{k}": s[k] for k in ("type", "department", "agent",
                                                          "occurred_at", "text", "promise_id",
                                                          "event_id")})
            rows.append(row)
    return rows



def _table(name: str, columns: Sequence[tuple[str, str, pa.DataType]], rows: Any) -> derived.DerivedTable:
    ddl = (f"CREATE TABLE IF NOT EXISTS {name} ("
           + ", ".join(f"{c} {sql}" for c, sql, _ in columns) + ")")
    schema = pa.schema([(c, arrow) for c, _, arrow in columns])
    return derived.register(derived.DerivedTable(name, ddl, schema, rows))


_S, _TS, _I, _F, _B = pa.string(), pa.string(), pa.int32(), pa.float64(), pa.bool_()

CASES = _table("cases", [
    ("customer_id", "VARCHAR NOT NULL", _S), ("case_id", "VARCHAR NOT NULL", _S),
    ("tracking_key", "VARCHAR NOT NULL", _S), ("kind", "VARCHAR", _S), ("subject", "VARCHAR", _S),
    ("status", "VARCHAR NOT NULL", _S), ("owner_department", "VARCHAR", _S),
    ("departments", "VARCHAR[]", pa.list_(pa.string())), ("opened_at", "TIMESTAMPTZ", _TS),
    ("opened_department", "VARCHAR", _S), ("first_response_at", "TIMESTAMPTZ", _TS),
    ("first_response_type", "VARCHAR", _S), ("first_response_department", "VARCHAR", _S),
    ("resolved_at", "TIMESTAMPTZ", _TS), ("resolution", "VARCHAR", _S),
    ("answer_days", "INTEGER", _I), ("answer_due_by", "TIMESTAMPTZ", _TS),
    ("answered_late", "BOOLEAN", _B), ("transfers", "INTEGER", _I), ("notes", "INTEGER", _I),
    ("responses", "INTEGER", _I), ("reopened", "INTEGER", _I), ("late_events", "INTEGER", _I),
    ("response_s", "DOUBLE", _F), ("resolution_s", "DOUBLE", _F),
    ("last_activity_at", "TIMESTAMPTZ", _TS), ("contradictions", "INTEGER", _I),
], case_rows)

PROMISES = _table("promises", [
    ("customer_id", "VARCHAR NOT NULL", _S), ("promise_id", "VARCHAR NOT NULL", _S),
    ("case_id", "VARCHAR", _S), ("case_tracking_key", "VARCHAR", _S), ("topic", "VARCHAR", _S),
    ("what", "VARCHAR", _S), ("due_by", "VARCHAR", _S), ("due_at", "TIMESTAMPTZ", _TS),
    ("status", "VARCHAR NOT NULL", _S), ("made_at", "TIMESTAMPTZ", _TS),
    ("made_department", "VARCHAR", _S), ("made_agent", "VARCHAR", _S),
    ("closed_at", "TIMESTAMPTZ", _TS), ("closed_department", "VARCHAR", _S),
    ("closed_agent", "VARCHAR", _S),
], promise_rows)

_SIDE = [("type", "VARCHAR", _S), ("department", "VARCHAR", _S), ("agent", "VARCHAR", _S),
         ("occurred_at", "TIMESTAMPTZ", _TS), ("text", "VARCHAR", _S), ("promise_id", "VARCHAR", _S),
         ("event_id", "VARCHAR", _S)]

CONTRADICTIONS = _table("contradictions", [
    ("customer_id", "VARCHAR NOT NULL", _S), ("case_id", "VARCHAR NOT NULL", _S),
    ("tracking_key", "VARCHAR NOT NULL", _S), ("owner_department", "VARCHAR", _S),
    ("topic", "VARCHAR", _S), ("contradicted_at", "TIMESTAMPTZ", _TS),
    *[(f"{side}_{name}", sql, arrow) for side in ("yes", "no") for name, sql, arrow in _SIDE],
], contradiction_rows)
