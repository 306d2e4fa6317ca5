"""The social inbox: mentions of the brand, the reply that answered each, and how fast.

Pure rules over one customer's view state (``projections.customer_view``); the ``mentions``
table is derived from them (see docs/inbox-and-warranty.md):

* Every ``social.mention`` is a row. ``to_brand`` says whether it was addressed to a brand
  account (``data.to`` present); the inbox shows those by default, and every mention (also
  the ones only talking *about* the brand) with ``--all``.
* A ``social.reply`` answers a mention when its ``in_reply_to`` is the mention's source id or
  its event id. The first such reply (earliest ``occurred_at``, then event id) is *the* answer:
  its time, department and agent, and ``response_s`` = reply time - mention time (a reply
  stamped before its mention, two clocks disagreeing, counts as 0 s).
* A mention that names a case of the same customer that was open when the mention was written
  is linked to it (``case_id``): named by the case id, by ``data.case_id``, or by the case's
  tracking key (``projections.cases.tracking_key``, when that module provides it).

Nothing here reads a clock: ages are computed by the query (``journey inbox --now``). Ties are
broken by event id, never by store position, so the rows depend only on the set of facts.
"""

from __future__ import annotations

import functools
import importlib
import re
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import pyarrow as pa

from projections.derived import DerivedTable, Row, View, register
from projections.rules import DEFAULT_RULES, Rules

Entry = dict[str, Any]


def _key(entry: Entry) -> tuple[str, str]:
    """Order-insensitive order: when it happened, then the (deterministic) event id."""
    return entry["at"], entry["event_id"]


def _instant(at: str) -> datetime:
    return datetime.fromisoformat(at.replace("Z", "+00:00"))


def first_replies(entries: Iterable[Entry]) -> dict[str, tuple[Entry, int]]:
    """For each mention (by event id): its first reply and how many replies name it."""
    entries = list(entries)
    mentions = [e for e in entries if e["type"] == "social.mention"]
    replies = sorted((e for e in entries if e["type"] == "social.reply"), key=_key)
    by_name: dict[str, list[Entry]] = {}
    for m in mentions:
        by_name.setdefault(m["event_id"], []).append(m)
        if m["id"] != m["event_id"]:
            by_name.setdefault(m["id"], []).append(m)
    found: dict[str, tuple[Entry, int]] = {}
    for reply in replies:
        named = reply["data"].get("in_reply_to")
        for m in by_name.get(str(named), []):
            first, count = found.get(m["event_id"], (reply, 0))
            found[m["event_id"]] = (first, count + 1)
    return found


def response_seconds(mention: Entry, reply: Entry) -> float:
    return max(0.0, (_instant(reply["at"]) - _instant(mention["at"])).total_seconds())


# ----------------------------------------------------------------------------- case links


@functools.cache
def _tracking_key() -> Callable[[str], str] | None:
    """``projections.cases.tracking_key`` if that module exists and has it, else None (then
    only the raw case id is matched)."""
    try:
        module = importlib.import_module("projections.cases")
    except ModuleNotFoundError as missing:
        if missing.name != "projections.cases":
            raise
        return None
    function = getattr(module, "tracking_key", None)
    return function if callable(function) else None


#: Ties on ``occurred_at`` within a case: what must come first in a case's life (as in
#: projections/cases.py), then event id.
_CASE_RANK = {"case.opened": 0, "case.transferred": 1, "case.note": 2, "case.responded": 3,
              "case.resolved": 4, "case.reopened": 5}


def case_timelines(entries: Iterable[Entry]) -> dict[str, list[tuple[str, str]]]:
    """Each case's status after each of its facts: ``[(at, "open"|"resolved"), ...]``.

    The same rules as the customer view: a case exists from its first fact, ``case.resolved``
    closes it, ``case.reopened`` opens it again.
    """
    timelines: dict[str, list[tuple[str, str]]] = {}
    for e in sorted(entries, key=lambda e: (e["at"], _CASE_RANK.get(e["type"], 9), e["event_id"])):
        case_id = e["data"].get("case_id")
        if not case_id:
            continue
        steps = timelines.setdefault(str(case_id), [])
        status = steps[-1][1] if steps else "open"
        if e["type"] == "case.resolved":
            status = "resolved"
        elif e["type"] == "case.reopened":
            status = "open"
        steps.append((e["at"], status))
    return timelines


def status_at(steps: list[tuple[str, str]], at: str) -> str | None:
    """A case's status at an instant (None: it did not exist yet)."""
    status = None
    for when, after in steps:
        if when > at:
            break
        status = after
    return status


@functools.lru_cache(maxsize=4096)
def _pattern(name: str, loose: bool = False) -> re.Pattern[str]:
    """``name`` as a whole word, case-insensitively (``K-1`` is not found in ``K-12``); a
    ``loose`` name's hyphens may also be written as a space or left out (``K7F3Q 92QDX``)."""
    body = re.escape(name)
    if loose:
        body = r"[-\s]?".join(re.escape(part) for part in name.split("-"))
    return re.compile(r"(?<![0-9A-Za-z_-])" + body + r"(?![0-9A-Za-z_]|-[0-9A-Za-z])", re.IGNORECASE)


def patterns_for(case_id: str) -> list[re.Pattern[str]]:
    """How a customer may name a case in a message: its id, and its tracking key when
    projections.cases provides one (without it, only the raw case id is matched)."""
    patterns = [_pattern(case_id)]
    tracking = _tracking_key()
    if tracking is not None:
        key = tracking(case_id)
        if key and key != case_id:
            patterns.append(_pattern(key, loose=True))
    return patterns


def linked_case(mention: Entry, timelines: dict[str, list[tuple[str, str]]]) -> str | None:
    """The open case (at the mention's instant) the mention names; the first named wins."""
    data = mention["data"]
    explicit = data.get("case_id")
    if explicit is not None and status_at(timelines.get(str(explicit), []), mention["at"]) == "open":
        return str(explicit)
    text = str(data.get("text") or "")
    best: tuple[int, int, str] | None = None
    for case_id, steps in timelines.items():
        if status_at(steps, mention["at"]) != "open":
            continue
        for pattern in patterns_for(case_id):
            match = pattern.search(text)
            if match is not None:
                candidate = (match.start(), -len(match.group()), case_id)
                if best is None or candidate < best:
                    best = candidate
    return best[2] if best is not None else None


# ----------------------------------------------------------------------------- rows


def mention_rows(view: View, rules: Rules = DEFAULT_RULES) -> list[Row]:
    """One row per mention of this customer (the ``mentions`` table)."""
    sections = view["sections"]
    social = sections["social"]
    answers = first_replies(social)
    timelines = case_timelines(sections["case"])
    rows: list[Row] = []
    for m in sorted((e for e in social if e["type"] == "social.mention"), key=_key):
        data = m["data"]
        reply, count = answers.get(m["event_id"], (None, 0))
        case_id = linked_case(m, timelines)
        to = data.get("to")
        rows.append({
            "customer_id": view["customer_id"],
            "mention_id": m["id"],
            "event_id": m["event_id"],
            "network": data.get("network"),
            "handle": data.get("handle"),
            "text": data.get("text"),
            "occurred_at": m["at"],
            "recorded_at": m["recorded_at"],
            "replied_at": reply["at"] if reply else None,
            "reply_department": reply.get("department") if reply else None,
            "reply_agent": reply.get("agent") if reply else None,
            "response_s": response_seconds(m, reply) if reply else None,
            "case_id": case_id,
            "case_status": timelines[case_id][-1][1] if case_id else None,
            "source": m["source"],
            "to_account": None if to is None else str(to),
            "to_brand": bool(to),
            "occurred_local": m["occurred_at"],
            "department": m.get("department"),
            "agent": m.get("agent"),
            "reply_event_id": reply["event_id"] if reply else None,
            "reply_id": reply["id"] if reply else None,
            "replied_local": reply["occurred_at"] if reply else None,
            "reply_text": reply["data"].get("text") if reply else None,
            "replies": count,
        })
    return rows


MENTIONS = register(DerivedTable(
    name="mentions",
    ddl="""CREATE TABLE IF NOT EXISTS mentions (
        customer_id VARCHAR NOT NULL, mention_id VARCHAR NOT NULL, event_id VARCHAR NOT NULL,
        network VARCHAR, handle VARCHAR, text VARCHAR, occurred_at TIMESTAMPTZ NOT NULL,
        recorded_at TIMESTAMPTZ, replied_at TIMESTAMPTZ, reply_department VARCHAR,
        reply_agent VARCHAR, response_s DOUBLE, case_id VARCHAR, case_status VARCHAR,
        source VARCHAR, to_account VARCHAR, to_brand BOOLEAN, occurred_local VARCHAR,
        department VARCHAR, agent VARCHAR, reply_event_id VARCHAR, reply_id VARCHAR,
        replied_local VARCHAR, reply_text VARCHAR, replies INTEGER)""",
    schema=pa.schema([
        ("customer_id", pa.string()), ("mention_id", pa.string()), ("event_id", pa.string()),
        ("network", pa.string()), ("handle", pa.string()), ("text", pa.string()),
        ("occurred_at", pa.string()), ("recorded_at", pa.string()), ("replied_at", pa.string()),
        ("reply_department", pa.string()), ("reply_agent", pa.string()),
        ("response_s", pa.float64()), ("case_id", pa.string()), ("case_status", pa.string()),
        ("source", pa.string()), ("to_account", pa.string()), ("to_brand", pa.bool_()),
        ("occurred_local", pa.string()), ("department", pa.string()), ("agent", pa.string()),
        ("reply_event_id", pa.string()), ("reply_id", pa.string()),
        ("replied_local", pa.string()), ("reply_text", pa.string()), ("replies", pa.int32()),
    ]),
    rows=mention_rows,
))
