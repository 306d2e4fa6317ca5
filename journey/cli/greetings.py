"""``journey greetings``: customers to remember kindly this week (birthdays, purchase anniversaries).

The rules are pure (projections/greetings.py); this module reads the candidates from the
projections (the ``customers`` and ``events`` tables, the customer views for the full address),
asks the contact policy through them, prints, and with ``--record`` records the letters sent.
See docs/greetings-and-addresses.md. Exit codes: 0 done, 2 bad usage, 1 letters not recorded.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from domain import identity
from domain.contact_policy import Exclusion, PolicyBook
from journey.bootstrap import Journey
from journey.cli.contact import POLICY_TYPES
from journey.cli.output import dump
from journey.cli.textview import printable, say
from journey.exclusions import entries_in, hashes_of
from journey.policy import PolicyError, load_policies
from projections import customer_view, greetings
from projections.duckdb_store import ProjectionStore

SOURCE = "journey-greetings"
MAX_DAYS = 366



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


def _candidates(journey: Journey, ids: Sequence[str]) -> list[greetings.Candidate]:
    if not ids:
        return []
    store = journey.projections
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
    exclusions = _exclusions(journey, keys)
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


def _exclusions(journey: Journey, keys: dict[str, list[str]]) -> dict[str, list[Exclusion]]:
    """Each candidate's exclusion-list entries (the list file is read once)."""
    entries = entries_in(journey.settings.data_dir, itertools.chain.from_iterable(keys.values()))
    by_hash: dict[str, list[Exclusion]] = {}
    for entry in entries:
        by_hash.setdefault(entry.hash, []).append(entry)
    return {cid: [e for h in hashes_of(k) for e in by_hash.get(h, [])] for cid, k in keys.items()}


def _reference(keys: Sequence[str], customer_id: str) -> dict[str, str]:
    """How a recorded letter names its customer: their number, else an identity they own
    (a ledger uuid as ``customer_id`` would be taken for a customer number)."""
    for kind in identity.RESOLUTION_ORDER:
        for key in sorted(keys):
            if key.startswith(kind + ":"):
                return {kind: key.split(":", 1)[1]}
    return {"customer_id": customer_id}


def _letters(plan: greetings.Plan, candidates: Sequence[greetings.Candidate]) -> list[dict[str, Any]]:
    """The greetings as ``letter.sent`` / ``email.sent`` facts, sent now, one id per greeting."""
    keys = {c.customer_id: c.identities for c in candidates}
    now = datetime.now(UTC).replace(microsecond=0).isoformat()
    facts = []
    for g in plan.greetings:
        kind = "letter.sent" if g["channel"] == "letter" else "email.sent"
        facts.append({
            "type": kind, "id": f"greetings:{g['customer_id']}:{g['date']}", "source": SOURCE,
            "customer": _reference(keys.get(g["customer_id"], []), g["customer_id"]),
            "occurred_at": now,
            "data": {"purpose": "commercial", "campaign": greetings.CAMPAIGN,
                     "subject": f"greetings: {g['occasion']}", "greeting_date": g["date"],
                     "occasions": [o["kind"] for o in g["occasions"]]},
        })
    return facts


def cmd_greetings(args: argparse.Namespace, journey: Journey) -> int:
    try:
        book: PolicyBook = load_policies(args.policy)
    except PolicyError as error:
        print(f"journey greetings: {error}", file=sys.stderr)
        return 2
    try:
        start = (date.fromisoformat(args.start) if args.start else
                 datetime.now(ZoneInfo(book.latest.default_timezone)).date())
    except ValueError:
        print(f"journey greetings: --from {args.start!r} is not a date like 2026-03-02", file=sys.stderr)
        return 2
    if not 1 <= args.days <= MAX_DAYS:
        print(f"journey greetings: --days must be between 1 and {MAX_DAYS}", file=sys.stderr)
        return 2
    if args.per_year < 1:
        print("journey greetings: --per-year must be at least 1", file=sys.stderr)
        return 2
    channels = greetings.CHANNELS if args.channel == "any" else (args.channel,)
    journey.project()
    store = journey.projections
    candidates = _candidates(journey, _ids(store, start, args.days))
    head = int(journey.app.recorder.max_notification_id() or 0)
    plan = greetings.plan(candidates, start=start, days=args.days, per_year=args.per_year, policy=book,
                          channels=channels, position=store.position(), head=head)
    doc = {**plan.to_json(), "policy_version": book.in_force(datetime.now(UTC)).version,
           "as_of_position": store.position()}
    code = 0
    if args.record and plan.greetings:
        summary = journey.record(_letters(plan, candidates))
        doc["recorded"] = {"recorded": summary.recorded, "duplicates": summary.duplicates,
                           "rejected": [{"line": r.line, "reason": r.reason} for r in summary.rejected]}
        if summary.rejected:
            code = 1
        print(f"journey greetings: recorded {summary.recorded} greeting(s) as sent, "
              f"{summary.duplicates} already recorded, {len(summary.rejected)} rejected", file=sys.stderr)
        for r in summary.rejected:
            print(printable(f"  greeting {r.line}: {r.reason}"), file=sys.stderr)
    if args.json:
        dump(doc)
    else:
        _print(plan, doc)
    return code


def _print(plan: greetings.Plan, doc: dict[str, Any]) -> None:
    say(f"Greetings {plan.start.isoformat()} .. {plan.end.isoformat()}: {len(plan.greetings)} to send, "
        f"{len(plan.skipped)} skipped (at most {plan.per_year} per customer in any "
        f"{greetings.YEAR_DAYS} days; policy {doc['policy_version']})")
    for g in plan.greetings:
        who = g["customer_number"] or g["customer_id"]
        say(f"  {g['date']}  {who}  {g['name'] or '(no name)'}  ·  {g['occasion']}  ·  "
            f"{g['channel']} to {g['to']}")
        if g["channel"] == "letter" and g["address_verify"]:
            say(f"      ! verify the address first: {', '.join(g['address_verify'])}")
    if plan.skipped:
        say("", "Skipped")
    for s in plan.skipped:
        who = s["customer_number"] or s["customer_id"]
        say(f"  {s['date']}  {who}  {s['name'] or '(no name)'}  ·  {s['occasion']}")
        for r in s["reasons"]:
            on = f" ({r['channel']})" if r["channel"] else ""
            say(f"      ✗ [{r['code']}]{on} {r['message']}")


def register(subparsers: Any, commands: dict[str, Callable[[argparse.Namespace, Journey], int]]) -> None:
    p = subparsers.add_parser(
        "greetings", help="birthdays and first-purchase anniversaries to write to (contact policy, "
                          "once a year)")
    p.add_argument("--from", dest="start", help="first day of the window, YYYY-MM-DD (default: today)")
    p.add_argument("--days", type=int, default=7, help="how many days the window holds (default 7)")
    p.add_argument("--per-year", type=int, default=1,
                   help="at most N greetings per customer in any 365 days (default 1)")
    p.add_argument("--channel", choices=("any", *greetings.CHANNELS), default="any",
                   help="letter, email, or any: letter first, e-mail when a letter is not possible")
    p.add_argument("--record", action="store_true",
                   help="record the greetings as sent (letter.sent / email.sent, campaign greetings)")
    p.add_argument("--policy", help="policy file (env JOURNEY_POLICY, default journey/contact-policy.toml)")
    p.add_argument("--json", action="store_true")
    commands["greetings"] = cmd_greetings
