"""``journey replay`` and ``journey customer --as-of / --occurred-by`` as people use them."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

from journey import demo_data
from journey.cli import main

PHONE = "+34600777001"


def run(capsys: pytest.CaptureFixture[str], home: Path, *args: str) -> tuple[int, str, str]:
    code = main(["--data-dir", str(home), *args])
    out, err = capsys.readouterr()
    return code, out, err


def write(path: Path, facts: list[dict[str, Any]]) -> Path:
    path.write_text("".join(orjson.dumps(f).decode() + "\n" for f in facts))
    return path


def fact(kind: str, n: int, occurred: str, data: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": kind, "id": f"r{n}", "source": "crm", "customer": {"customer_id": "C-77"},
            "occurred_at": occurred, "department": "customer_care", "data": data, **extra}


def test_rebuild_then_diff_finds_no_difference_and_then_finds_a_changed_row(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    home = tmp_path / "ledger"
    source = tmp_path / "demo.jsonl"
    demo_data.write_jsonl(source, demo_data.generate(40, seed=11))
    assert run(capsys, home, "append", str(source))[0] == 0

    code, out, err = run(capsys, home, "replay", "rebuild", "--json")
    assert code == 0, err
    built = orjson.loads(out)
    assert built["events"] == built["position"] > 0 and built["source"] == "store"
    assert Path(built["path"]).parent.name.startswith("rebuild-")
    assert "events/s" in err

    code, out, _ = run(capsys, home, "replay", "diff")
    assert code == 0, out
    assert "the live projections equal the rebuild" in out
    assert "projection_position" in out  # says what it does not compare

    code, _, err = run(capsys, home, "replay", "rebuild", "--into", str(Path(built["path"]).parent))
    assert code == 2 and "not empty" in err

    con = duckdb.connect(str(home / "projections.duckdb"))
    try:
        con.execute("UPDATE customers SET city = 'Atlantis' WHERE customer_id = "
                    "(SELECT min(customer_id) FROM customers)")
    finally:
        con.close()
    code, out, _ = run(capsys, home, "replay", "diff", "--against", str(Path(built["path"]).parent),
                       "--json")
    assert code == 1
    report = orjson.loads(out)
    assert [t["table"] for t in report["tables"] if not t["same"]] == ["customers"]
    code, out, _ = run(capsys, home, "replay", "diff")
    assert code == 1 and "DIFFERENT  customers" in out and "Atlantis" in out


def test_diff_without_a_rebuild_says_what_to_do(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, tmp_path / "ledger", "replay", "diff")
    assert code == 2 and "journey replay rebuild" in err


def test_as_of_and_occurred_by_differ_by_a_late_upload(capsys: pytest.CaptureFixture[str],
                                                      tmp_path: Path) -> None:
    home = tmp_path / "ledger"
    first = write(tmp_path / "first.jsonl", [
        fact("customer.registered", 1, "2026-01-02T10:00:00+01:00",
             {"name": "Ana Late", "phone": PHONE,
              "address": {"street": "Calle Uno", "postal_code": "28001", "city": "Madrid"}}),
        fact("call.inbound", 2, "2026-01-03T10:00:00+01:00", {"reason": "question"}),
    ])
    assert run(capsys, home, "append", str(first))[0] == 0
    time.sleep(0.01)
    t = datetime.now(UTC).isoformat()
    time.sleep(0.01)
    # A store uploads, after T, a move that happened before T.
    late = write(tmp_path / "late.jsonl", [
        fact("address.changed", 3, "2026-01-04T10:00:00+01:00",
             {"address": {"street": "Avenida Dos", "postal_code": "46010", "city": "Valencia"},
              "reason": "moved", "requested_by": "customer"}),
    ])
    assert run(capsys, home, "append", str(late))[0] == 0

    code, out, err = run(capsys, home, "customer", PHONE, "--as-of", t, "--json")
    assert code == 0, err
    known = orjson.loads(out)
    code, out, err = run(capsys, home, "customer", PHONE, "--occurred-by", t, "--json")
    assert code == 0, err
    happened = orjson.loads(out)
    assert known["contact"]["address"]["city"] == "Madrid"
    assert happened["contact"]["address"]["city"] == "Valencia"
    assert known["recorded_late"] == []
    assert [e["type"] for e in happened["recorded_late"]] == ["address.changed"]
    assert [r["late"] for r in happened["timeline"]] == [False, False, True]
    assert len(known["timeline"]) == 2

    code, out, _ = run(capsys, home, "customer", PHONE, "--occurred-by", t)
    assert code == 0
    assert "Recorded late" in out and "address.changed" in out and "(recorded late)" in out

    # --limit N: the oldest N timeline events and late facts, with the totals (the API's page).
    code, out, err = run(capsys, home, "customer", PHONE, "--occurred-by", t, "--limit", "2", "--json")
    assert code == 0, err
    page = orjson.loads(out)
    assert page["timeline"] == happened["timeline"][:2]
    assert page["timeline_page"] == {"limit": 2, "order": "oldest", "total": 3}
    assert page["recorded_late"] == happened["recorded_late"]
    assert page["recorded_late_page"] == {"limit": 2, "total": 1}
    assert {k: v for k, v in page.items() if k not in ("timeline", "timeline_page", "recorded_late_page")} == {
        k: v for k, v in happened.items() if k != "timeline"}
    code, out, _ = run(capsys, home, "customer", PHONE, "--occurred-by", t, "--limit", "1")
    assert code == 0
    assert "(3 facts, 1 of them recorded after that instant; the oldest 1 shown)" in out
    assert "Recorded late" in out and "address.changed" in out
    for bad in ("0", "-2"):
        code, _, err = run(capsys, home, "customer", PHONE, "--occurred-by", t, "--limit", bad)
        assert code == 2 and "--limit must be at least 1" in err

    # Far enough ahead, both axes are the live view.
    code, out, _ = run(capsys, home, "customer", PHONE, "--json")
    live = orjson.loads(out)
    code, out, _ = run(capsys, home, "customer", PHONE, "--as-of", "2100-01-01T00:00:00+00:00", "--json")
    now = orjson.loads(out)
    for key in ("contact", "identities", "counts", "contact_history", "customer_id"):
        assert now[key] == live[key], key

    # Before anything was recorded, nobody was known.
    code, _, err = run(capsys, home, "customer", PHONE, "--as-of", "2020-01-01T00:00:00+00:00")
    assert code == 3 and "nobody known" in err
    code, _, err = run(capsys, home, "customer", PHONE, "--as-of", "2026-01-01")
    assert code == 2 and "offset" in err


def test_decision_replay_of_a_recorded_can_contact_agrees(capsys: pytest.CaptureFixture[str],
                                                         tmp_path: Path) -> None:
    home = tmp_path / "ledger"
    source = write(tmp_path / "facts.jsonl", [
        fact("customer.registered", 1, "2026-01-02T10:00:00+01:00", {"name": "Ana", "phone": PHONE}),
        fact("objection.recorded", 2, "2026-01-05T10:00:00+01:00", {"channels": "all"}),
        fact("call.outbound", 3, "2026-01-07T11:00:00+01:00",
             {"purpose": "commercial", "campaign": "fibra", "outcome": "no_answer"}, department="sales"),
    ])
    assert run(capsys, home, "append", str(source))[0] == 0
    code, out, err = run(capsys, home, "can-contact", PHONE, "--channel", "phone", "--purpose",
                         "commercial", "--at", "2026-02-03T11:00:00+01:00", "--record", "--json")
    assert code == 4, err
    asked = orjson.loads(out)
    event_id = err.split("contact.decided ")[1].split()[0]

    code, out, err = run(capsys, home, "replay", "decision", event_id, "--json")
    assert code == 0, (out, err)
    replayed = orjson.loads(out)
    assert replayed["agree"] is True
    assert replayed["recorded"]["allowed"] is False
    assert [r["code"] for r in replayed["recomputed"]["reasons"]] == [r["code"] for r in asked["reasons"]]
    assert replayed["asked"]["policy_version"] == asked["policy_version"]
    assert replayed["history"]["through_position"] == asked["as_of_position"]

    code, out, _ = run(capsys, home, "replay", "decision", event_id)
    assert code == 0 and "AGREE" in out and "recorded:   DENIED" in out and "[objection]" in out

    # The sales call after the objection: made, but the policy denies it.
    call = orjson.loads(run(capsys, home, "customer", PHONE, "--json")[1])
    call_id = next(r["event_id"] for r in call["timeline"] if r["type"] == "call.outbound")
    code, out, _ = run(capsys, home, "replay", "decision", call_id)
    assert code == 1 and "DISAGREE" in out and "objection" in out

    registered = next(r["event_id"] for r in call["timeline"] if r["type"] == "customer.registered")
    assert run(capsys, home, "replay", "decision", registered)[0] == 2
    code, _, err = run(capsys, home, "replay", "decision", "00000000-0000-0000-0000-000000000000")
    assert code == 3 and "no recorded event" in err
