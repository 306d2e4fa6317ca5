"""``journey forget REF --reason R``: erase a customer (GDPR art. 17) by crypto-shredding.

Exit 0 forgotten (or already forgotten), 2 bad usage, 3 nobody known by the reference.
See docs/privacy.md for what it does and does not do.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

import orjson

from journey.bootstrap import Journey

Command = Callable[[argparse.Namespace, Journey], int]


def register(subparsers: Any, commands: dict[str, Command]) -> None:
    p = subparsers.add_parser("forget", help="erase a customer (GDPR art. 17): destroy their keys")
    p.add_argument("ref", help="+34..., @handle, e-mail, customer number, ledger id, or kind:value")
    p.add_argument("--reason", required=True,
                   help="why (recorded in clear: write no personal data here)")
    p.add_argument("--no-project", action="store_true", help="do not bring the projections up to date")
    p.add_argument("--json", action="store_true")
    commands["forget"] = cmd_forget


def cmd_forget(args: argparse.Namespace, journey: Journey) -> int:
    from domain.errors import InvalidFact
    from journey.references import reference_key

    try:
        key = reference_key(args.ref)
    except InvalidFact as error:
        print(f"journey forget: {error}", file=sys.stderr)
        return 2
    if not args.reason.strip():
        print("journey forget: --reason must not be empty", file=sys.stderr)
        return 2
    result = journey.ledger.forget(key, args.reason.strip())
    if result is None:
        print(f"journey forget: nobody known as {args.ref!r} ({key})", file=sys.stderr)
        return 3
    if not args.no_project:
        journey.project()
    out = {"customer_id": str(result.customer_id), "already_forgotten": result.already,
           "records": [str(r) for r in result.records], "forgotten_at": result.forgotten_at}
    if args.json:
        sys.stdout.write(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode() + "\n")
    elif result.already:
        print(f"customer {result.customer_id} was already forgotten")
    else:
        print(f"customer {result.customer_id} forgotten: {len(result.records)} key(s) destroyed; "
              "their events stay, unreadable")
    return 0
