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
    """The positions a routed fact waits for, ``{partition: offset}`` (empty for most facts)."""
    for name, value in headers or ():
        if name == H_AFTER:
            waits: dict[int, int] = {}
            for item in value.decode("ascii").split(","):
                partition, _, offset = item.partition(":")
                waits[int(partition)] = max(waits.get(int(partition), -1), int(offset))
            return waits
    return {}


def after_header(after: dict[int, int]) -> tuple[str, bytes]:
    return H_AFTER, ",".join(f"{p}:{o}" for p, o in sorted(after.items())).encode("ascii")


def seq_of(headers: Headers) -> int:
    """The routing order of a routed fact (-1 for a record without one)."""
    for name, value in headers or ():
        if name == H_SEQ:
            return int(value)
    return -1
