"""``journey inbox`` and ``journey warranty``: the social desk's and the stores' questions.

Both read the derived tables of projections/inbox.py (``mentions``) and projections/warranty.py
(``products``, ``warranty_claims``); the rules and the JSON output are in
docs/inbox-and-warranty.md. Anything that depends on *now* (a mention's age, whether a product
is in warranty today) is computed here, at query time, never stored.

Exit codes: 0 done; 2 bad usage (a bad --now or --at); 3 ``warranty`` was given something that
is neither a known serial number nor a known customer.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any

from domain import catalogue
from domain.errors import InvalidFact
from journey.bootstrap import Journey
from journey.cli.output import dump
from journey.cli.textview import printable_lines, when
from journey.references import reference_key
from projections.warranty import serial_key

NO_DEPARTMENT = "(unassigned)"



def _query(journey: Journey, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    # fetchall, never fetchone: DuckDB 2 refuses further work on a half-read result.
    cursor = journey.projections.con.execute(sql, list(params))
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


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

_SCOPE = """
    SELECT m.*, epoch(n.now) - epoch(m.occurred_at) AS age_s,
           (m.replied_at IS NOT NULL AND m.replied_at <= n.now) AS answered
    FROM mentions m, (SELECT coalesce(?::TIMESTAMPTZ, now()) AS now) n
    WHERE m.occurred_at <= n.now AND (? OR m.to_brand) AND (?::VARCHAR IS NULL OR lower(m.network) = lower(?))
"""

_STATS = """
    count(*) FILTER (WHERE answered) AS answered,
    count(*) FILTER (WHERE NOT answered) AS waiting,
    quantile_cont(response_s, 0.5) FILTER (WHERE answered) AS median_s,
    quantile_cont(response_s, 0.9) FILTER (WHERE answered) AS p90_s,
    max(age_s) FILTER (WHERE NOT answered) AS oldest_waiting_s
"""


def inbox(journey: Journey, now: str | None = None, network: str | None = None,
          everything: bool = False) -> dict[str, Any]:
    """The inbox as ``journey inbox --json`` prints it (see docs/inbox-and-warranty.md)."""
    journey.project()
    scope = [now, everything, network, network]
    clock = _query(journey, "SELECT strftime(coalesce(?::TIMESTAMPTZ, now()) AT TIME ZONE 'UTC', "
                   "'%Y-%m-%dT%H:%M:%SZ') AS now", [now])[0]["now"]
    waiting = _query(journey, f"""
        SELECT s.mention_id, s.event_id, s.network, coalesce(s.handle, c.twitter) AS handle,
               s.to_account AS "to", s.text, s.occurred_local AS occurred_at, s.age_s,
               s.customer_id, c.customer_number, c.name, s.department, s.case_id, s.case_status,
               s.source
        FROM ({_SCOPE}) s LEFT JOIN customers c USING (customer_id)
        WHERE NOT s.answered ORDER BY s.occurred_at, s.event_id""", scope)
    by_network = _query(journey, f"""
        SELECT network, {_STATS} FROM ({_SCOPE}) s
        GROUP BY network ORDER BY network NULLS LAST""", scope)
    # Answered mentions count for the department that replied; waiting ones for the
    # department the mention itself was routed to (if its source says so).
    by_department = _query(journey, f"""
        SELECT CASE WHEN answered THEN reply_department ELSE department END AS department,
               {_STATS}
        FROM ({_SCOPE}) s GROUP BY 1 ORDER BY 1 NULLS LAST""", scope)
    overall = _query(journey, f"SELECT {_STATS} FROM ({_SCOPE}) s", scope)[0]
    return {
        "now": clock,
        "as_of_position": journey.projections.position(),
        "network": network,
        "all": everything,
        "waiting": waiting,
        "by_network": by_network,
        "by_department": by_department,
        "overall": overall,
    }


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
    out = [f"Social inbox ({scope}), as of {doc['now']}: {len(waiting)} waiting for an answer"]
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
    doc = inbox(journey, now=now, network=args.network, everything=args.all)
    if args.json:
        dump(doc)
    else:
        print(render_inbox(doc))
    return 0


# ----------------------------------------------------------------------------- warranty

_PRODUCTS = """
    SELECT p.serial, p.product, p.store, p.purchased_local AS purchased_at,
           p.warranty_months, strftime(p.warranty_ends, '%Y-%m-%d') AS warranty_ends,
           (?::DATE BETWEEN p.purchased_on AND p.warranty_ends) AS in_warranty,
           p.invoice, p.price, p.customer_id, c.customer_number, c.name, p.event_id,
           p.purchase_id, p.source, p.department, p.agent
    FROM products p LEFT JOIN customers c USING (customer_id)
    WHERE {where} ORDER BY p.purchased_at, p.event_id
"""

_CLAIMS = """
    SELECT w.claim_id, w.serial, w.product, w.issue, w.status, w.flags,
           w.filed_local AS filed_at, strftime(w.warranty_ends, '%Y-%m-%d') AS warranty_ends,
           w.in_warranty AS in_warranty_when_filed, w.decided_local AS decided_at, w.approved,
           w.reason, w.customer_id, c.customer_number, c.name, w.filed_department,
           w.filed_agent, w.decided_department, w.decided_agent
    FROM warranty_claims w LEFT JOIN customers c USING (customer_id)
    WHERE {where} ORDER BY w.filed_at NULLS LAST, w.decided_at, w.claim_id
"""


def warranty(journey: Journey, query: str, at: date) -> dict[str, Any] | None:
    """What ``journey warranty QUERY --json`` prints; None when QUERY is nothing known.

    QUERY is first looked up as a serial number (in ``products``, then in ``warranty_claims``:
    a claim for a serial nobody bought is still worth showing); when no row has it, as a
    customer reference (+34..., @handle, e-mail, customer number, ledger id, kind:value).
    """
    journey.project()
    day = at.isoformat()
    key = serial_key(query)
    products = _query(journey, _PRODUCTS.format(where="p.serial_key = ?"), [day, key])
    claims = _query(journey, _CLAIMS.format(where="w.serial_key = ?"), [key])
    if products or claims:
        return {"query": query, "kind": "serial", "serial_key": key, "at": day, "customer": None,
                "as_of_position": journey.projections.position(),
                "products": products, "claims": claims}
    try:
        customer_id = journey.projections.resolve(reference_key(query))
    except InvalidFact:
        return None
    if customer_id is None:
        return None
    customer = _query(journey, "SELECT customer_id, customer_number, name FROM customers "
                      "WHERE customer_id = ?", [customer_id])
    return {"query": query, "kind": "customer", "serial_key": None, "at": day,
            "customer": customer[0] if customer else {"customer_id": customer_id,
                                                      "customer_number": None, "name": None},
            "as_of_position": journey.projections.position(),
            "products": _query(journey, _PRODUCTS.format(where="p.customer_id = ?"),
                               [day, customer_id]),
            "claims": _query(journey, _CLAIMS.format(where="w.customer_id = ?"), [customer_id])}


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
        out = [f"Customer {_who(doc['customer'])}: {len(doc['products'])} product(s) "
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
    p.add_argument("--json", action="store_true")
    commands["inbox"] = cmd_inbox

    p = subparsers.add_parser(
        "warranty", help="a serial number's purchase, warranty and claims, or a customer's")
    p.add_argument("query", metavar="SERIAL|REF",
                   help="a serial number, or +34..., @handle, e-mail, customer number, ledger id")
    p.add_argument("--at", help="the day to judge 'in warranty' at (YYYY-MM-DD, default today)")
    p.add_argument("--json", action="store_true")
    commands["warranty"] = cmd_warranty
