"""The Python API shares the CLI's path: same validation, same views."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

from journey import demo_data, open_ledger


def test_record_and_read_a_customer_from_python(tmp_path: Path) -> None:
    facts = demo_data.stories()
    bad = {"type": "call.outbound", "id": "x", "source": "s", "customer": {"phone": "+34600900001"},
           "occurred_at": "2026-03-09T22:00:00"}
    with closing(open_ledger(str(tmp_path))) as ledger:
        summary = ledger.record([*facts, bad])
        assert summary.recorded == len(facts)
        assert [(r.line, "no UTC offset" in r.reason) for r in summary.rejected] == [(len(facts) + 1, True)]
        view = ledger.customer("C-900001")
        assert view is not None and view["name"]
        assert ledger.customer("+34 600 900 001")["customer_id"] == view["customer_id"]  # type: ignore[index]
        assert ledger.customer("@nobody_here") is None
        assert len(view["timeline"]) == view["counts"]["events"]
    with closing(open_ledger(str(tmp_path))) as ledger:  # reopened: nothing recorded twice
        again = ledger.record(facts)
        assert (again.recorded, again.duplicates) == (0, len(facts))
