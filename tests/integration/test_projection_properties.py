"""Properties of the write path and the projections, on real SQLite and DuckDB files."""

from __future__ import annotations

import random
import re
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from journey.bootstrap import Journey
from projections.duckdb_store import ProjectionStore
from tests.ledgers import append, open_journey, strip, tables, views
from tests.strategies import fact_lists

#: Real SQLite and DuckDB files, on a RAM disk where there is one: every batch commits and
#: fsyncs twice, and the properties are about results, not about the disk.
FAST_DIR = "/dev/shm" if Path("/dev/shm").is_dir() else None

PROPERTY = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _run(facts: list[dict[str, Any]], batch_size: int, project_every_batch: bool = True,
         ) -> tuple[dict[str, Any], dict[str, Any], Journey, tempfile.TemporaryDirectory[str]]:
    tmp = tempfile.TemporaryDirectory(dir=FAST_DIR)
    journey = open_journey(Path(tmp.name))
    for start in range(0, len(facts), batch_size):
        append(journey, facts[start:start + batch_size], batch_size=batch_size)
        if project_every_batch:
            journey.project()
    journey.project()
    return views(journey), tables(journey), journey, tmp


@PROPERTY
@given(facts=fact_lists(), batch=st.integers(1, 7))
def test_rebuilding_from_empty_equals_the_incremental_projection(facts: list[dict[str, Any]], batch: int) -> None:
    _, incremental, journey, tmp = _run(facts, batch)
    try:
        rebuilt = ProjectionStore(Path(tmp.name) / "rebuilt.duckdb")
        live = journey.projections
        journey._projections = rebuilt
        journey.project()
        assert tables(journey) == incremental
        rebuilt.close()
        journey._projections = live
    finally:
        journey.close()
        tmp.cleanup()


@PROPERTY
@given(facts=fact_lists(), data=st.data())
def test_reingesting_with_duplicates_interleaved_changes_nothing(facts: list[dict[str, Any]], data: st.DataObject) -> None:
    _, before, journey, tmp = _run(facts, 5)
    try:
        head = journey.app.recorder.max_notification_id()
        replay = list(facts)
        for fact in data.draw(st.lists(st.sampled_from(facts), max_size=10)):
            replay.insert(data.draw(st.integers(0, len(replay))), fact)
        summary = append(journey, replay, batch_size=data.draw(st.integers(1, 9)))
        journey.project()
        assert summary.recorded == 0 and not summary.rejected
        assert summary.duplicates == len(replay)
        assert journey.app.recorder.max_notification_id() == head
        assert tables(journey) == before
    finally:
        journey.close()
        tmp.cleanup()


@PROPERTY
@given(facts=fact_lists(), batch=st.integers(1, 9), project_every_batch=st.booleans())
def test_splitting_the_input_into_batches_anywhere_gives_the_same_views(
        facts: list[dict[str, Any]], batch: int, project_every_batch: bool) -> None:
    one_batch, _, j1, t1 = _run(facts, len(facts))
    split, _, j2, t2 = _run(facts, batch, project_every_batch)
    try:
        assert strip(split) == strip(one_batch)
    finally:
        for j, t in ((j1, t1), (j2, t2)):
            j.close()
            t.cleanup()


@PROPERTY
@given(facts=fact_lists(), seed=st.integers(0, 2**32))
def test_interleaving_customers_in_any_order_gives_the_same_views(facts: list[dict[str, Any]], seed: int) -> None:
    shuffled = _interleave(facts, random.Random(seed))
    original, _, j1, t1 = _run(facts, 4)
    other, _, j2, t2 = _run(shuffled, 4)
    try:
        assert strip(other) == strip(original)
    finally:
        for j, t in ((j1, t1), (j2, t2)):
            j.close()
            t.cleanup()


def _interleave(facts: list[dict[str, Any]], rng: random.Random) -> list[dict[str, Any]]:
    """Another merge of the per-person sequences: each person's own order is kept."""
    per_person: dict[str, list[dict[str, Any]]] = {}
    for fact in facts:
        person = _person_of(fact)
        per_person.setdefault(person, []).append(fact)
    queues = list(per_person.values())
    out = []
    while queues:
        queue = rng.choice(queues)
        out.append(queue.pop(0))
        if not queue:
            queues.remove(queue)
    return out


def _person_of(fact: dict[str, Any]) -> str:
    value = next(iter(fact["customer"].values()))
    return re.findall(r"\d", value)[-1]  # C-3, +34600000003, @person3, p3@example.com: person 3
