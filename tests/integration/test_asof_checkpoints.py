"""Paged as-of documents from fold checkpoints (replay/asof_checkpoints.py) are the documents
folding every fact gives.

The reference is ``plain_json`` (test_asof_fast_path.py: the fold, render and timeline written
out as they were before any fast path) over the facts the mapper decodes, cut to the same page.
Stories append facts in batches and ask for views between batches, so checkpoints are made
mid-story, then see facts arrive after them (late uploads too), get rebuilt, meet merges and a
forgotten customer. The thresholds are lowered so that small stories have checkpoints.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock
from uuid import UUID

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from benchmarks.bench import heavy_customer
from journey.bootstrap import Journey
from ledger.application import StoredFact, history_of
from replay import asof, asof_checkpoints
from tests.integration.test_asof_fast_path import FAST_DIR, PROPERTY, plain_json, stories
from tests.ledgers import append, open_journey


@contextmanager
def low_thresholds(min_facts: int = 2, snapshots: int = 3, rebuild_after: int = 4) -> Iterator[None]:
    with mock.patch.multiple(asof_checkpoints, MIN_FACTS=min_facts, SNAPSHOTS=snapshots,
                             REBUILD_AFTER=rebuild_after):
        yield


def reference(journey: Journey, customer_id: str, at: datetime, axis: str, limit: int,
              oldest: bool) -> dict[str, Any] | None:
    read = history_of(journey.app)
    if axis == "recorded":
        facts = asof.gather(journey.app, customer_id, lambda sf: sf.recorded_at <= at, read)
        late: list[StoredFact] = []
    else:
        facts = asof.gather(journey.app, customer_id, lambda sf: asof.occurred_at(sf) <= at, read)
        late = [sf for sf in facts if sf.recorded_at > at]
    if not facts:
        return None
    return asof.paged(plain_json(customer_id, axis, at, facts, late), limit, oldest)


def records(journey: Journey) -> list[str]:
    with journey.app.recorder.datastore.transaction(commit=False) as c:  # type: ignore[attr-defined]
        c.execute("SELECT customer_id FROM journey_customers ORDER BY customer_id")
        return [str(UUID(r[0])) for r in c.fetchall()]


def moments(journey: Journey, axis: str) -> list[datetime]:
    read = history_of(journey.app)
    facts = [sf for r in records(journey) for sf in read(r)]
    if axis == "occurred":
        return [datetime.fromisoformat(sf.fact["occurred_at"]) for sf in facts]
    return [sf.recorded_at for sf in facts]


def checkpointed(journey: Journey) -> set[str]:
    files = asof_checkpoints.checkpoint_file(journey.app)
    assert files is not None
    return {r[0] for r in files.con.execute("SELECT customer_id FROM checkpoints")}


def viewed(journey: Journey, customer_id: str, at: datetime) -> asof_checkpoints.CheckpointFile:
    """The checkpoint file after one paged view of ``customer_id`` at ``at``."""
    asof.document(journey.app, customer_id, at, "occurred", 5)
    files = asof_checkpoints.checkpoint_file(journey.app)
    assert files is not None
    return files


@settings(PROPERTY, max_examples=200)
@given(story=stories(), data=st.data())
def test_a_paged_view_from_a_checkpoint_is_the_full_folds_page(
        story: tuple[list[list[dict[str, Any]]], str | None], data: st.DataObject) -> None:
    batches, forget = story
    tiny = timedelta(microseconds=1)
    with low_thresholds(), tempfile.TemporaryDirectory(dir=FAST_DIR) as tmp:
        journey = open_journey(Path(tmp))
        try:
            def check() -> None:
                people = records(journey)
                if not people:
                    return
                for customer_id in data.draw(st.lists(st.sampled_from(people), min_size=1, max_size=3,
                                                      unique=True)):
                    axis = data.draw(st.sampled_from(["occurred", "recorded"]))
                    at = (data.draw(st.sampled_from(moments(journey, axis)))
                          + data.draw(st.sampled_from([-tiny, timedelta(0), tiny]))).astimezone(UTC)
                    limit = data.draw(st.sampled_from([0, 1, 3, 50]))
                    oldest = data.draw(st.booleans())
                    had = customer_id in checkpointed(journey)
                    got = asof.document(journey.app, customer_id, at, axis, limit, oldest)  # type: ignore[arg-type]
                    event(f"{axis}, checkpoint {'kept' if had else 'none'} -> "
                          f"{'made/kept' if customer_id in checkpointed(journey) else 'none'}")
                    assert got == reference(journey, customer_id, at, axis, limit, oldest)

            for batch in batches:
                append(journey, batch, batch_size=len(batch))
                check()
            if forget is not None:
                journey.ledger.forget(f"customer_id:{forget}", "test")
                check()
        finally:
            journey.close()


@pytest.fixture
def heavy(tmp_path: Path) -> Iterator[tuple[Journey, str, list[dict[str, Any]]]]:
    """A customer with 300 facts (registration, calls, e-mails, SMS over 2025), in 3 batches."""
    journey = open_journey(tmp_path)
    facts = heavy_customer(300, "C-990000")
    for i in range(0, 300, 100):
        append(journey, facts[i:i + 100], batch_size=100)
    customer_id = asof.resolve(journey.app, "customer_id:C-990000")
    assert customer_id is not None
    try:
        yield journey, customer_id, facts
    finally:
        journey.close()


def test_the_checkpoint_answers_and_keeps_the_personal_data_sealed(
        heavy: tuple[Journey, str, list[dict[str, Any]]], tmp_path: Path) -> None:
    journey, customer_id, facts = heavy
    at = datetime.fromisoformat(facts[150]["occurred_at"]).astimezone(UTC)
    with low_thresholds(min_facts=100, snapshots=8, rebuild_after=20):
        first = asof.document(journey.app, customer_id, at, "occurred", 10)
        assert checkpointed(journey) == {customer_id}
        with mock.patch.object(asof, "as_of", side_effect=AssertionError("folded every fact")):
            again = asof.document(journey.app, customer_id, at, "occurred", 10)
    assert first == again == reference(journey, customer_id, at, "occurred", 10, False)
    assert again is not None and again["name"] == "Bench Heavy C-990000"
    assert again["as_of"]["facts"] == 151 and len(again["timeline"]) == 10
    stored = (tmp_path / asof_checkpoints.FILE_NAME).read_bytes()
    assert b"Bench Heavy" not in stored and b"heavy990000@example.es" not in stored


def test_facts_after_the_checkpoint_are_folded_in_and_many_of_them_rebuild_it(
        heavy: tuple[Journey, str, list[dict[str, Any]]]) -> None:
    journey, customer_id, facts = heavy
    at = datetime.fromisoformat(facts[200]["occurred_at"]).astimezone(UTC)
    with low_thresholds(min_facts=100, snapshots=8, rebuild_after=20):
        files = viewed(journey, customer_id, at)
        covered = files.load(customer_id)
        assert covered is not None and len(covered.positions) == 300
        # A late upload: facts that happened in the middle of the history, recorded now.
        late = [{**f, "id": f"late-{f['id']}"} for f in heavy_customer(40, "C-990000", seed=7)[1:]]
        append(journey, late[:10], batch_size=10)
        for axis, moment in (("occurred", at), ("recorded", datetime.now(UTC))):
            got = asof.document(journey.app, customer_id, moment, axis, 7)  # type: ignore[arg-type]
            assert got == reference(journey, customer_id, moment, axis, 7, False)
        still = files.load(customer_id)
        assert still is not None and len(still.positions) == 300  # 10 new facts: folded per view
        append(journey, late[10:], batch_size=29)
        got = asof.document(journey.app, customer_id, at, "occurred", 7, oldest=True)
        assert got == reference(journey, customer_id, at, "occurred", 7, True)
        rebuilt = files.load(customer_id)
        assert rebuilt is not None and len(rebuilt.positions) == 339  # 39 new: past REBUILD_AFTER


def another_merged_in(when: str) -> list[dict[str, Any]]:
    """Customer C-1 registered, then merged into C-990000 at ``when``."""
    return [{"type": "customer.registered", "id": "r-other", "source": "crm",
             "customer": {"customer_id": "C-1"}, "occurred_at": "2025-03-01T10:00:00+01:00",
             "data": {"name": "Ana Other", "phone": "+34600000009"}},
            {"type": "customer.merged", "id": "m-1", "source": "crm",
             "customer": {"customer_id": "C-990000"}, "occurred_at": when,
             "data": {"from": {"customer_id": "C-1"}, "reason": "same person"}}]


def test_a_merge_or_a_forget_after_the_checkpoint_drops_it(
        heavy: tuple[Journey, str, list[dict[str, Any]]]) -> None:
    journey, customer_id, _ = heavy
    at = datetime.now(UTC) + timedelta(days=1)
    with low_thresholds(min_facts=100, snapshots=8, rebuild_after=20):
        asof.document(journey.app, customer_id, at, "recorded", 5)
        assert checkpointed(journey) == {customer_id}
        append(journey, another_merged_in("2025-12-30T10:00:00+01:00"), batch_size=2)
        got = asof.document(journey.app, customer_id, at, "recorded", 5)
        assert checkpointed(journey) == set()
        assert got == reference(journey, customer_id, at, "recorded", 5, False)
        assert got is not None and got["merged_from"]
        files = asof_checkpoints.checkpoint_file(journey.app)
        assert files is not None and files.refused(customer_id)
        journey.ledger.forget("customer_id:C-990000", "test")
        with mock.patch.object(asof_checkpoints, "build", side_effect=AssertionError("looked again")):
            got = asof.document(journey.app, customer_id, at + timedelta(days=1), "recorded", 5)
        assert got == reference(journey, customer_id, at + timedelta(days=1), "recorded", 5, False)
        assert checkpointed(journey) == set()


def test_a_record_with_a_merge_in_its_history_is_refused_once(
        heavy: tuple[Journey, str, list[dict[str, Any]]]) -> None:
    journey, customer_id, _ = heavy
    append(journey, another_merged_in("2025-02-01T10:00:00+01:00"), batch_size=2)
    at = datetime.fromisoformat("2025-06-01T00:00:00+00:00")
    with low_thresholds(min_facts=100, snapshots=8, rebuild_after=20):
        first = asof.document(journey.app, customer_id, at, "occurred", 5)
        with mock.patch.object(asof_checkpoints, "build", side_effect=AssertionError("looked again")):
            again = asof.document(journey.app, customer_id, at, "occurred", 5)
    assert first == again == reference(journey, customer_id, at, "occurred", 5, False)
    assert again is not None and again["merged_from"]


def test_a_checkpoint_made_by_other_fold_code_is_not_used(
        heavy: tuple[Journey, str, list[dict[str, Any]]]) -> None:
    journey, customer_id, facts = heavy
    at = datetime.fromisoformat(facts[100]["occurred_at"]).astimezone(UTC)
    with low_thresholds(min_facts=100, snapshots=8, rebuild_after=20):
        files = viewed(journey, customer_id, at)
        files.con.execute("UPDATE checkpoints SET fold_version = 'another release'")
        assert files.load(customer_id) is None
        got = asof.document(journey.app, customer_id, at, "occurred", 5)
        assert got == reference(journey, customer_id, at, "occurred", 5, False)
        assert files.load(customer_id) is not None  # made again by this code
