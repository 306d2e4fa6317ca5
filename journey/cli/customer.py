"""``journey customer REF``: one customer's unified view, now or as of an instant.

Exit codes: 0 shown; 2 a reference that cannot name anyone, or a bad --limit; 3 nobody is
known by it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from domain.errors import InvalidFact
from journey.bootstrap import Journey
from journey.cli.output import Ticker, dump, project_progress
from journey.cli.textview import render_text
from journey.references import reference_key
from journey.usecases import customers


def register(sub: Any, commands: dict[str, Callable[[argparse.Namespace, Journey], int]]) -> None:
    p = sub.add_parser("customer", help="the unified view of one customer")
    p.add_argument("ref", help="+34..., @handle, e-mail, customer number, ledger id, or kind:value")
    p.add_argument("--limit", type=int, default=None,
                   help="show at most N timeline events (the oldest; with --as-of/--occurred-by also "
                        "at most N late facts, from the fold checkpoint of a long history)")
    when = p.add_mutually_exclusive_group()
    when.add_argument("--as-of", metavar="T",
                      help="the view as the company knew it at T (facts recorded by T), from the store")
    when.add_argument("--occurred-by", metavar="T",
                      help="what had happened by T (occurred by T, even if recorded later), from the store")
    p.add_argument("--source", choices=("store", "kafka"), default="store",
                   help="with --as-of/--occurred-by: read the event store (default) or journey.events, "
                        "seeking by time")
    p.add_argument("--bootstrap", help="with --source kafka (env KAFKA_BOOTSTRAP)")
    p.add_argument("--topic", help="with --source kafka (env JOURNEY_EVENTS_TOPIC)")
    p.add_argument("--json", action="store_true")

    commands["customer"] = cmd_customer


def cmd_customer(args: argparse.Namespace, journey: Journey) -> int:
    try:
        key = reference_key(args.ref)
    except InvalidFact as error:
        print(f"journey customer: {error}", file=sys.stderr)
        return 2
    if args.limit is not None and args.limit < 1:
        print(f"journey customer: --limit must be at least 1 (got {args.limit})", file=sys.stderr)
        return 2
    if args.as_of or args.occurred_by:
        from journey.cli.replay import cmd_customer_at

        return cmd_customer_at(args, journey, key)
    view = customers.customer(journey, args.ref, timeline_limit=args.limit,
                              on_progress=project_progress(Ticker("project")))
    if view is None:
        print(f"journey customer: nobody known as {args.ref!r} ({key})", file=sys.stderr)
        return 3
    if args.json:
        dump(view)
    else:
        print(render_text(view, view["timeline"]))
    return 0
