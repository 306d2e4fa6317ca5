"""The as-of views' fast store reader (replay/fact_reader.py) gives what the plain path gives.

The plain path here is the one every projection trusts: each record's facts decoded through
the mapper (``history_of``), the cut applied to the decoded facts, and the fold and timeline
written out as ``replay.asof`` built them before the fast path existed. Histories are random,
with merges, unmerges, a forgotten customer, late facts and facts whose public data carries
keys named like the times the reader looks for in the stored bytes.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from domain import catalogue
from ledger.application import StoredFact, history_of
from projections import customer_view
from replay import asof, fact_reader
from tests.ledgers import append, open_journey
from tests.strategies import fact_lists

FAST_DIR = "/dev/shm" if Path("/dev/shm").is_dir() else None
PROPERTY = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

#: Public data fields that put the reader's search keys into the stored bytes elsewhere.
DECOYS = [
    {"occurred_at": "1999-01-01T00:00:00+00:00"},
    {"timestamp": "2099-01-01T00:00:00+00:00"},
    {"note": '"occurred_at":"1999-01-01T00:00:00+00:00"'},
    {"note": '"timestamp":"1999-01-01T00:00:00+00:00" and \\"occurred_at\\"'},
]


def merge(n: int, kind: str, survivor: str, other: str) -> dict[str, Any]:
    return {"type": kind, "id": f"m-{n}", "source": "crm", "customer": {"customer_id": survivor},
            "occurred_at": f"2026-01-{n % 28 + 1:02d}T12:30:00+01:00", "department": "crm",
            "data": {"from": {"customer_id": other}, "reason": "test"}}


@st.composite
def stories(draw: st.DrawFn) -> tuple[list[list[dict[str, Any]]], str | None]:
    """Batches of facts (with merge/unmerge markers and decoys) and whom to forget at the end."""
    facts = draw(fact_lists(max_size=25))
    for fact in facts:
        if draw(st.integers(0, 5)) == 0:
            fact["data"] = {**fact["data"], **draw(st.sampled_from(DECOYS))}
    people = [f"C-{i}" for i in range(1, 5)]
    for n in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["customer.merged", "customer.unmerged"]))
        survivor, other = draw(st.permutations(people))[:2]
        facts.insert(draw(st.integers(0, len(facts))), merge(n, kind, survivor, other))
    cuts = sorted(draw(st.lists(st.integers(0, len(facts)), max_size=3)))
    batches = [facts[i:j] for i, j in zip([0, *cuts], [*cuts, len(facts)], strict=True) if facts[i:j]]
    forget = draw(st.sampled_from([None, *people]))
    return batches, forget


def plain_json(customer_id: str, axis: str, at: datetime, facts: list[StoredFact],
               late: list[StoredFact]) -> dict[str, Any]:
    """``AsOf.to_json`` as written before the fast path (fold, render, timeline)."""
    view = customer_view.new_view(customer_id)
    for sf in facts:
        fact = catalogue.upcast(sf.fact)
        entry = customer_view.entry_of(fact, sf.position, sf.recorded_at.isoformat())
        customer_view.apply(view, fact, entry, catalogue.channel_of(fact))
    late_positions = {sf.position for sf in late}
    rows = []
    for sf in sorted(facts, key=lambda s: (asof.occurred_at(s), s.position)):
        fact = catalogue.upcast(sf.fact)
        data = fact.get("data", {})
        rows.append({
            "position": sf.position, "event_id": fact["event_id"], "type": fact["type"],
            "occurred_at": fact["occurred_at"], "recorded_at": sf.recorded_at.isoformat(),
            "source": fact["source"], "source_id": fact["id"],
            "department": fact.get("department"), "agent": fact.get("agent"),
            "channel": catalogue.channel_of(fact), "purpose": data.get("purpose"),
            "campaign": data.get("campaign"), "case_id": data.get("case_id"),
            "data": data, "late": sf.position in late_positions,
        })
    return {
        **customer_view.render(view, now=at),
        "as_of": {"axis": axis, "at": at.isoformat(), "facts": len(facts),
                  "through_position": max((sf.position for sf in facts), default=0)},
        "recorded_late": [{"event_id": sf.fact["event_id"], "type": sf.fact["type"],
                           "position": sf.position, "occurred_at": sf.fact["occurred_at"],
                           "recorded_at": sf.recorded_at.isoformat()} for sf in late],
        "timeline": rows,
    }


def recorded_by(at: datetime) -> Callable[[StoredFact], bool]:
    return lambda sf: sf.recorded_at <= at


def occurred_by(at: datetime) -> Callable[[StoredFact], bool]:
    return lambda sf: asof.occurred_at(sf) <= at


def up_to(position: int) -> Callable[[StoredFact], bool]:
    return lambda sf: sf.position <= position


@PROPERTY
@given(story=stories(), data=st.data())
def test_the_fast_reader_gives_the_plain_paths_view_at_any_cut(
        story: tuple[list[list[dict[str, Any]]], str | None], data: st.DataObject) -> None:
    batches, forget = story
    with tempfile.TemporaryDirectory(dir=FAST_DIR) as tmp:
        journey = open_journey(Path(tmp))
        try:
            for batch in batches:
                append(journey, batch, batch_size=len(batch))
            shredded = None if forget is None else asof.resolve(journey.app, f"customer_id:{forget}")
            if forget is not None:
                journey.ledger.forget(f"customer_id:{forget}", "test")
            app = journey.app
            assert fact_reader.reader(app, fact_reader.Cut("position")) is not None  # not the fallback
            with app.recorder.datastore.transaction(commit=False) as c:  # type: ignore[attr-defined]
                c.execute("SELECT customer_id FROM journey_customers ORDER BY customer_id")
                records = [str(UUID(r[0])) for r in c.fetchall()]
            read = history_of(app)
            everything = [sf for r in records for sf in read(r)]
            occurred = [datetime.fromisoformat(sf.fact["occurred_at"]) for sf in everything]
            recorded = [sf.recorded_at for sf in everything]
            tiny = timedelta(microseconds=1)
            chosen = data.draw(st.lists(st.sampled_from(records), min_size=1, max_size=3, unique=True))
            for customer_id in [*chosen, *([shredded] if shredded and shredded not in chosen else [])]:
                axis = data.draw(st.sampled_from(["occurred", "recorded"]))
                moments = occurred if axis == "occurred" else recorded
                at = data.draw(st.sampled_from(moments)) + data.draw(st.sampled_from([-tiny, timedelta(0), tiny]))
                at = at.astimezone(UTC)
                if axis == "recorded":
                    facts = asof.gather(app, customer_id, recorded_by(at), read)
                    late: list[StoredFact] = []
                else:
                    facts = asof.gather(app, customer_id, occurred_by(at), read)
                    late = [sf for sf in facts if sf.recorded_at > at]
                fast = asof.as_of(app, customer_id, at, axis)  # type: ignore[arg-type]
                event(f"{axis}: {'some' if facts else 'no'} facts kept, {len(late)} late, "
                      f"{'merged ' if {'customer.merged', 'customer.unmerged'} & {sf.fact['type'] for sf in facts} else ''}"
                      f"{'forgotten' if any(sf.fact.get('erased') for sf in facts) else ''}")
                assert fast.facts == facts
                assert fast.to_json() == plain_json(customer_id, axis, at, facts, late)
                positions = [sf.position for sf in everything] or [0]
                position = data.draw(st.sampled_from(positions)) + data.draw(st.integers(-1, 1))
                assert asof.through_position(app, customer_id, position) == asof.gather(
                    app, customer_id, up_to(position), read)
        finally:
            journey.close()


def test_a_time_is_read_from_the_stored_bytes_only_when_it_cannot_be_another_key() -> None:
    find = fact_reader._stored_string
    key = b'"occurred_at":"'
    assert find(b'{"fact":{"occurred_at":"2026-01-01T10:00:00+01:00","data":{}}}', key) == \
        "2026-01-01T10:00:00+01:00"
    # Another key of that name, anywhere: decode the state instead.
    assert find(b'{"fact":{"occurred_at":"2026-01-01T10:00:00+01:00","data":{"occurred_at":"x"}}}',
                key) is None
    # Inside a string the quotes are escaped: not a key, not counted.
    assert find(b'{"fact":{"occurred_at":"2026-01-01","data":{"n":"\\"occurred_at\\":\\"x"}}}',
                key) == "2026-01-01"
