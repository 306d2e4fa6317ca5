"""Story 1 end to end through the CLI: six sales calls in three days after "don't call me again".

The story's customer has neither a consent nor a contract, so under the policy even the first
call would lack a legal basis; the test records the contract that makes it lawful (a
legitimate interest) next to the stories, so what the policy catches is exactly the calls
made after the objection.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from domain import identity
from journey import demo_data
from journey.cli import main


def run(capsys: pytest.CaptureFixture[str], home: Path, *args: str) -> tuple[int, str]:
    code = main(["--data-dir", str(home), *args])
    out, _ = capsys.readouterr()
    return code, out


@pytest.fixture
def ledger(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    facts = demo_data.stories()
    source = tmp_path / "stories.jsonl"
    source.write_text("".join(orjson.dumps(f).decode() + "\n" for f in facts))
    home = tmp_path / "ledger"
    code, out = run(capsys, home, "append", str(source))
    assert code == 0, out
    return home


def story_calls() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    story = [f for f in demo_data.stories() if f["id"].startswith("s1-")]
    objection = next(f for f in story if f["type"] == "objection.recorded")
    calls = [f for f in story if f["type"] == "call.outbound"]
    return objection, calls


def ask(capsys: pytest.CaptureFixture[str], home: Path, call: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    # Asked just before the call was made: the call itself is not yet in the history.
    at = (datetime.fromisoformat(call["occurred_at"]) - timedelta(seconds=1)).isoformat()
    code, out = run(capsys, home, "can-contact", "+34 600 900 001", "--channel", "phone",
                    "--purpose", "commercial", "--at", at, "--campaign", call["data"]["campaign"], "--json")
    return code, orjson.loads(out)


def test_the_first_call_is_allowed_and_every_call_after_the_objection_denied(
        capsys: pytest.CaptureFixture[str], ledger: Path) -> None:
    objection, calls = story_calls()
    objection_id = str(identity.event_uuid(objection["source"], objection["id"]))
    first, *after = calls
    assert first["occurred_at"] < objection["occurred_at"] and len(after) == 6
    code, decision = ask(capsys, ledger, first)
    assert (code, decision["allowed"], decision["reasons"]) == (0, True, [])
    assert set(decision) == {"allowed", "reasons", "policy_version", "as_of_position"}
    assert decision["policy_version"] == "2026-11-1"
    for call in after:
        code, decision = ask(capsys, ledger, call)
        assert code == 4 and decision["allowed"] is False, call["id"]
        by_code = {r["code"]: r for r in decision["reasons"]}
        assert by_code["objection"]["event_ids"] == [objection_id]
        assert "2026-03-05 09:30" in by_code["objection"]["message"]
        assert "by customer care" in by_code["objection"]["message"]
        assert ("quiet_hours" in by_code) == call["occurred_at"].startswith("2026-03-09T22:00"), call["id"]


def test_text_verdict_comes_first_and_unknown_customers_exit_3(
        capsys: pytest.CaptureFixture[str], ledger: Path) -> None:
    code, out = run(capsys, ledger, "can-contact", "C-900001", "--channel", "phone", "--purpose",
                    "commercial", "--at", "2026-03-09T22:00:00+01:00", "--campaign", "movil")
    assert code == 4
    lines = out.splitlines()
    assert lines[0].startswith("DENIED")
    assert any("[objection]" in line and "by customer care" in line for line in lines[1:])
    assert any("[quiet_hours]" in line for line in lines[1:])
    code, _ = run(capsys, ledger, "can-contact", "+34 699 999 999", "--channel", "phone",
                  "--purpose", "commercial")
    assert code == 3


def test_violations_lists_exactly_the_calls_made_after_the_objection(
        capsys: pytest.CaptureFixture[str], ledger: Path) -> None:
    objection, calls = story_calls()
    after = [c for c in calls if c["occurred_at"] > objection["occurred_at"]]
    code, out = run(capsys, ledger, "violations", "--json")
    assert code == 0
    report = orjson.loads(out)
    found = {v["event_id"] for v in report["violations"]}
    assert found == {str(identity.event_uuid(c["source"], c["id"])) for c in after}
    assert all("objection" in {r["code"] for r in v["reasons"]} for v in report["violations"])
    assert {v["department"] for v in report["violations"]} == {"sales", "outsourced_callcenter"}
    code, out = run(capsys, ledger, "violations", "--since", "2026-03-10", "--json")
    assert len(orjson.loads(out)["violations"]) == 3


def test_a_recorded_decision_is_in_the_customers_history(
        capsys: pytest.CaptureFixture[str], ledger: Path) -> None:
    code, out = run(capsys, ledger, "can-contact", "C-900001", "--channel", "phone", "--purpose",
                    "commercial", "--at", "2026-03-09T22:00:00+01:00", "--record", "--json")
    assert code == 4
    decision = orjson.loads(out)
    code, out = run(capsys, ledger, "customer", "C-900001", "--json")
    view = orjson.loads(out)
    recorded = [r for r in view["timeline"] if r["type"] == "contact.decided"]
    assert len(recorded) == 1
    data = recorded[0]["data"]
    assert data["allowed"] is False and data["policy_version"] == "2026-11-1"
    assert data["reasons"] == decision["reasons"]
    assert data["at"] == "2026-03-09T22:00:00+01:00"
    assert view["customer_number"] == "C-900001"
    code, _ = run(capsys, ledger, "customer", "C-900001")
    assert code == 0
    # A recorded decision is not a contact: it does not count against the frequency cap.
    code, out = run(capsys, ledger, "violations", "--json")
    assert len(orjson.loads(out)["violations"]) == 6


def test_exclusion_list_import_blocks_a_listed_customer(
        capsys: pytest.CaptureFixture[str], ledger: Path, tmp_path: Path) -> None:
    listed = tmp_path / "robinson.txt"
    listed.write_text("+34600900002\n")
    code, out = run(capsys, ledger, "exclusions", "import", str(listed), "--as-of", "2026-01-01")
    assert code == 0 and out.startswith("imported 1,")
    code, out = run(capsys, ledger, "can-contact", "C-900002", "--channel", "sms", "--purpose",
                    "commercial", "--at", "2026-06-03T10:00:00+02:00", "--json")
    assert code == 4
    assert "excluded_list" in {r["code"] for r in orjson.loads(out)["reasons"]}


def test_each_contact_is_judged_by_the_policy_version_in_force_then(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A narrower calling window from 2026-03-08 makes a 09:30 call a violation only after it."""
    policies = tmp_path / "policies"
    policies.mkdir()
    default = (Path(__file__).resolve().parents[2] / "journey" / "contact-policy.toml").read_text()
    (policies / "v1.toml").write_text(default.replace('version = "2026-11-1"', 'version = "v1"'))
    narrower = default.replace('version = "2026-11-1"', 'version = "v2"\neffective_from = 2026-03-08')
    narrower = narrower.replace('windows = ["09:00-21:00"]', 'windows = ["10:00-15:00", "16:00-21:00"]')
    assert 'windows = ["10:00-15:00", "16:00-21:00"]' in narrower
    (policies / "v2.toml").write_text(narrower)
    who = {"customer_id": "C-7"}
    facts = [
        {"type": "customer.registered", "id": "r", "source": "crm", "customer": who,
         "occurred_at": "2026-03-01T10:00:00+01:00", "data": {"name": "Eva", "phone": "+34600000077"}},
        {"type": "contract.started", "id": "k", "source": "crm", "customer": who,
         "occurred_at": "2026-03-01T10:05:00+01:00", "data": {"contract_id": "K7", "service": "fibra"}},
        {"type": "call.outbound", "id": "c1", "source": "cc", "customer": who, "department": "sales",
         "occurred_at": "2026-03-04T09:30:00+01:00", "data": {"purpose": "commercial", "campaign": "tv"}},
        {"type": "call.outbound", "id": "c2", "source": "cc", "customer": who, "department": "sales",
         "occurred_at": "2026-03-10T09:30:00+01:00", "data": {"purpose": "commercial", "campaign": "tv"}},
    ]
    source = tmp_path / "facts.jsonl"
    source.write_text("".join(orjson.dumps(f).decode() + "\n" for f in facts))
    home = tmp_path / "ledger"
    assert run(capsys, home, "append", str(source))[0] == 0
    code, out = run(capsys, home, "violations", "--policy", str(policies), "--json")
    assert code == 0
    report = orjson.loads(out)
    assert report["policy_versions"] == ["v1", "v2"]
    assert [(v["occurred_at"], v["policy_version"], [r["code"] for r in v["reasons"]])
            for v in report["violations"]] == [("2026-03-10T09:30:00+01:00", "v2", ["quiet_hours"])]
    code, out = run(capsys, home, "can-contact", "C-7", "--channel", "phone", "--purpose", "commercial",
                    "--at", "2026-03-04T09:30:00+01:00", "--policy", str(policies), "--json")
    assert code == 0 and orjson.loads(out)["policy_version"] == "v1"
