"""What the routing step writes on a routed fact's headers, read by the router and the writers.

``journey.route.seq`` is the order the router read the facts in; ``journey.route.after`` lists
the positions on other routed partitions (``"<partition>:<offset>,..."``) that touched the same
records first and must be stored before this fact is written (consumers/routing.py).
"""

from __future__ import annotations

from collections.abc import Iterable

H_SEQ = "journey.route.seq"
H_AFTER = "journey.route.after"
ROUTE_HEADERS = (H_SEQ, H_AFTER)

Headers = Iterable[tuple[str, bytes]] | None


def parse_after(headers: Headers) -> dict[int, int]:
    """The positions a routed fact waits for, ``{partition: offset}`` (empty for most facts).

    A header the router did not write (garbled, or sent by another producer) is ignored rather
    than stopping the worker: a wait only orders writes, and the writer still decides each one
    (a write out of order costs a redone batch, never a wrong record)."""
    for name, value in headers or ():
        if name == H_AFTER:
            waits: dict[int, int] = {}
            try:
                for item in value.decode("ascii").split(","):
                    partition, _, offset = item.partition(":")
                    p, o = int(partition), int(offset)
                    if p < 0 or o < 0:
                        return {}
                    waits[p] = max(waits.get(p, -1), o)
            except (UnicodeDecodeError, ValueError):
                return {}
            return waits
    return {}


def after_header(after: dict[int, int]) -> tuple[str, bytes]:
    return H_AFTER, ",".join(f"{p}:{o}" for p, o in sorted(after.items())).encode("ascii")


def seq_of(headers: Headers) -> int:
    """The routing order of a routed fact (-1 for a record without one)."""
    for name, value in headers or ():
        if name == H_SEQ:
            try:
                return int(value)
            except ValueError:
                return -1
    return -1
