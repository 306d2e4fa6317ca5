"""A customer's view state, built from their ``events`` rows when somebody reads it.

The projection keeps no folded view per customer: the rows are the state. A reader (the
console, the API, the CLI, the change feed) gets the same state the fold of
``projections.customer_view`` gives, because the rows are taken in the order the fold sorts
its sections by (when it happened, then store position): any recording order, batch split or
merge gives the same rows, so the same view. Merge markers are taken in log order, as the
ledger wrote them. A forgotten customer's rows hold nothing personal: their view is the
tombstone, with the counts kept when they were forgotten (``tombstones``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import duckdb
import orjson

from projections import customer_view
from projections.customer_view import View

#: What a fact's entry and the fold need, per row; ``recorded_at`` as Python's isoformat of
#: the stored instant (microseconds left out when there are none, as ``isoformat`` does).
_SELECT = """
    SELECT customer_id, position, event_id, type, occurred_local,
           CASE WHEN epoch_us(recorded_at) % 1000000 = 0
                THEN strftime(recorded_at AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S')
                ELSE strftime(recorded_at AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S.%f') END
           || '+00:00' AS recorded,
           source, source_id, department, agent, channel, ref, data
    FROM events WHERE customer_id IN (SELECT unnest(?::VARCHAR[]))
    ORDER BY customer_id, occurred_at, position"""

ONE = _SELECT.replace("IN (SELECT unnest(?::VARCHAR[]))", "= ?")
#: :data:`ONE` with what a timeline row shows besides (one query for a customer's document).
WITH_TIMELINE = ONE.replace(
    "ref, data\n    FROM events",
    "ref, data, strftime(recorded_at AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S.%fZ'),\n"
    "           purpose, campaign, case_id, lag_s\n    FROM events")

MARKERS = ("customer.merged", "customer.unmerged")


def build(con: duckdb.DuckDBPyConnection, customer_ids: Sequence[str],
          quarantined: Mapping[str, list[int]] | None = None) -> dict[str, View]:
    """The view states of these customers; a customer without rows is not returned, unless
    known by facts the projection set aside (a prospect's view with their marks).

    ``quarantined``: customer -> store positions of their facts the projection set aside."""
    if not customer_ids:
        return {}
    views = _held(customer_ids, quarantined)
    if len(customer_ids) == 1:  # an equality the index answers (IN over a list scans)
        rows = con.execute(ONE, [customer_ids[0]]).fetchall()
    else:
        rows = con.execute(_SELECT, [list(customer_ids)]).fetchall()
    tombstones = _tombstones(con, {r[0] for r in rows if r[3] == "customer.forgotten"})
    start = 0
    for end in range(1, len(rows) + 1):
        if end == len(rows) or rows[end][0] != rows[start][0]:
            cid = rows[start][0]
            mine = rows[start:end]
            view = (_tombstone(cid, mine, tombstones[cid]) if cid in tombstones else fold(cid, mine))
            marks = (quarantined or {}).get(cid)
            if marks:
                view["quarantined"] = sorted(marks)
            views[cid] = view
            start = end
    return views


def build_one(con: duckdb.DuckDBPyConnection, customer_id: str,
              quarantined: Mapping[str, list[int]] | None = None
              ) -> tuple[View | None, list[tuple[Any, ...]]]:
    """One customer's view state and their rows as :data:`WITH_TIMELINE` reads them (the
    timeline is made of the same rows: one query, not two)."""
    rows = con.execute(WITH_TIMELINE, [customer_id]).fetchall()
    if not rows:
        return _held_only(customer_id, quarantined), rows
    if any(r[3] == "customer.forgotten" for r in rows):
        kept = _tombstones(con, {customer_id}).get(customer_id)
        view = _tombstone(customer_id, rows, kept) if kept else fold(customer_id, rows)
    else:
        view = fold(customer_id, rows)
    marks = (quarantined or {}).get(customer_id)
    if marks:
        view["quarantined"] = sorted(marks)
    return view, rows


def _held(customer_ids: Sequence[str], quarantined: Mapping[str, list[int]] | None) -> dict[str, View]:
    """The views of records known only by facts the projection set aside: a prospect's, with
    the marks (replaced below for every record that has rows)."""
    views: dict[str, View] = {}
    for cid in customer_ids:
        view = _held_only(cid, quarantined)
        if view is not None:
            views[cid] = view
    return views


def _held_only(customer_id: str, quarantined: Mapping[str, list[int]] | None) -> View | None:
    marks = (quarantined or {}).get(customer_id)
    if not marks:
        return None
    return {**customer_view.new_view(customer_id), "quarantined": sorted(marks)}


def fold(customer_id: str, rows: Sequence[tuple[Any, ...]]) -> View:
    view = customer_view.new_view(customer_id)
    apply, entry_of = customer_view.apply, customer_view.entry_of
    markers: list[tuple[int, str, str]] = []
    for (_, position, event_id, kind, occurred, recorded, source, source_id, department, agent,
         channel, ref, data, *_) in rows:
        fact: dict[str, Any] = {
            "type": kind, "event_id": event_id, "occurred_at": occurred, "source": source,
            "id": source_id, "customer": orjson.loads(ref) if ref else {},
            "data": orjson.loads(data) if data else {},
        }
        if department is not None:
            fact["department"] = department
        if agent is not None:
            fact["agent"] = agent
        if kind in MARKERS and isinstance(fact["data"].get("from"), str):
            markers.append((position, kind, fact["data"]["from"]))
        apply(view, fact, entry_of(fact, position, recorded), channel)
    view["merged_from"] = merged_from(markers)
    return view


def merged_from(markers: list[tuple[int, str, str]]) -> list[str]:
    """The records merged into a customer and not split off again: the merge markers among
    their rows, in log order (a merge adds its record, an unmerge takes it out)."""
    joined: set[str] = set()
    for _, kind, record in sorted(markers):
        if kind == "customer.merged":
            joined.add(record)
        else:
            joined.discard(record)
    return sorted(joined)


def _tombstone(customer_id: str, rows: Sequence[tuple[Any, ...]], kept: dict[str, Any]) -> View:
    """A forgotten customer's state: the counts of their rows (public columns), the bounds of
    their story, and what was kept when they were forgotten; nothing personal."""
    view = customer_view.new_view(customer_id)
    counts = view["counts"]
    for (_, position, _, kind, occurred, _, _, _, department, _, channel, *_) in rows:
        counts["events"] += 1
        _bump(counts["by_type"], kind)
        if channel:
            _bump(counts["by_channel"], channel)
        if department is not None:
            _bump(counts["by_department"], department)
        view["position"] = max(view["position"], position)
        if kind in (*MARKERS, "customer.forgotten"):
            continue
        at = customer_view.utc_key(occurred)
        if view["first_seen"] is None or at < view["first_seen"]:
            view["first_seen"] = at
        if view["last_seen"] is None or at > view["last_seen"]:
            view["last_seen"] = at
    view["merged_from"] = list(kept["merged_from"])
    view["forgotten"] = True
    view["forgotten_at"] = kept["forgotten_at"]
    view["kept"] = {k: kept[k] for k in customer_view.KEPT}
    view["identities"] = {}
    return view


def _bump(counter: dict[str, int], key: str) -> None:
    counter[key] = counter.get(key, 0) + 1


TOMBSTONE_COLUMNS = ("customer_id", "forgotten_at", "merged_from", *customer_view.KEPT)


def _tombstones(con: duckdb.DuckDBPyConnection, ids: set[str]) -> dict[str, dict[str, Any]]:
    if not ids:
        return {}
    rows = con.execute(f"SELECT {', '.join(TOMBSTONE_COLUMNS)} FROM tombstones "
                       "WHERE customer_id IN (SELECT unnest(?::VARCHAR[]))", [sorted(ids)]).fetchall()
    return {r[0]: dict(zip(TOMBSTONE_COLUMNS, r, strict=True)) for r in rows}
