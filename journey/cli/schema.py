"""``journey schema [TYPE]``: the JSON Schema of the facts a source may send.

It is for machines: the schema alone is printed on standard output, as JSON, with or without
``--json`` (accepted as every command accepts it); nothing is printed on standard error. The
same document is docs/schema/facts.schema.json. It needs no ledger and opens none.
Exit codes: 0 printed; 2 no such input type.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from journey.cli.output import dump
from journey.usecases.schema import UnknownType, fact_schema


def register(sub: Any) -> None:
    p = sub.add_parser("schema", help="the JSON Schema of the facts a source may send (no ledger needed)")
    p.add_argument("type", nargs="?", help="one input type, like call.outbound (default: every type)")
    p.add_argument("--json", action="store_true", help="the schema as JSON (what is printed anyway)")


def cmd_schema(args: argparse.Namespace) -> int:
    try:
        doc = fact_schema(args.type)
    except UnknownType as unknown:
        print(f"journey schema: {unknown}", file=sys.stderr)
        return 2
    dump(doc)
    return 0
