"""``journey merge`` and ``journey unmerge``: two records are one person, or a merge was wrong.

Both record an ordinary fact (``customer.merged`` / ``customer.unmerged``, docs/events.md,
built by journey/usecases/identity.py), so a merge is as auditable as a call: who did it, from
which department, why. The same facts can be sent as JSON Lines; these commands only save
typing. A merge shows both records (names, identities) and asks before it joins them; ``--yes``
answers for a script, and without a terminal to ask at it refuses rather than wait.
Exit codes: 0 recorded, 1 refused (the reason is printed: a record nobody is known by, a merge
not confirmed), 2 bad usage (a malformed reference; no terminal to confirm at and no --yes).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from domain.errors import InvalidFact
from journey.bootstrap import Journey
from journey.cli.kinds import Command
from journey.cli.output import confirm, dump, plural
from journey.cli.textview import printable, say
from journey.usecases import identity

#: How each kind of identity reads in a confirmation.
KIND_WORDS = {"customer_id": "customer number", "national_id": "national id", "email": "e-mail",
              "phone": "phone", "twitter": "Twitter/X"}


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
        if name == "merge":
            p.add_argument("--yes", action="store_true",
                           help="do not show the two records and ask (for scripts)")
            p.add_argument("--check", action="store_true", help=argparse.SUPPRESS)
        commands[name] = cmd_merge


def described(record: identity.Record) -> str:
    """One line a person checks a record by: number, name, identities, how much it holds."""
    idents = [f"{KIND_WORDS.get(kind, kind.replace('_', ' '))} {value}" for kind, value in record.identities
              if not (kind == "customer_id" and value == record.customer_number)]
    who = record.name or ("(forgotten)" if record.forgotten else "(no name recorded)")
    number = record.customer_number or f"ledger id {record.customer_id}"
    return " · ".join([f"{number}  {who}", *idents, plural(record.events, "event")])


def cmd_merge(args: argparse.Namespace, journey: Journey) -> int:
    if args.command == "merge":
        checked = _confirm_merge(args, journey)
        if checked is not None or getattr(args, "check", False):
            return checked or 0
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


def _confirm_merge(args: argparse.Namespace, journey: Journey) -> int | None:
    """None to go on with the merge; else the exit code: a reference that names nobody (each
    one named), a merge not confirmed, or no terminal to confirm at without --yes."""
    try:
        keep, other = identity.records(journey, [("REF", args.ref), ("OTHER", args.other)])
    except InvalidFact as error:
        print(f"journey merge: {error}", file=sys.stderr)
        return 2
    except identity.UnknownRecords as unknown:
        named = ", nor as ".join(f"{ref!r} ({role})" for role, ref in unknown.unknown)
        print(printable(f"journey merge: refused: nobody is known as {named}; nothing recorded"),
              file=sys.stderr)
        return 1
    if args.yes or keep.customer_id == other.customer_id:  # the same record: the ledger says so
        return None
    lines = ["Merge these two records into one person?",
             f"  keep        {described(keep)}",
             f"  merge in    {described(other)}"]
    if keep.name and other.name and keep.name.casefold() != other.name.casefold():
        lines.append(f"  Their names differ ({keep.name} / {other.name}): check they are the same person.")
    return confirm(args, journey.settings, lines, f"Merge {args.other} into {args.ref}?")
