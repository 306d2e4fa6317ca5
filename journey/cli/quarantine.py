"""``journey quarantine``: the stored facts the projection set aside, and applying them again.

``journey quarantine`` lists every entry in log order (position, reader, type, customer,
reason); ``journey quarantine retry`` applies them again once the ledger or the code is
corrected, and removes those that now go in. Exit 0; ``retry`` exits 1 when facts remain
quarantined, so a script can tell a fix that worked from one that did not.
"""

from __future__ import annotations

import argparse
from typing import Any

from journey.bootstrap import Journey
from journey.cli.kinds import Command
from journey.cli.output import dump
from journey.usecases import quarantine


def register(subparsers: Any, commands: dict[str, Command]) -> None:
    p = subparsers.add_parser(
        "quarantine", help="stored facts the projection could not handle; retry applies them again")
    p.add_argument("action", nargs="?", choices=("list", "retry"), default="list",
                   help="list (default) or retry: apply them again after a fix")
    p.add_argument("--json", action="store_true")
    commands["quarantine"] = cmd_quarantine


def cmd_quarantine(args: argparse.Namespace, journey: Journey) -> int:
    if args.action == "retry":
        return _retry(args, journey)
    entries = quarantine.quarantined(journey)
    if args.json:
        dump({"quarantined": len(entries), "entries": [e.to_json() for e in entries]})
        return 0
    if not entries:
        print("nothing quarantined")
        return 0
    print(f"{len(entries)} quarantined (the views are built without them; "
          "`journey quarantine retry` after a fix):")
    for e in entries:
        print(f"  position {e.position:<10} {e.reader:<11} {e.type or '?':<24} "
              f"customer {e.customer_id or '?'}  {e.reason}")
    return 0


def _retry(args: argparse.Namespace, journey: Journey) -> int:
    result = quarantine.retry(journey)
    if args.json:
        dump({"applied": result.applied, "gone": result.gone,
               "remaining": [e.to_json() for e in result.remaining]})
    else:
        print(f"applied {len(result.applied)}, still quarantined {len(result.remaining)}"
              + (f", no longer in the store {len(result.gone)}" if result.gone else ""))
        for e in result.remaining:
            print(f"  position {e.position:<10} {e.reason}")
    return 1 if result.remaining else 0
