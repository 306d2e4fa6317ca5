"""``journey inbox`` and ``journey warranty``: the social desk's and the stores' questions.

The documents come from journey/usecases/service.py (the HTTP API asks the same functions);
the rules and the JSON output are in docs/inbox-and-warranty.md. This module parses the flags
and renders the text.

Exit codes: 0 done; 2 bad usage (a bad --now or --at); 3 ``warranty`` was given something that
is neither a known serial number nor a known customer.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import date
from typing import Any

from domain import catalogue
from domain.errors import InvalidFact
from journey.bootstrap import Journey
from journey.cli.output import dump, plural
from journey.cli.paging import add_paging, page_of, shown
from journey.cli.textview import printable_lines, when
from journey.usecases.service import inbox, warranty

NO_DEPARTMENT = "(unassigned)"


def duration(seconds: float | None) -> str:
    """``93784`` -> ``1d 02h``; ``3900`` -> ``1h 05m``; ``75`` -> ``1m 15s``."""
    if seconds is None:
        return "-"
    s = round(seconds)
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {s:02d}s"
    return f"{s}s"


# ----------------------------------------------------------------------------- inbox


def _stats_table(title: str, key: str, groups: list[dict[str, Any]]) -> list[str]:
    out = ["", title, f"  {key:<20} {'answered':>8} {'waiting':>8} {'median':>9} {'p90':>9}"]
    for g in groups:
        label = g[key] or NO_DEPARTMENT
        out.append(f"  {label:<20} {g['answered']:>8} {g['waiting']:>8} "
                   f"{duration(g['median_s']):>9} {duration(g['p90_s']):>9}")
    if not groups:
        out.append("  no mentions")
    return out


def render_inbox(doc: dict[str, Any]) -> str:
    waiting = doc["waiting"]
    scope = "every mention" if doc["all"] else "mentions to the brand"
    if doc["network"]:
        scope += f" on {doc['network']}"
    out = [f"Social inbox ({scope}), as of {doc['now']}: {doc['total']} waiting for an answer"]
    part = shown(doc, len(waiting), "waiting mentions")
    if part:
        out.append(f"  {part}")
    for m in waiting:
        who = " ".join(str(x) for x in (m["customer_number"], m["name"]) if x) or "prospect"
        case = f"  [case {m['case_id']}]" if m["case_id"] else ""
        out.append(f"  {when(m['occurred_at'])}  waiting {duration(m['age_s']):>8}  "
                   f"{m['network']} {m['handle'] or '?'} ({who}): “{(m['text'] or '')[:60]}”{case}")
    out += _stats_table("First response by network", "network", doc["by_network"])
    out += _stats_table("First response by department (waiting: the department the mention was "
                        "routed to)", "department", doc["by_department"])
    o = doc["overall"]
    out += ["", f"Overall: {o['answered']} answered (median {duration(o['median_s'])}, "
            f"p90 {duration(o['p90_s'])}), {o['waiting']} waiting "
            f"(oldest {duration(o['oldest_waiting_s'])})"]
    return printable_lines(out)


def cmd_inbox(args: argparse.Namespace, journey: Journey) -> int:
    now = None
    if args.now:
        try:
            now = catalogue.parse_instant(args.now, "--now").isoformat()
        except InvalidFact as error:
            print(f"journey inbox: {error}", file=sys.stderr)
            return 2
    doc = inbox(journey, now=now, network=args.network, everything=args.all, page=page_of(args))
    if args.json:
        dump(doc)
    else:
        print(render_inbox(doc))
    return 0


# ----------------------------------------------------------------------------- warranty


def _who(row: dict[str, Any]) -> str:
    return " ".join(str(x) for x in (row.get("customer_number"), row.get("name")) if x) or str(
        row.get("customer_id"))


def render_warranty(doc: dict[str, Any]) -> str:
    at = doc["at"]
    if doc["kind"] == "serial":
        out = [f"Serial {doc['query'].strip()} (warranty as of {at})"]
        if not doc["products"]:
            out.append("  no purchase of this serial is recorded")
    else:
        out = [f"Customer {_who(doc['customer'])}: {plural(len(doc['products']), 'product')} "
               f"(warranty as of {at})"]
    for p in doc["products"]:
        state = "IN WARRANTY" if p["in_warranty"] else "not in warranty"
        serial = f" serial {p['serial']}" if p["serial"] else ""
        price = f" · {p['price']:.2f}" if p["price"] is not None else ""
        invoice = f"invoice {p['invoice']}" if p["invoice"] else "no invoice on record (not needed)"
        out.append(f"  {p['product']}{serial} bought by {_who(p)} on {when(p['purchased_at'])}"
                   f"{(' at ' + p['store']) if p['store'] else ''}{price} · {invoice}")
        out.append(f"      warranty {p['warranty_months']} months, until {p['warranty_ends']}: {state}")
    out += ["", f"Warranty claims: {len(doc['claims'])}"]
    for c in doc["claims"]:
        flags = f"  [{', '.join(c['flags'])}]" if c["flags"] else ""
        ends = f" (warranty until {c['warranty_ends']})" if c["warranty_ends"] else ""
        decided = (f", decided {when(c['decided_at'])}: {c['reason'] or '-'}"
                   if c["decided_at"] else "")
        out.append(f"  {c['claim_id']} {c['serial'] or '?'} by {_who(c)} filed "
                   f"{when(c['filed_at'])}: {c['issue'] or '-'} · {c['status'].upper()}{decided}"
                   f"{ends}{flags}")
    return printable_lines(out)


def cmd_warranty(args: argparse.Namespace, journey: Journey) -> int:
    try:
        at = date.fromisoformat(args.at) if args.at else date.today()
    except ValueError:
        print(f"journey warranty: --at {args.at!r} is not a date like 2026-05-01", file=sys.stderr)
        return 2
    doc = warranty(journey, args.query, at)
    if doc is None:
        print(f"journey warranty: no product with serial {args.query!r} and nobody known as "
              f"{args.query!r}", file=sys.stderr)
        return 3
    if args.json:
        dump(doc)
    else:
        print(render_warranty(doc))
    return 0


def register(subparsers: Any, commands: dict[str, Callable[[argparse.Namespace, Journey], int]]) -> None:
    p = subparsers.add_parser(
        "inbox", help="social mentions waiting for an answer, and first-response times")
    p.add_argument("--network", help="only this network (twitter, instagram, ...)")
    p.add_argument("--all", action="store_true",
                   help="every mention, also those not addressed to a brand account")
    p.add_argument("--now", help="the instant to measure ages at, ISO 8601 with offset "
                                 "(default: now); later facts are left out")
    add_paging(p, "waiting mentions")
    p.add_argument("--json", action="store_true")
    commands["inbox"] = cmd_inbox

    p = subparsers.add_parser(
        "warranty", help="a serial number's purchase, warranty and claims, or a customer's")
    p.add_argument("query", metavar="SERIAL|REF",
                   help="a serial number, or +34..., @handle, e-mail, customer number, ledger id")
    p.add_argument("--at", help="the day to judge 'in warranty' at (YYYY-MM-DD, default today)")
    p.add_argument("--json", action="store_true")
    commands["warranty"] = cmd_warranty
