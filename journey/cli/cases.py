"""``journey cases``, ``journey case`` and ``journey promises``: cases across departments.

The queries and the clocks are in journey/usecases/cases.py (the HTTP API asks the same
functions); this module parses the flags and renders the text. Times are shown to people in
the customer's own time zone; ``--json`` gives ISO 8601 instants with that zone's offset. Exit
codes: 0 done, 2 bad usage, 3 unknown customer or case.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from domain import catalogue
from domain.contact_policy import department_words
from journey.bootstrap import Journey
from journey.cli.output import dump, plural
from journey.cli.paging import add_paging, page_of, shown
from journey.cli.textview import printable_lines
from journey.usecases.cases import (
    CASE_STATES,
    PROMISE_STATES,
    Unknown,
    UsageError,
    answer_days,
    case_document,
    find_case,
    list_cases,
    list_promises,
    parse_now,
    resolve_customer,
)
from projections import cases as rules


def _fail(command: str, error: Exception) -> int:
    print(f"journey {command}: {error}", file=sys.stderr)
    return 3 if isinstance(error, Unknown) else 2


# ----------------------------------------------------------------------------- text


def local(value: str | None, zone: str, seconds: bool = False) -> str:
    """An ISO instant as the customer's local date and time: ``2026-05-04 10:00``."""
    if not value:
        return "-"
    if len(value) == 10:
        return value
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def duration(seconds: float | None) -> str:
    """``694800`` -> ``8d 1h``: the two largest units, for people."""
    if seconds is None:
        return "-"
    sign = "-" if seconds < 0 else ""
    left = int(abs(seconds))
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if left >= size:
            parts.append(f"{left // size}{unit}")
            left %= size
    return sign + (" ".join(parts[:2]) if parts else "0m")


def age(seconds: float | None) -> str:
    """How old a case is; "not yet open" when --now is before its opening."""
    return "not yet open" if seconds is not None and seconds < 0 else duration(seconds)


def _due(promise: dict[str, Any]) -> str:
    """A promise's due date as it was promised (a plain date stays a date)."""
    due_by = promise["due_by"]
    if due_by and len(due_by) == 10:
        return f"{due_by} (end of day)"
    return local(promise["due_at"], promise["timezone"])


def _at(now: datetime | None) -> str:
    """The instant a list is judged at, for people: ``at 2026-05-20 12:00 +02:00`` or ``now``."""
    if now is None:
        return "now"
    offset = now.strftime("%z")
    return f"at {now:%Y-%m-%d %H:%M} {offset[:3]}:{offset[3:]}"


def _by(department: str | None, agent: str | None) -> str:
    """Who did it, as people read it: "customer care (CC-3)"."""
    if department and agent:
        return f"{department_words(department)} ({agent})"
    return department_words(department) if department else agent or "nobody recorded"


def _table(headers: Sequence[str], lines: list[list[str]]) -> list[str]:
    widths = [max([len(h), *(len(line[i]) for line in lines)]) for i, h in enumerate(headers)]
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    out += ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines]
    return out


def _answered(row: dict[str, Any]) -> str:
    if row["first_response_at"] is None:
        return "-"
    text = f"after {duration(row['response_s'])}"
    return text + " (LATE)" if row["answered_late"] else text


def _flags(row: dict[str, Any]) -> str:
    flags = []
    if row["overdue"]:
        flags.append(f"OVERDUE {duration(row['overdue_s'])}")
    if row["contradictions"]:
        flags.append(plural(row['contradictions'], "contradiction"))
    if row["late_events"]:
        flags.append(f"{row['late_events']} recorded late")
    return ", ".join(flags)


def cases_text(rows: list[dict[str, Any]], now: datetime | None, days: int) -> list[str]:
    overdue = sum(1 for r in rows if r["overdue"])
    at = _at(now)
    out = [f"{plural(len(rows), 'case')}, {overdue} overdue {at} (complaints must be answered within "
           f"{days} days; times in each customer's local time)"]
    if not rows:
        return out
    lines = [[r["tracking_key"], r["case_id"], r["customer_number"] or r["customer_id"][:8],
              r["kind"] or "?", r["owner_department"] or "-", r["status"],
              local(r["opened_at"], r["timezone"]), age(r["age_s"]), _answered(r),
              local(r["resolved_at"], r["timezone"]), _flags(r)] for r in rows]
    headers = ["KEY", "CASE", "CUSTOMER", "KIND", "OWNER", "STATUS", "OPENED", "AGE", "ANSWERED",
               "RESOLVED", ""]
    return [*out, "", *_table(headers, lines)]


def _describe(item: dict[str, Any]) -> str:
    kind = item["type"]
    if kind == "case.opened":
        return f"opened: {item.get('kind') or '?'}" + (f" “{item['subject']}”" if item.get("subject") else "")
    if kind == "case.transferred":
        return f"transferred to {item['to']}" + (f" ({item['reason']})" if item.get("reason") else "")
    if kind == "case.note":
        return f"note: “{item.get('text', '')}”"
    if kind == "case.responded":
        said = f" {item['answer'].upper()}" if item.get("answer") else ""
        topic = f" on “{item['topic']}”" if item.get("topic") else ""
        return f"answered the customer{said}{topic}: “{item.get('text', '')}”"
    if kind == "case.resolved":
        return "resolved" + (f": {item['resolution']}" if item.get("resolution") else "")
    if kind == "case.reopened":
        return "reopened"
    return str(kind)


def _statement(side: dict[str, Any], zone: str) -> str:
    what = (f"promise {side['promise_id']} “{side['text']}”" if side["type"] == "promise.made"
            else f"“{side['text']}”")
    return (f"{side['answer'].upper():<4} {local(side['occurred_at'], zone)}  "
            f"{_by(side['department'], side['agent'])}: {what}")


def case_text(case: dict[str, Any]) -> list[str]:
    zone = case["customer"]["timezone"]
    cust = case["customer"]
    who = cust["customer_number"] or cust["customer_id"]
    subject = f" “{case['subject']}”" if case["subject"] else ""
    out = [f"Case {case['case_id']} · tracking key {case['tracking_key']} · {case['kind'] or '?'}{subject}",
           f"Customer {who}" + (f" · {cust['name']}" if cust["name"] else "")
           + f"  (times in the customer's local time, {zone})"]
    state = case["status"].upper()
    if case["overdue"]:
        state += f" · OVERDUE by {duration(case['overdue_s'])}"
    out.append(f"Status {state} · owner {case['owner_department'] or '-'} · departments "
               f"{' → '.join(department_words(d) for d in case['departments']) or '-'} · "
               f"{plural(case['transfers'], 'transfer')}")
    out += ["", "Clocks"]
    opened = case["opened_by"] or {}
    out.append(f"  opened         {local(case['opened_at'], zone)}"
               + (f"  by {_by(opened.get('department'), opened.get('agent'))}" if opened else ""))
    if case["answer_due_by"]:
        out.append(f"  answer due by  {local(case['answer_due_by'], zone)}  "
                   f"(complaints: {case['answer_days']} days)")
    first = case["first_response"]
    if first:
        verdict = {True: " (LATE)", False: " (on time)", None: ""}[case["answered_late"]]
        how = "response" if first["type"] == "case.responded" else "resolution"
        out.append(f"  first answer   {local(case['first_response_at'], zone)}  {how} by "
                   f"{_by(first.get('department'), first.get('agent'))}, after "
                   f"{duration(case['response_s'])}{verdict}")
    else:
        out.append("  first answer   - (not answered yet)")
    if case["resolved_at"]:
        out.append(f"  resolved       {local(case['resolved_at'], zone)}  after "
                   f"{duration(case['resolution_s'])}")
    else:
        out.append("  resolved       -")
    out.append(f"  age            {age(case['age_s'])}")
    if case["contradictions"]:
        out += ["", f"Contradictions ({len(case['contradictions'])}): departments told the customer "
                    "opposite things"]
        for c in case["contradictions"]:
            out.append(f"  on {('“' + c['topic'] + '”') if c['topic'] else 'the case itself'}:")
            out.append(f"    {_statement(c['yes'], zone)}")
            out.append(f"    {_statement(c['no'], zone)}")
    if case["promises"]:
        out += ["", "Promises on this case"]
        for p in case["promises"]:
            late = f"  OVERDUE {duration(p['overdue_s'])}" if p["overdue"] else ""
            out.append(f"  {p['promise_id']} “{p['what'] or '?'}” due {_due(p)} "
                       f"{p['status'].upper()}{late} · made by {_by(p['made_department'], p['made_agent'])}")
    history = case["history"]
    late_count = sum(1 for h in history if h["late"])
    out += ["", f"History ({len(history)} facts, by when they happened"
                + (f"; {late_count} recorded late, marked LATE" if late_count else "") + ")"]
    for h in history:
        mark = "LATE" if h["late"] else ""
        recorded = f"  (recorded {local(h.get('recorded_at'), zone)})" if h["late"] else ""
        out.append(f"  {local(h['occurred_at'], zone)}  {mark:<4}  "
                   f"{_by(h.get('department'), h.get('agent')):<28} {_describe(h)}{recorded}")
    return out


def promises_text(rows: list[dict[str, Any]], now: datetime | None) -> list[str]:
    overdue = sum(1 for r in rows if r["overdue"])
    at = _at(now)
    out = [f"{plural(len(rows), 'promise')}, {overdue} overdue {at} (times in each customer's local time)"]
    if not rows:
        return out
    lines = [[r["promise_id"], r["customer_number"] or r["customer_id"][:8],
              r["case_id"] or "-", r["what"] or "?", _due(r),
              r["status"] + (f" OVERDUE {duration(r['overdue_s'])}" if r["overdue"] else ""),
              _by(r["made_department"], r["made_agent"]),
              _by(r["closed_department"], r["closed_agent"]) if r["closed_at"] else "-"]
             for r in rows]
    headers = ["PROMISE", "CUSTOMER", "CASE", "WHAT", "DUE", "STATUS", "MADE BY", "CLOSED BY"]
    return [*out, "", *_table(headers, lines)]


# ----------------------------------------------------------------------------- commands


def cmd_cases(args: argparse.Namespace, journey: Journey) -> int:
    try:
        now = parse_now(args.now)
        days = answer_days(args.days, journey.settings.complaint_days)
        journey.project()
        customer_id = resolve_customer(journey, args.customer)
    except (UsageError, Unknown) as error:
        return _fail("cases", error)
    doc = list_cases(journey, now=now, days=days, open_only=args.open, overdue_only=args.overdue,
                     department=args.department, kind=args.kind, customer_id=customer_id,
                     status=args.status, page=page_of(args))
    if args.json:
        dump(doc)
    else:
        head, *table = cases_text(doc["cases"], now, days)
        part = shown(doc, len(doc["cases"]), "cases")
        print(printable_lines([head, *([f"  {part}"] if part else []), *table]))
    return 0


def cmd_case(args: argparse.Namespace, journey: Journey) -> int:
    try:
        now = parse_now(args.now)
        days = answer_days(args.days, journey.settings.complaint_days)
        journey.project()
        customer_id, case_id = find_case(journey, args.ref)
    except (UsageError, Unknown) as error:
        return _fail("case", error)
    doc = case_document(journey, customer_id, case_id, now, days)
    if args.json:
        dump(doc)
    else:
        print(printable_lines(case_text(doc)))
    return 0


def cmd_promises(args: argparse.Namespace, journey: Journey) -> int:
    try:
        now = parse_now(args.now)
        journey.project()
        customer_id = resolve_customer(journey, args.customer)
    except (UsageError, Unknown) as error:
        return _fail("promises", error)
    doc = list_promises(journey, now=now, open_only=args.open, overdue_only=args.overdue,
                        customer_id=customer_id, status=args.status, page=page_of(args))
    if args.json:
        dump(doc)
    else:
        head, *table = promises_text(doc["promises"], now)
        part = shown(doc, len(doc["promises"]), "promises")
        print(printable_lines([head, *([f"  {part}"] if part else []), *table]))
    return 0


def register(subparsers: Any, commands: dict[str, Callable[[argparse.Namespace, Journey], int]]) -> None:
    now_help = "the instant overdue and age are judged at (ISO 8601 with offset, or a date; default: now)"
    days_help = (f"days a complaint must be answered in (env {rules.COMPLAINT_DAYS_ENV}, "
                 f"default {rules.DEFAULT_COMPLAINT_DAYS})")
    p = subparsers.add_parser("cases", help="cases across departments: owner, status, clocks, overdue")
    p.add_argument("--open", action="store_true", help="only open cases")
    p.add_argument("--overdue", action="store_true",
                   help="only open complaints not answered by their deadline")
    p.add_argument("--department", help="only cases this department owns")
    p.add_argument("--kind", choices=catalogue.CASE_KINDS)
    p.add_argument("--customer", help="only this customer's (+34..., @handle, e-mail, C-number...)")
    p.add_argument("--now", help=now_help)
    p.add_argument("--status", choices=CASE_STATES,
                   help="only cases in this state (overdue: open complaints past their deadline)")
    p.add_argument("--days", type=int, help=days_help)
    add_paging(p, "cases")
    p.add_argument("--json", action="store_true")
    commands["cases"] = cmd_cases

    p = subparsers.add_parser("case", help="one case: clocks, contradictions and its full history")
    p.add_argument("ref", help="the case id (K-2041) or the customer's tracking key (K7F3Q-92QDX)")
    p.add_argument("--now", help=now_help)
    p.add_argument("--days", type=int, help=days_help)
    p.add_argument("--json", action="store_true")
    commands["case"] = cmd_case

    p = subparsers.add_parser("promises", help="promises departments made, kept, broken or overdue")
    p.add_argument("--open", action="store_true", help="only open promises")
    p.add_argument("--overdue", action="store_true", help="only open promises past their due date")
    p.add_argument("--customer", help="only this customer's (+34..., @handle, e-mail, C-number...)")
    p.add_argument("--status", choices=PROMISE_STATES,
                   help="only promises in this state (unkept: broken, or open past their due date)")
    p.add_argument("--now", help=now_help)
    add_paging(p, "promises")
    p.add_argument("--json", action="store_true")
    commands["promises"] = cmd_promises
