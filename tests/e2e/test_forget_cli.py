"""``journey forget`` as people use it: erase a customer, then look for them."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from journey.cli import main

FACTS = [
    {"type": "customer.registered", "id": "r1", "source": "crm", "customer": {"customer_id": "C-5"},
     "occurred_at": "2026-01-03T10:00:00+01:00",
     "data": {"name": "Iker Goikoetxea", "phone": "+34622333444", "email": "iker@example.org"}},
    {"type": "call.inbound", "id": "c1", "source": "cc", "customer": {"phone": "622333444"},
     "occurred_at": "2026-01-04T10:00:00+01:00", "data": {"reason": "invoice"}, "department": "billing"},
]


def run(capsys: pytest.CaptureFixture[str], home: Path, *args: str) -> tuple[int, str, str]:
    code = main(["--data-dir", str(home), *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_forget_then_the_customer_is_a_tombstone(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    source = tmp_path / "facts.jsonl"
    source.write_bytes(b"\n".join(orjson.dumps(f) for f in FACTS) + b"\n")
    home = tmp_path / "ledger"
    assert run(capsys, home, "append", str(source))[0] == 0
    code, out, _ = run(capsys, home, "customer", "+34622333444", "--json")
    assert code == 0
    ledger_id = orjson.loads(out)["customer_id"]
    assert orjson.loads(out)["name"] == "Iker Goikoetxea"

    code, out, err = run(capsys, home, "forget", "+34622333444", "--reason", "art. 17 request", "--yes", "--json")
    assert code == 0, err
    doc = orjson.loads(out)
    assert doc["customer_id"] == ledger_id and doc["already_forgotten"] is False

    code, _, err = run(capsys, home, "customer", "+34622333444")
    assert code == 3 and "nobody known" in err
    code, out, _ = run(capsys, home, "customer", ledger_id, "--json")
    assert code == 0
    tomb = orjson.loads(out)
    assert tomb["forgotten"] is True and tomb["name"] is None and tomb["identities"] == []
    assert tomb["counts"]["by_channel"] == {"phone": 1}
    assert all(row["data"] == {} for row in tomb["timeline"])
    code, out, _ = run(capsys, home, "customer", ledger_id)
    assert code == 0 and "Iker" not in out
    assert out.startswith("FORGOTTEN (GDPR art. 17)") and "events kept without personal data" in out

    code, out, _ = run(capsys, home, "verify")
    assert code == 0 and "INTACT" in out
    for name in ("ledger.sqlite", "projections.duckdb"):
        blob = (home / name).read_bytes()
        assert b"Goikoetxea" not in blob and b"622333444" not in blob and b"iker@" not in blob

    code, out, _ = run(capsys, home, "forget", ledger_id, "--reason", "again", "--yes")
    assert code == 0 and "already forgotten" in out
    code, _, err = run(capsys, home, "forget", "+34600000000", "--reason", "x")
    assert code == 3 and "nobody known" in err
    code, _, err = run(capsys, home, "forget", "+34622333444", "--reason", " ")
    assert code == 2
