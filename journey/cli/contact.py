"""``journey can-contact``, ``journey violations`` and ``journey exclusions import``.

The contact policy (domain/contact_policy.py, docs/contact-policy.md) asked from the command
line: may we contact this person now, which past contacts broke the policy, and the exclusion
lists the policy reads. The answers come from journey/usecases/contact.py (the HTTP API asks
the same functions); this module parses the flags and prints. Exit codes of can-contact: 0
allowed, 4 denied, 3 unknown customer, 2 bad usage (a bad reference, instant or policy file).
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Callable
from typing import Any

from domain.contact_policy import CHANNELS, PURPOSES, REASON_CODES, channel_words, department_words
from journey.bootstrap import Journey
from journey.cli.output import dump
from journey.cli.paging import add_paging, page_of, shown
from journey.cli.textview import say, when
from journey.usecases.contact import (
    ContactQuestionError,
    ExclusionImportError,
    RecordError,
    UnknownCustomer,
    contact_decision,
    import_exclusions,
    record_decision,
    violations,
)

EXIT_DENIED = 4
#: Lines per table of the violations summary (the JSON has every one).
SUMMARY_ROWS = 10


def cmd_can_contact(args: argparse.Namespace, journey: Journey) -> int:
    try:
        answer = contact_decision(journey, args.ref, channel=args.channel, purpose=args.purpose,
                                  at=args.at, campaign=args.campaign, policy=args.policy)
    except UnknownCustomer as error:
        print(f"journey can-contact: {error}", file=sys.stderr)
        return 3
    except ContactQuestionError as error:
        print(f"journey can-contact: {error}", file=sys.stderr)
        return 2
    decision = answer.decision
    if args.record:
        try:
            event_id = record_decision(journey, answer, channel=args.channel, purpose=args.purpose,
                                       campaign=args.campaign)
        except RecordError as error:
            print(f"journey can-contact: {error}", file=sys.stderr)
            return 1
        print(f"journey can-contact: decision recorded as contact.decided {event_id}", file=sys.stderr)
    if args.json:
        dump(decision.to_json())
    else:
        verdict = "ALLOWED" if decision.allowed else "DENIED"
        campaign = f", campaign {args.campaign}" if args.campaign else ""
        say(f"{verdict}: {args.purpose} contact by {args.channel} with {args.ref} at "
            f"{when(answer.at.isoformat())}{campaign}")
        for reason in decision.reasons:
            say(f"  ✗ [{reason.code}] {reason.message}")
        say(f"  (policy {decision.policy_version}, history as of position "
            f"{decision.as_of_position})")
    return 0 if decision.allowed else EXIT_DENIED


def cmd_violations(args: argparse.Namespace, journey: Journey) -> int:
    try:
        doc = violations(journey, since=args.since, policy=args.policy, department=args.department,
                         channel=args.channel, rule=args.rule, page=page_of(args))
    except ContactQuestionError as error:
        print(f"journey violations: {error}", file=sys.stderr)
        return 2
    if args.json:
        dump(doc)
    elif args.all or args.limit is not None or args.offset:
        violations_list(doc)
    else:
        violations_summary(doc)
    return 0


def _headline(doc: dict[str, Any]) -> str:
    versions = ", ".join(doc["policy_versions"])
    narrowed = [f"{k} {doc[k]}" for k in ("department", "channel", "rule") if doc[k]]
    return (f"{doc['total']:,} of {doc['checked']:,} contacts broke the contact policy (versions "
            f"{versions}, each contact judged by the version in force then)"
            + (f" since {doc['since']}" if doc["since"] else "")
            + (f"; only {', '.join(narrowed)}" if narrowed else ""))


def _as_is(code: str | None) -> str:
    return code or "-"


#: How a summary's rows name a department, a channel, a campaign: in words.
_SUMMARY_WORDS: dict[str, Callable[[str | None], str]] = {
    "department": lambda code: department_words(code) if code else "no department",
    "channel": lambda code: channel_words(code) if code else "no channel",
    "campaign": lambda code: code or "no campaign",
}


def violations_summary(doc: dict[str, Any]) -> None:
    """What ``journey violations`` prints without ``--all``: the counts a person reads first."""
    summary = doc["summary"]
    say(_headline(doc))
    if not doc["total"]:
        return
    for title, rows, key in (("By rule (a contact that broke two rules counts under both)",
                              summary["by_rule"], "rule"),
                             ("By department", summary["by_department"], "department"),
                             ("By channel", summary["by_channel"], "channel"),
                             ("By campaign", summary["by_campaign"], "campaign")):
        say("", title)
        top = rows[:SUMMARY_ROWS]
        words = _SUMMARY_WORDS.get(key, _as_is)
        width = max(len(words(r[key])) for r in top)
        for r in top:
            say(f"  {words(r[key]):<{width}}  {r['violations']:>7,}")
        if len(rows) > len(top):
            rest = sum(r["violations"] for r in rows[len(top):])
            say(f"  and {len(rows) - len(top):,} more {key}s with {rest:,}")
    worst = summary["worst_customers"]
    say("", f"The {len(worst)} customers with the most (of {summary['customers']:,} with any)")
    width = max(len(c["customer_number"] or c["customer_id"]) for c in worst)
    for c in worst:
        say(f"  {c['customer_number'] or c['customer_id']:<{width}}  {c['violations']:>7,}  "
            f"last {when(c['last_at'])}")
    say("", "Every violation: journey violations --all (--limit N --offset N for a part); "
            "narrow with --department, --channel or --rule; --json for machines")


def violations_list(doc: dict[str, Any]) -> None:
    """Every violation of the page, grouped per department and campaign (``--all``)."""
    found = doc["violations"]
    say(_headline(doc))
    part = shown(doc, len(found), "violations")
    if part:
        say(part)
    for (department, campaign), group in itertools.groupby(
            found, key=lambda v: (v["department"], v["campaign"])):
        items = list(group)
        say("", f"{department or '(no department)'} · campaign {campaign or '-'}: {len(items)}")
        for v in items:
            who = v["customer_number"] or v["customer_id"]
            codes = ", ".join(r["code"] for r in v["reasons"])
            say(f"  {when(v['occurred_at'])}  {v['type']} {v['purpose']} to {who} "
                f"by {v['agent'] or '?'}: {codes}")
            for r in v["reasons"]:
                say(f"      - {r['message']}")


def cmd_exclusions(args: argparse.Namespace, journey: Journey) -> int:
    try:
        done = import_exclusions(journey, args.file, args.as_of)
    except ExclusionImportError as error:
        print(f"journey exclusions import: {error}", file=sys.stderr)
        return 2
    summary = done.summary
    if args.json:
        dump(done.to_json())
    else:
        print(f"imported {summary.imported}, duplicates {summary.duplicates}, "
              f"rejected {len(summary.rejected)} (list applies from {done.as_of.isoformat()}; "
              f"{done.entries} entries in all)")
        for n, why, text in summary.rejected[:10]:
            print(f"  line {n}: {why}: {text!r}", file=sys.stderr)
    return 1 if summary.rejected else 0


def register(subparsers: Any, commands: dict[str, Callable[[argparse.Namespace, Journey], int]]) -> None:
    p = subparsers.add_parser(
        "can-contact", help="may we contact this person now? (exit 0 allowed, 4 denied, 3 unknown)")
    p.add_argument("ref", help="+34..., @handle, e-mail, customer number, ledger id, or kind:value")
    p.add_argument("--channel", required=True, choices=CHANNELS)
    p.add_argument("--purpose", required=True, choices=PURPOSES)
    p.add_argument("--at", help="the instant, ISO 8601 with offset (default: now)")
    p.add_argument("--campaign", help="the campaign (for its cool-down after a refusal)")
    p.add_argument("--record", action="store_true",
                   help="record the decision in the ledger (a contact.decided event)")
    p.add_argument("--policy", help="policy file (env JOURNEY_POLICY, default journey/contact-policy.toml)")
    p.add_argument("--json", action="store_true")
    commands["can-contact"] = cmd_can_contact

    p = subparsers.add_parser(
        "violations", help="past contacts that broke the contact policy: a summary, or --all")
    p.add_argument("--since", help="only contacts from this date (or ISO instant) on")
    p.add_argument("--all", action="store_true",
                   help="list every violation (default: counts by rule, department and channel, "
                        "and the customers with the most)")
    p.add_argument("--department", help="only contacts this department made")
    p.add_argument("--channel", choices=CHANNELS, help="only contacts on this channel")
    p.add_argument("--rule", choices=REASON_CODES,
                   help="only contacts that broke this rule (a reason code)")
    add_paging(p, "violations")
    p.add_argument("--policy", help="policy file (env JOURNEY_POLICY, default journey/contact-policy.toml)")
    p.add_argument("--json", action="store_true")
    commands["violations"] = cmd_violations

    p = subparsers.add_parser("exclusions", help="exclusion lists the contact policy reads")
    sub = p.add_subparsers(dest="exclusions_command", required=True)
    imp = sub.add_parser("import", help="import a list: one phone, e-mail or SHA-256 hex per line")
    imp.add_argument("file")
    imp.add_argument("--as-of", required=True, help="the date the list applies from (YYYY-MM-DD)")
    imp.add_argument("--json", action="store_true")
    commands["exclusions"] = cmd_exclusions
