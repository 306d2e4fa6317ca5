"""Greetings: customers to remember kindly in a window of days (birthdays, purchase
anniversaries), each asked of the contact policy, and the letters recorded as sent.

The rules are pure (projections/greetings.py); this module reads the candidates from the
projections (the ``customers`` and ``events`` tables, the customer views for the full address)
and the exclusion lists, asks the plan, and records the greetings sent as ``letter.sent`` /
``email.sent`` facts. See docs/greetings-and-addresses.md. ``journey greetings`` prints what
:func:`plan_greetings` returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from consumers.jsonl_ingest import IngestSummary
from journey.policy import PolicyError, load_policies
from journey.system import System
from journey.usecases import recording
from journey.usecases.contact import POLICY_TYPES, exclusions_by_customer, head, reference_for
from projections import customer_view, greetings
from projections.duckdb_store import ProjectionStore

SOURCE = "journey-greetings"
MAX_DAYS = 366


class GreetingsQuestionError(ValueError):
    """The window or the policy file cannot be used: a bad date, count or file."""


@dataclass(frozen=True, slots=True)
class Greetings:
    plan: greetings.Plan
    #: What ``journey greetings --json`` prints (with ``recorded`` when they were recorded).
    doc: dict[str, Any]
    #: What recording the greetings as sent did; None when they were not recorded.
    recorded: IngestSummary | None = None


def plan_greetings(system: System, *, start: str | None = None, days: int = 7, per_year: int = 1,
                   channel: str = "any", policy: str | None = None, record: bool = False
                   ) -> Greetings:
    """The greetings of the ``days`` from ``start`` (YYYY-MM-DD; default today in the policy's
    time zone), at most ``per_year`` per customer in any year, by ``channel`` (letter, email,
    or any: letter first); with ``record``, recorded as sent.

    Raises :class:`GreetingsQuestionError` with the message the CLI prints.
    """
    try:
        book = load_policies(policy or system.settings.policy)
    except PolicyError as error:
        raise GreetingsQuestionError(str(error)) from None
    try:
        first = (date.fromisoformat(start) if start else
                 datetime.now(ZoneInfo(book.latest.default_timezone)).date())
    except ValueError:
        raise GreetingsQuestionError(f"--from {start!r} is not a date like 2026-03-02") from None
    if not 1 <= days <= MAX_DAYS:
        raise GreetingsQuestionError(f"--days must be between 1 and {MAX_DAYS}")
    if per_year < 1:
        raise GreetingsQuestionError("--per-year must be at least 1")
    channels = greetings.CHANNELS if channel == "any" else (channel,)
    system.project()
    store = system.projections
    candidates = _candidates(system, _ids(store, first, days))
    plan = greetings.plan(candidates, start=first, days=days, per_year=per_year, policy=book,
                          channels=channels, position=store.position(), head=head(system))
    doc = {**plan.to_json(), "policy_version": book.in_force(datetime.now(UTC)).version,
           "as_of_position": store.position()}
    if not (record and plan.greetings):
        return Greetings(plan, doc)
    summary = recording.record_lines(system, recording.lines_of(_letters(plan, candidates)))
    recording.after_recording(system)
    doc["recorded"] = {"recorded": summary.recorded, "duplicates": summary.duplicates,
                       "rejected": [{"line": r.line, "reason": r.reason} for r in summary.rejected]}
    return Greetings(plan, doc, summary)


def _ids(store: ProjectionStore, start: date, days: int) -> list[str]:
    """Customers with a birthday or a first-purchase anniversary on one of the window's days."""
    days_of_year = greetings.month_days(start, days)
    rows = store.con.execute(
        "SELECT customer_id FROM customers WHERE birthday IS NOT NULL "
        "AND strftime(birthday, '%m-%d') IN (SELECT unnest(?::VARCHAR[])) "
        "UNION SELECT customer_id FROM (SELECT customer_id, arg_min(occurred_local, occurred_at) AS first "
        "FROM events WHERE type = 'purchase.recorded' GROUP BY customer_id) "
        "WHERE substr(first, 6, 5) IN (SELECT unnest(?::VARCHAR[]))",
        [days_of_year, days_of_year]).fetchall()
    return sorted(str(r[0]) for r in rows)


def _candidates(system: System, ids: Sequence[str]) -> list[greetings.Candidate]:
    if not ids:
        return []
    store = system.projections
    con = store.con
    first_purchase: dict[str, tuple[str, str]] = {
        str(cid): (str(local), str(event_id)) for cid, local, event_id in con.execute(
            "SELECT customer_id, arg_min(occurred_local, (occurred_at, position)), "
            "arg_min(event_id, (occurred_at, position)) FROM events "
            "WHERE type = 'purchase.recorded' AND customer_id IN (SELECT unnest(?::VARCHAR[])) "
            "GROUP BY customer_id", [list(ids)]).fetchall()}
    histories: dict[str, list[dict[str, Any]]] = {cid: [] for cid in ids}
    for cid, position, event_id, kind, occurred, department, agent, data in con.execute(
            "SELECT customer_id, position, event_id, type, occurred_local, department, agent, data "
            "FROM events WHERE customer_id IN (SELECT unnest(?::VARCHAR[])) "
            "AND type IN (SELECT unnest(?::VARCHAR[])) ORDER BY customer_id, occurred_at, position",
            [list(ids), list(POLICY_TYPES)]).fetchall():
        histories[str(cid)].append({"type": kind, "event_id": event_id, "occurred_at": occurred,
                                    "position": position, "department": department, "agent": agent,
                                    "data": orjson.loads(data) if data else {}})
    keys: dict[str, list[str]] = {cid: [] for cid in ids}
    for cid, key in con.execute(
            "SELECT customer_id, identity FROM identities WHERE customer_id IN "
            "(SELECT unnest(?::VARCHAR[])) ORDER BY identity", [list(ids)]).fetchall():
        keys[str(cid)].append(str(key))
    exclusions = exclusions_by_customer(system, keys)
    views = store.load_views(list(ids))
    found = []
    for cid in ids:
        if cid not in views:
            continue
        summary = customer_view.summary(views[cid])
        contact = summary["contact"]
        birthday = summary.get("birthday")
        purchase = first_purchase.get(cid)
        found.append(greetings.Candidate(
            customer_id=cid, name=summary.get("name"), customer_number=summary["customer_number"],
            birthday=date.fromisoformat(birthday) if birthday else None,
            first_purchase=date.fromisoformat(purchase[0][:10]) if purchase else None,
            first_purchase_event=purchase[1] if purchase else None,
            address=contact["address"], address_verify=contact.get("address_verify", []),
            email=contact["email"], timezone=summary.get("timezone"), history=histories[cid],
            identities=keys[cid], exclusions=exclusions.get(cid, [])))
    return found


def _letters(plan: greetings.Plan, candidates: Sequence[greetings.Candidate]) -> list[dict[str, Any]]:
    """The greetings as ``letter.sent`` / ``email.sent`` facts, sent now, one id per greeting."""
    keys = {c.customer_id: c.identities for c in candidates}
    now = datetime.now(UTC).replace(microsecond=0).isoformat()
    facts = []
    for g in plan.greetings:
        kind = "letter.sent" if g["channel"] == "letter" else "email.sent"
        facts.append({
            "type": kind, "id": f"greetings:{g['customer_id']}:{g['date']}", "source": SOURCE,
            "customer": reference_for(keys.get(g["customer_id"], []), g["customer_id"]),
            "occurred_at": now,
            "data": {"purpose": "commercial", "campaign": greetings.CAMPAIGN,
                     "subject": f"greetings: {g['occasion']}", "greeting_date": g["date"],
                     "occasions": [o["kind"] for o in g["occasions"]]},
        })
    return facts
