"""``journey merge`` and ``journey unmerge``: two records are one person, or a merge was wrong.

Both record an ordinary fact (``customer.merged`` / ``customer.unmerged``, docs/events.md,
built by journey/usecases/identity.py), so a merge is as auditable as a call: who did it, from
which department, why. The same facts can be sent as JSON Lines; these commands only save
typing. Exit codes: 0 recorded, 1 refused (the reason is printed), 2 bad usage.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from domain.errors import InvalidFact
from journey.bootstrap import Journey
from journey.cli.kinds import Command
from journey.cli.output import dump
from journey.cli.textview import printable, say
from journey.usecases import identity


def register(subparsers: Any, commands: dict[str, Command]) -> None:
    for name, what in (("merge", "record that OTHER is the same person as REF"),
                       ("unmerge", "undo a wrong merge of OTHER into REF")):
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
        commands[name] = cmd_merge


def cmd_merge(args: argparse.Namespace, journey: Journey) -> int:
    try:
        done = identity.change(journey, args.command, args.ref, args.other, args.reason,
                               department=args.department, agent=args.agent, at=args.at)
    except InvalidFact as error:
        print(f"journey {args.command}: {error}", file=sys.stderr)
        return 2
    if args.json:
        dump({"recorded": done.recorded, "refused": done.refused, "fact": done.fact})
    elif done.refused:
        print(printable(f"journey {args.command}: refused: {done.refused[0]}"), file=sys.stderr)
    else:
        how = "merged into" if args.command == "merge" else "split off from"
        say(f"{args.other} {how} {args.ref} ({args.reason})")
    return 1 if done.refused else 0
