"""The append's CPU budget (benchmarks/write_budget.py): every fact appended, the steps add up
to the writer's total, and the writer's methods are restored afterwards."""

from __future__ import annotations

from pathlib import Path

from benchmarks import write_budget
from ledger import writer


def test_the_budget_accounts_for_the_whole_writer(tmp_path: Path) -> None:
    before = writer._BatchWriter._record
    figures = write_budget.measure(400, tmp_path / "ledger")
    assert writer._BatchWriter._record is before
    assert figures["facts"] > 300
    steps = [label for _, _, label in write_budget.STEPS] + ["recorder", "the rest of a batch"]
    assert all(figures[label] > 0 for label in steps if label != "the rest of a batch")
    assert abs(sum(figures[label] for label in steps) - figures["writer"]) < 1e-6
