"""``journey forget REF --reason R``: erase a customer (GDPR art. 17) by crypto-shredding.

An erasure cannot be undone: it shows who the reference names and asks first; ``--yes``
answers for a script, and without a terminal to ask at it refuses rather than wait.
Exit 0 forgotten (or already forgotten), 1 not confirmed, 2 bad usage (no terminal to confirm
at and no --yes included), 3 nobody known by the reference.
What is cleaned besides the event store is journey/usecases/erasure.py's; docs/privacy.md says what it
does and does not reach.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from domain.errors import InvalidFact
from journey.bootstrap import Journey
from journey.cli.identity import described
from journey.cli.kinds import Command
from journey.cli.output import confirm, dump, plural
from journey.references import reference_key
from journey.usecases import identity
from journey.usecases.erasure import forget


def register(subparsers: Any, commands: dict[str, Command]) -> None:
    p = subparsers.add_parser("forget", help="erase a customer (GDPR art. 17): destroy their keys")
    p.add_argument("ref", help="+34..., @handle, e-mail, customer number, ledger id, or kind:value")
    p.add_argument("--reason", required=True,
                   help="why (recorded in clear: write no personal data here)")
    p.add_argument("--no-project", action="store_true",
                   help="do not bring the projections up to date (the process that holds them will)")
    p.add_argument("--yes", action="store_true",
                   help="do not show who is erased and ask (for scripts)")
    p.add_argument("--check", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--json", action="store_true")
    commands["forget"] = cmd_forget


def cmd_forget(args: argparse.Namespace, journey: Journey) -> int:
    try:
        key = reference_key(args.ref)
    except InvalidFact as error:
        print(f"journey forget: {error}", file=sys.stderr)
        return 2
    if not args.reason.strip():
        print("journey forget: --reason must not be empty", file=sys.stderr)
        return 2
    if not args.yes:
        checked = _confirm(args, journey, key)
        if checked is not None or getattr(args, "check", False):
            return checked or 0
    erasure = forget(journey, key, args.reason.strip(), project=not args.no_project, warn=_warn)
    if erasure is None:
        print(f"journey forget: nobody known as {args.ref!r} ({key})", file=sys.stderr)
        return 3
    result = erasure.result
    if args.json:
        dump(erasure.to_json())
        return 0
    if result.already:
        print(f"customer {result.customer_id} was already forgotten")
    else:
        print(f"customer {result.customer_id} forgotten: {plural(len(result.records), 'key')} destroyed; "
              "their events stay, unreadable")
    for path, lines in erasure.rejects.items():
        print(f"  rejects: {plural(lines, 'line')} naming them redacted in {path}")
    for directory in erasure.rebuilds:
        print(f"  deleted {directory} (a rebuild that held them; run journey replay rebuild again)")
    for path, rows in erasure.partitions.items():
        print(f"  Kafka projection {path}: {plural(rows, 'row')} of records merged into them deleted")
    if erasure.snapshot == "refreshed":
        print("  analyst snapshot exported again without them")
    elif erasure.snapshot == "requested":
        print("  analyst snapshot: an export is requested (journey serve picks it up; "
              "or run journey export)")
    if not erasure.projected:
        print("  projections not updated here: the process that holds them applies the forget "
              "when it follows the ledger")
    return 0


def _confirm(args: argparse.Namespace, journey: Journey, key: str) -> int | None:
    """None to go on with the erasure; else the exit code: nobody known, not confirmed, or no
    terminal to confirm at. Somebody already forgotten is not asked about again (a repeated
    forget only redoes the cleaning). With --no-project the projections are not brought up
    to date here, so the person is shown by the reference alone."""
    found: identity.Record | None = None
    if not args.no_project:
        found = identity.record(journey, args.ref)
        if found is None:
            print(f"journey forget: nobody known as {args.ref!r} ({key})", file=sys.stderr)
            return 3
        if found.forgotten:
            return None
    who = described(found) if found is not None else f"whoever {args.ref} names ({key})"
    lines = ["Erase this person's personal data for good (GDPR art. 17)?", f"  {who}",
             "  Their keys are destroyed: no one can read their personal data again; their events "
             "stay, unreadable."]
    return confirm(args, journey.settings, lines, f"Forget {args.ref}?")


def _warn(text: str) -> None:
    print(f"journey forget: {text}", file=sys.stderr)
