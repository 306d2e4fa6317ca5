"""Which records a projection may fold apart from the rest of the log.

A projection folds each fact into its owner's view, and that fold is order-insensitive
within a view (projections/customer_view.py). Only merges and unmerges tie records together:
they move facts and aliases between records, so the records they touch must see their facts
in log order. A catch-up may therefore read a long stretch of the log record group by record
group (each view built from all its facts at once, instead of being unpacked and packed again
in every chunk that touches it), as long as every record a merge ties together is in one
group. The groups come from the store's current merges (``journey_customers.merged_into``); a
merge undone later is not among them, and the projection notices when a fact needs a record
outside its group and falls back to log order (``projections.duckdb_store.LogOrderNeeded``).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from uuid import UUID


def components(links: Iterable[tuple[str, str]]) -> dict[str, str]:
    """record -> the root of its group, for every record in a link (others are their own root).

    ``links`` are (record, record it was merged into): union-find with path halving."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while (up := parent.get(x, x)) != x:
            grand = parent.get(up, up)
            parent[x] = grand
            x = grand
        return x

    for record, into in links:
        a, b = find(record), find(into)
        if a != b:
            parent[a] = b
    return {record: find(record) for record in list(parent)}


def grouped(rows: Iterable[tuple[int, str]], roots: dict[str, str]) -> array[int]:
    """Positions of ``rows`` (position, record; in log order) in group order: the groups by
    their first position, each group's positions ascending."""
    by_group: dict[str, list[int]] = {}
    for position, record in rows:
        root = roots.get(record, record)
        members = by_group.get(root)
        if members is None:
            by_group[root] = [position]
        else:
            members.append(position)
    ordered: array[int] = array("q")
    for positions in by_group.values():
        ordered.extend(positions)
    return ordered


def as_ids(roots: dict[str, str]) -> dict[str, str]:
    """The groups keyed as facts name records (a UUID's canonical text, not 32 hex digits)."""
    return {str(UUID(record)): str(UUID(root)) for record, root in roots.items()}
