"""Writers sharing one store: a batch that meets another writer's changes is redone (logged)
until it goes through, and writers that take turns never meet each other's changes at all.
Two ledgers on one real SQLite file, the way two processes share a data directory."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from domain import catalogue, identity
from journey.bootstrap import Journey
from ledger.writer import SPLIT_AFTER, BatchResult, Ledger
from tests.ledgers import open_journey, record

PHONE = "+34600000001"


def call(i: int, source: str = "cc") -> dict[str, Any]:
    return {"type": "call.outbound", "id": f"{source}-{i}", "source": source,
            "customer": {"phone": PHONE}, "occurred_at": f"2026-01-02T10:{i % 60:02d}:00+01:00",
            "data": {"purpose": "commercial"}}


@pytest.fixture
def two(tmp_path: Path) -> Iterator[tuple[Journey, Journey]]:
    first, second = open_journey(tmp_path), open_journey(tmp_path)
    yield first, second
    first.close()
    second.close()


def writer_log(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "journey.writer"]


def versions(journey: Journey) -> list[int]:
    return [n.originator_version for n in journey.app.index.facts_of(identity.prospect_uuid(f"phone:{PHONE}"))]


def test_a_turn_taking_writer_drops_its_stale_cache_instead_of_conflicting(
        two: tuple[Journey, Journey], caplog: pytest.LogCaptureFixture) -> None:
    first, second = two
    turns: list[str] = []

    @contextlib.contextmanager
    def take_turn() -> Iterator[None]:
        turns.append("in")
        yield
        turns.append("out")

    first.ledger = Ledger(first.app, take_turn=take_turn)
    caplog.set_level(logging.INFO, logger="journey.writer")
    record(first, call(1))  # first caches the customer's stream at version 1
    record(second, call(2))  # second appends behind first's back: version 2
    result = record(first, call(3))
    assert result.recorded == 1
    assert turns == ["in", "out", "in", "out"]  # one turn per attempt, and one attempt each
    assert writer_log(caplog) == []  # no conflict met, nothing redone
    assert versions(first) == [1, 2, 3]


def test_a_batch_that_keeps_meeting_another_writer_is_redone_then_halved_and_recorded_once(
        two: tuple[Journey, Journey], caplog: pytest.LogCaptureFixture) -> None:
    first, second = two
    meddled: list[BatchResult] = []

    def meddle(_: BatchResult) -> None:
        # Before each of the batch's first attempts commits, the other writer appends to the
        # same customer: the attempt's stream version is stale and the store refuses it.
        if len(meddled) < SPLIT_AFTER:
            meddled.append(record(second, call(100 + len(meddled), "other")))

    caplog.set_level(logging.INFO, logger="journey.writer")
    batch = [(i, catalogue.validate(call(i))) for i in range(1, 9)]
    result = first.ledger.append(batch, before_commit=meddle)
    assert (result.recorded, result.duplicates, result.rejected) == (8, 0, [])
    logged = writer_log(caplog)
    assert len(logged) == SPLIT_AFTER
    assert all("a batch of 8 fact(s) (lines or offsets 1-8) met" in m for m in logged)
    assert all("redoing it (retry" in m for m in logged[:-1])
    assert "recording it in two halves" in logged[-1]
    assert first.app.index.fact_count() == 8 + SPLIT_AFTER  # type: ignore[attr-defined]
    assert versions(first) == list(range(1, 9 + SPLIT_AFTER))
    # Facts that were refused and redone are recorded exactly once.
    again = first.ledger.append([(i, catalogue.validate(call(i))) for i in range(1, 9)])
    assert again.duplicates == 8


def test_forget_runs_inside_a_turn(two: tuple[Journey, Journey]) -> None:
    first, _ = two
    turns: list[str] = []

    @contextlib.contextmanager
    def take_turn() -> Iterator[None]:
        turns.append("in")
        yield

    record(first, call(1))
    first.ledger = Ledger(first.app, take_turn=take_turn)
    assert first.ledger.forget(f"phone:{PHONE}", "art. 17") is not None
    assert turns == ["in"]


def test_an_interrupt_while_waiting_to_redo_ends_the_append(
        two: tuple[Journey, Journey], monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = two

    def meddle(_: BatchResult) -> None:
        record(second, call(len(meddle_calls) + 100, "other"))
        meddle_calls.append(1)

    meddle_calls: list[int] = []

    def interrupted(_: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("ledger.writer.time.sleep", interrupted)
    with pytest.raises(KeyboardInterrupt):
        first.ledger.append([(1, catalogue.validate(call(1)))], before_commit=meddle)
    assert first.app.index.fact_count() == len(meddle_calls) == 1  # type: ignore[attr-defined]
    assert record(first, call(1)).recorded == 1
