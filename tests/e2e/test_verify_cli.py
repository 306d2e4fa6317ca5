"""``journey verify`` and ``journey subject-access`` as people use them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson
import pytest

from journey import demo_data
from journey.cli import main


def run(capsys: pytest.CaptureFixture[str], home: Path, *args: str) -> tuple[int, str, str]:
    code = main(["--data-dir", str(home), *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def home(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    source = tmp_path / "facts.jsonl"
    demo_data.write_jsonl(source, demo_data.generate(30, seed=8))
    home = tmp_path / "ledger"
    code, _, _ = run(capsys, home, "append", str(source))
    assert code == 0
    return home


def _edit_event(home: Path, position: int) -> None:
    con = sqlite3.connect(home / "ledger.sqlite")
    [(state,)] = con.execute("SELECT state FROM stored_events WHERE rowid = ?", (position,)).fetchall()
    changed = bytearray(state)
    changed[20] ^= 0x01
    con.execute("UPDATE stored_events SET state = ? WHERE rowid = ?", (bytes(changed), position))
    con.commit()
    con.close()


def test_verify_says_intact_then_names_the_edited_event(capsys: pytest.CaptureFixture[str], home: Path) -> None:
    code, out, _ = run(capsys, home, "verify")
    assert code == 0, out
    assert "INTACT" in out and "the whole history is covered" in out and "events/s" in out
    code, out, _ = run(capsys, home, "verify", "--json")
    doc = orjson.loads(out)
    assert code == 0 and doc["intact"] is True and doc["events"] == doc["chained"] > 100
    assert doc["first_broken"] is None

    _edit_event(home, 17)
    code, out, _ = run(capsys, home, "verify")
    assert code == 1
    assert "BROKEN" in out and "first at position 17" in out and "stored bytes" in out
    code, out, _ = run(capsys, home, "verify", "--json")
    doc = orjson.loads(out)
    assert code == 1 and doc["intact"] is False
    assert doc["first_broken"]["position"] == 17 and doc["first_broken"]["customer_id"]


def test_checkpoints_are_written_once_and_checked(capsys: pytest.CaptureFixture[str], home: Path,
                                                  tmp_path: Path) -> None:
    cp = tmp_path / "cp.json"
    code, out, _ = run(capsys, home, "verify", "--write-checkpoint", str(cp))
    assert code == 0 and f"checkpoint written to {cp}" in out
    doc = orjson.loads(cp.read_bytes())
    assert doc["position"] > 100 and doc["heads"] and doc["digest"] and doc["taken_at"]
    code, _, err = run(capsys, home, "verify", "--write-checkpoint", str(cp))
    assert code == 2 and "never overwritten" in err
    code, out, _ = run(capsys, home, "verify", "--checkpoint", str(cp))
    assert code == 0 and "matches" in out

    # an attacker edits an old event and recomputes its links: only the checkpoint notices
    from journey.bootstrap import bootstrap
    from journey.config import Settings
    from tests.integration.test_chain import Store

    journey = bootstrap(Settings(data_dir=home))
    try:
        store = Store(journey, "sqlite")
        _edit_event(home, 5)
        store.rechain()
    finally:
        journey.close()
    code, out, _ = run(capsys, home, "verify")
    assert code == 0
    code, out, _ = run(capsys, home, "verify", "--checkpoint", str(cp))
    assert code == 1 and "was changed" in out

    broken = tmp_path / "broken.json"
    broken.write_text(cp.read_text().replace('"position": ', '"position": 9', 1))
    code, _, err = run(capsys, home, "verify", "--checkpoint", str(broken))
    assert code == 2 and "digest" in err


def test_subject_access_exports_everything_about_the_person(capsys: pytest.CaptureFixture[str], home: Path,
                                                            tmp_path: Path) -> None:
    out_file = tmp_path / "sar" / "c900001.json"
    code, out, _ = run(capsys, home, "subject-access", "+34600900001", "--out", str(out_file), "--json")
    assert code == 0, out
    printed = orjson.loads(out)
    export = orjson.loads(out_file.read_bytes())
    summary = export["summary"]
    assert printed["file"] == str(out_file) and printed["customer_id"] == summary["customer_id"]
    assert summary["customer_number"] == "C-900001" and summary["name"]
    assert summary["events"] == len(export["raw_events"]) > 5
    assert summary["by_department"]["sales"] >= 5  # the six sales calls story
    assert summary["first_contact"] <= summary["last_contact"]
    assert export["customer_view"]["customer_id"] == summary["customer_id"]
    assert all(e["fact"]["customer_uuid"] in [summary["customer_id"], *summary["merged_records"]]
               or e["recorded_for"] in [summary["customer_id"], *summary["merged_records"]]
               for e in export["raw_events"])
    tables = export["tables"]
    assert {"events", "customers", "identities"} <= set(tables)
    assert len(tables["events"]) == summary["rows_by_table"]["events"] > 0
    assert all(row["customer_id"] == summary["customer_id"] for row in tables["customers"])

    code, out, _ = run(capsys, home, "subject-access", "C-900001", "--out", str(tmp_path / "t.json"))
    assert code == 0 and "subject access export for" in out

    code, _, err = run(capsys, home, "subject-access", "+34699999999", "--out", str(tmp_path / "x.json"))
    assert code == 3 and "nobody known" in err
    assert not (tmp_path / "x.json").exists()


def test_subject_access_includes_records_merged_into_the_person(capsys: pytest.CaptureFixture[str],
                                                                tmp_path: Path) -> None:
    home = tmp_path / "ledger"
    facts = [
        {"type": "social.mention", "id": "t1", "source": "tw", "customer": {"twitter": "@ana"},
         "occurred_at": "2026-01-01T10:00:00+01:00", "data": {"network": "twitter", "text": "hola"}},
        {"type": "customer.registered", "id": "r1", "source": "crm", "customer": {"customer_id": "C-1"},
         "occurred_at": "2026-01-03T10:00:00+01:00",
         "data": {"name": "Ana", "phone": "+34600000001", "twitter": "@ana"}},
    ]
    source = tmp_path / "f.jsonl"
    source.write_bytes(b"\n".join(orjson.dumps(f) for f in facts) + b"\n")
    assert run(capsys, home, "append", str(source))[0] == 0
    out_file = tmp_path / "ana.json"
    code, _, _ = run(capsys, home, "subject-access", "C-1", "--out", str(out_file))
    assert code == 0
    export = orjson.loads(out_file.read_bytes())
    types = [e["fact"]["type"] for e in export["raw_events"]]
    assert "social.mention" in types and "customer.registered" in types
    assert export["summary"]["merged_records"]
