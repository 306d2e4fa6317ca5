"""A demo ledger with a published snapshot, shared by the analytics tests that only read it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from journey.analytics import snapshots
from journey.cli import main


@pytest.fixture(scope="session")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300 generated customers plus the hand-written stories (C-900001...), exported once."""
    home = tmp_path_factory.mktemp("analytics-demo") / "ledger"
    assert main(["--data-dir", str(home), "demo", "--customers", "300"]) == 0
    assert main(["--data-dir", str(home), "export"]) == 0
    return home


@pytest.fixture(autouse=True)
def _fresh_tick_memory(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``tick`` remembers the last export per directory; every test starts without that."""
    monkeypatch.setattr(snapshots, "_LAST", {})
    yield

