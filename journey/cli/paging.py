"""``--limit`` and ``--offset`` for the commands that print lists (cases, promises, inbox,
violations), read the way the HTTP API reads ``limit`` and ``offset`` (journey/usecases/paging.py).

Without ``--limit`` a command prints every row: scripts reading ``--json`` get the whole list,
as they always did; the flags are for taking it a page at a time.
"""

from __future__ import annotations

import argparse
from typing import Any

from journey.usecases.paging import Page


def _count(minimum: int, what: str) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is {what}")
        return value
    return parse


def add_paging(parser: argparse.ArgumentParser, rows: str) -> None:
    parser.add_argument("--limit", type=_count(1, "not a number of rows (at least 1)"),
                        help=f"at most this many {rows} (default: all of them)")
    parser.add_argument("--offset", type=_count(0, "negative (the first row is offset 0)"),
                        default=0, help=f"skip this many {rows} first (default 0)")


def page_of(args: argparse.Namespace) -> Page:
    return Page(offset=args.offset, limit=args.limit)


def shown(doc: dict[str, Any], rows: int, noun: str) -> str | None:
    """``rows 101-200 of 2,412 cases (--offset 200 for the next)`` when the document is a
    part of its list; None when it holds all of it."""
    total, offset = doc["total"], doc["offset"]
    if offset == 0 and rows == total:
        return None
    if not rows:
        return f"no {noun} from offset {offset}: there are {total:,}"
    more = (f" (--offset {offset + rows} for the next)" if offset + rows < total else "")
    return f"{noun} {offset + 1:,}-{offset + rows:,} of {total:,}{more}"
