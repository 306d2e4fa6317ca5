"""``journey greetings``: customers to remember kindly this week (birthdays, purchase anniversaries).

The plan comes from journey/usecases/greetings.py (the rules are pure, in
projections/greetings.py); this module parses the flags, prints, and says what ``--record``
recorded. See docs/greetings-and-addresses.md. Exit codes: 0 done, 2 bad usage, 1 letters not
recorded.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from journey.bootstrap import Journey
from journey.cli.output import dump, plural
from journey.cli.textview import printable, say
from journey.usecases.greetings import GreetingsQuestionError, plan_greetings
from projections import greetings


def cmd_greetings(args: argparse.Namespace, journey: Journey) -> int:
    try:
        planned = plan_greetings(journey, start=args.start, days=args.days, per_year=args.per_year,
                                 channel=args.channel, policy=args.policy, record=args.record)
    except GreetingsQuestionError as error:
        print(f"journey greetings: {error}", file=sys.stderr)
        return 2
    code = 0
    summary = planned.recorded
    if summary is not None:
        if summary.rejected:
            code = 1
        print(f"journey greetings: recorded {plural(summary.recorded, 'greeting')} as sent, "
              f"{summary.duplicates} already recorded, {len(summary.rejected)} rejected", file=sys.stderr)
        for r in summary.rejected:
            print(printable(f"  greeting {r.line}: {r.reason}"), file=sys.stderr)
    if args.json:
        dump(planned.doc)
    else:
        _print(planned.plan, planned.doc)
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
