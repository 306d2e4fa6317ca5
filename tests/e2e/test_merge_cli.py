"""``journey merge`` / ``journey unmerge`` as an operator uses them after finding a duplicate."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from journey.cli import main


def run(capsys: pytest.CaptureFixture[str], home: Path, *args: str) -> tuple[int, str, str]:
    code = main(["--data-dir", str(home), *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_merge_then_unmerge_from_the_command_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    facts = [
        {"type": "customer.registered", "id": "r1", "source": "crm", "customer": {"customer_id": "C-1"},
         "occurred_at": "2026-01-01T10:00:00+01:00", "data": {"name": "Ana", "phone": "+34600000001"}},
        {"type": "customer.registered", "id": "r2", "source": "stores", "customer": {"customer_id": "C-2"},
         "occurred_at": "2026-01-02T10:00:00+01:00", "data": {"name": "Ana G.", "email": "ana@example.com"}},
        {"type": "store.visit", "id": "v1", "source": "stores", "customer": {"email": "ana@example.com"},
         "occurred_at": "2026-01-05T10:00:00+01:00", "department": "stores", "data": {"store": "Sol"}},
    ]
    path = tmp_path / "facts.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(f) for f in facts) + b"\n")
    home = tmp_path / "ledger"
    assert run(capsys, home, "append", str(path))[0] == 0

    code, out, _ = run(capsys, home, "merge", "+34600000001", "ana@example.com", "--reason", "same DNI", "--yes",
                       "--department", "crm", "--at", "2026-02-01T09:00:00+01:00")
    assert (code, out.strip()) == (0, "ana@example.com merged into +34600000001 (same DNI)")
    code, out, _ = run(capsys, home, "customer", "ana@example.com", "--json")
    merged = orjson.loads(out)
    assert (merged["customer_number"], merged["counts"]["by_type"]["store.visit"]) == ("C-1", 1)

    code, _, err = run(capsys, home, "merge", "C-1", "C-2", "--reason", "again")
    assert code == 1 and "already this customer" in err

    code, out, _ = run(capsys, home, "unmerge", "C-1", "C-2", "--reason", "namesakes", "--json")
    assert code == 0 and orjson.loads(out)["refused"] == []
    code, out, _ = run(capsys, home, "customer", "ana@example.com", "--json")
    back = orjson.loads(out)
    assert (back["customer_number"], back["counts"]["by_type"]["store.visit"]) == ("C-2", 1)
    code, out, _ = run(capsys, home, "customer", "C-1", "--json")
    survivor = orjson.loads(out)
    assert "store.visit" not in survivor["counts"]["by_type"]
    assert survivor["merged_from"] == []
    assert [e["type"] for e in survivor["timeline"] if e["type"].startswith("customer.")] == [
        "customer.registered", "customer.merged", "customer.unmerged"]

    assert run(capsys, home, "merge", "C-1", "no such", "--reason", "x")[0] == 1
