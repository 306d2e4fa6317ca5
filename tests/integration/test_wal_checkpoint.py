"""The store's WAL is checkpointed beside the writer (ledger/wal_checkpoint.py): the copy runs
in a thread, the WAL stays bounded, and a closed store is one complete file without its WAL."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson
import pytest

from consumers.jsonl_ingest import ingest
from journey import demo_data
from journey.bootstrap import bootstrap
from journey.config import Settings
from ledger import wal_checkpoint


def _append(directory: Path, customers: int = 40, seed: int = 5) -> int:
    journey = bootstrap(Settings(data_dir=directory))
    try:
        facts = list(demo_data.generate(customers, seed=seed))
        summary = ingest(journey.ledger, (orjson.dumps(f) for f in facts), batch_size=50)
    finally:
        journey.close()
    assert summary.recorded > 0 and not summary.rejected
    return summary.recorded


def _count(path: Path) -> int:
    con = sqlite3.connect(path)
    try:
        return int(con.execute("SELECT count(*) FROM stored_events").fetchone()[0])
    finally:
        con.close()


def test_a_closed_store_is_complete_without_its_wal(tmp_path: Path) -> None:
    recorded = _append(tmp_path)
    wal = tmp_path / "ledger.sqlite-wal"
    assert not wal.exists() or wal.stat().st_size == 0
    # Everything is in the database file itself: read it without the WAL next to it.
    assert _count(tmp_path / "ledger.sqlite") >= recorded


def test_a_wal_past_its_bound_is_checkpointed_by_the_writer(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """If the background copy falls behind, the next batch waits and copies the rest itself."""
    monkeypatch.setattr(wal_checkpoint, "MAX_WAL_FRAMES", 5)
    waited: list[int] = []
    original = wal_checkpoint.BackgroundCheckpointer.before_write

    def before_write(self: wal_checkpoint.BackgroundCheckpointer) -> None:
        if self._frames_left > wal_checkpoint.MAX_WAL_FRAMES:
            waited.append(self._frames_left)
        original(self)

    monkeypatch.setattr(wal_checkpoint.BackgroundCheckpointer, "before_write", before_write)
    recorded = _append(tmp_path, customers=60)
    assert waited, "the bound was never reached: the test did not exercise the fallback"
    assert _count(tmp_path / "ledger.sqlite") >= recorded
    # The ledger reads back whole after the fallback copies.
    journey = bootstrap(Settings(data_dir=tmp_path))
    try:
        assert journey.project() >= recorded
    finally:
        journey.close()
