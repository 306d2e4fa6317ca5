"""``journey merge`` and ``journey unmerge``: two records are one person, or a merge was wrong.

Both record an ordinary fact (``customer.merged`` / ``customer.unmerged``, docs/events.md), so a
merge is as auditable as a call: who did it, from which department, why. The same facts can be
sent as JSON Lines; these commands only save typing. Exit codes: 0 recorded, 1 refused (the
reason is printed), 2 bad usage.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from domain.errors import InvalidFact
from journey.bootstrap import Journey
from journey.cli.textview import printable, say
from journey.references import reference_key

Command = Callable[[argparse.Namespace, Journey], int]


def register(subparsers: Any, commands: dict[str, Command]) -> None:
    for name, kind, what in (("merge", "customer.merged", "record that OTHER is the same person as REF"),
                             ("unmerge", "customer.unmerged", "undo a wrong merge of OTHER into REF")):
        p = subparsers.add_parser(name, help=what)
        p.add_argument("ref", metavar="REF",
                       help="the surviving record (+34..., e-mail, @handle, C-1, ledger id)")
        other = " (its customer number or ledger id)" if name == "unmerge" else ""
        p.add_argument("other", metavar="OTHER", help="the other record" + other)
        p.add_argument("--reason", required=True, help="why (kept in the ledger)")
        p.add_argument("--department", help="who decided it")
        p.add_argument("--agent")
        p.add_argument("--at", help="when it was decided (ISO 8601 with offset; default now)")
        p.add_argument("--json", action="store_true")
        p.set_defaults(fact_type=kind)
        commands[name] = cmd_merge


def reference(ref: str) -> dict[str, str]:
    """A reference object (the ``customer`` field of a fact) from what a person types."""
    kind, _, value = reference_key(ref).partition(":")
    return {"customer_id" if kind == "ledger" else kind: value}


def cmd_merge(args: argparse.Namespace, journey: Journey) -> int:
    try:
        survivor, other = reference(args.ref), reference(args.other)
    except InvalidFact as error:
        print(f"journey {args.command}: {error}", file=sys.stderr)
        return 2
    at = args.at or datetime.now(UTC).isoformat(timespec="seconds")
    fact: dict[str, Any] = {
        "type": args.fact_type, "source": "journey-cli",
        "id": f"{args.command}:{reference_key(args.ref)}:{reference_key(args.other)}:{at}",
        "customer": survivor, "occurred_at": at, "data": {"from": other, "reason": args.reason},
    }
    for name in ("department", "agent"):
        if getattr(args, name):
            fact[name] = getattr(args, name)
    summary = journey.record([fact])
    refused = [r.reason for r in summary.rejected]
    if args.json:
        sys.stdout.write(orjson.dumps({"recorded": summary.recorded, "refused": refused,
                                       "fact": fact}, option=orjson.OPT_INDENT_2).decode() + "\n")
    elif refused:
        print(printable(f"journey {args.command}: refused: {refused[0]}"), file=sys.stderr)
    else:
        done = "merged into" if args.command == "merge" else "split off from"
        say(f"{args.other} {done} {args.ref} ({args.reason})")
    return 1 if refused else 0
