"""Cases across departments from the command line: ``journey cases``, ``case`` and ``promises``.

One scenario, played from JSON Lines through ``journey append``: a complaint nobody answered,
a complaint where customer care promised a refund and billing said no (a contradiction), a
late upload of last week's outsourced call-centre notes, and another customer's promises.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from journey.cli import main
from projections.cases import tracking_key

NOW = "2026-05-20T12:00:00+02:00"
MARTA = {"customer_id": "C-7001"}
PEDRO = {"customer_id": "C-7002"}


def _f(fid: str, kind: str, at: str, customer: dict[str, str], department: str | None,
       agent: str | None, data: dict[str, Any]) -> dict[str, Any]:
    fact: dict[str, Any] = {"type": kind, "id": fid, "source": "crm", "customer": customer,
                            "occurred_at": at, "data": data}
    if department:
        fact["department"] = department
    if agent:
        fact["agent"] = agent
    return fact


THIS_WEEK = [
    _f("r1", "customer.registered", "2026-04-01T10:00:00+02:00", MARTA, "sales", None,
       {"name": "Marta Gil", "phone": "+34600700001"}),
    _f("r2", "customer.registered", "2026-04-02T10:00:00+02:00", PEDRO, "sales", None,
       {"name": "Pedro Ruiz", "phone": "+34600700002"}),
    _f("k1", "case.opened", "2026-05-01T10:00:00+02:00", MARTA, "customer_care", "CC-1",
       {"case_id": "K-701", "kind": "complaint", "subject": "router never delivered"}),
    _f("k2", "case.opened", "2026-05-10T09:00:00+02:00", MARTA, "customer_care", "CC-2",
       {"case_id": "K-702", "kind": "complaint", "subject": "charged twice in April"}),
    _f("p1", "promise.made", "2026-05-10T09:10:00+02:00", MARTA, "customer_care", "CC-2",
       {"promise_id": "P-1", "case_id": "K-702", "what": "refund the duplicate charge",
        "due_by": "2026-05-15", "topic": "refund"}),
    _f("k3", "case.transferred", "2026-05-11T10:00:00+02:00", MARTA, "customer_care", "CC-2",
       {"case_id": "K-702", "to": "billing", "reason": "refunds are billing's"}),
    _f("k4", "case.responded", "2026-05-13T16:00:00+02:00", MARTA, "billing", "B-7",
       {"case_id": "K-702", "text": "A refund is not possible: the charge was correct.",
        "answer": "no", "topic": "refund"}),
    _f("k5", "case.opened", "2026-05-12T08:00:00+02:00", PEDRO, "technical_service", "T-4",
       {"case_id": "K-703", "kind": "incident", "subject": "no internet"}),
    _f("p2", "promise.made", "2026-05-12T08:30:00+02:00", PEDRO, "technical_service", "T-4",
       {"promise_id": "P-2", "case_id": "K-703", "what": "technician visit", "due_by": "2026-05-13"}),
    _f("p3", "promise.kept", "2026-05-13T12:00:00+02:00", PEDRO, "technical_service", "T-9",
       {"promise_id": "P-2"}),
    _f("k6", "case.resolved", "2026-05-14T09:00:00+02:00", PEDRO, "technical_service", "T-9",
       {"case_id": "K-703", "resolution": "splitter replaced"}),
    _f("p4", "promise.made", "2026-05-14T09:05:00+02:00", PEDRO, "sales", "A-1",
       {"promise_id": "P-3", "what": "loyalty discount", "due_by": "2026-06-30"}),
]

#: Last week's calls and notes from the outsourced call centre, uploaded after all of the above.
LAST_WEEK = [
    _f("x1", "call.outbound", "2026-05-12T11:00:00+02:00", {"phone": "+34600700001"},
       "outsourced_callcenter", "X-150", {"purpose": "service", "outcome": "answered", "duration_s": 300}),
    _f("x2", "case.note", "2026-05-12T11:05:00+02:00", MARTA, "outsourced_callcenter", "X-150",
       {"case_id": "K-702", "text": "customer says the refund was promised by phone"}),
]


def run(capsys: pytest.CaptureFixture[str], home: Path, *args: str) -> tuple[int, str, str]:
    code = main(["--data-dir", str(home), *args])
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], home: Path, *args: str) -> Any:
    code, out, err = run(capsys, home, *args, "--json")
    assert code == 0, err
    return orjson.loads(out)


def _write(path: Path, facts: list[dict[str, Any]]) -> Path:
    path.write_text("".join(orjson.dumps(f).decode() + "\n" for f in facts))
    return path


@pytest.fixture
def home(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    ledger = tmp_path / "ledger"
    for name, facts in (("this-week.jsonl", THIS_WEEK), ("last-week.jsonl", LAST_WEEK)):
        code, out, _ = run(capsys, ledger, "append", str(_write(tmp_path / name, facts)))
        assert code == 0, out
        assert out.strip() == f"recorded {len(facts)}, duplicates 0, rejected 0"
    return ledger


def test_overdue_complaints_are_the_unanswered_ones_past_their_deadline(
        capsys: pytest.CaptureFixture[str], home: Path) -> None:
    doc = run_json(capsys, home, "cases", "--overdue", "--now", NOW)
    (case,) = doc["cases"]
    assert (case["case_id"], case["customer_number"], case["owner_department"]) == ("K-701", "C-7001", "customer_care")
    assert case["tracking_key"] == tracking_key("K-701")
    assert case["overdue"] is True
    assert case["answer_due_by"] == "2026-05-16T10:00:00+02:00"  # 15 days after opening
    assert case["overdue_s"] == 4 * 86400 + 2 * 3600
    assert doc["answer_days"] == 15

    code, out, _ = run(capsys, home, "cases", "--overdue", "--now", NOW)
    assert code == 0
    assert "1 case, 1 overdue" in out
    assert tracking_key("K-701") in out and "OVERDUE 4d 2h" in out
    assert "K-702" not in out  # answered in time
    assert "2026-05-01 10:00" in out and "T10:00:00" not in out  # local time, not raw JSON


def test_the_complaint_deadline_is_configurable(capsys: pytest.CaptureFixture[str], home: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    assert run_json(capsys, home, "cases", "--overdue", "--now", NOW, "--days", "30")["cases"] == []
    monkeypatch.setenv("JOURNEY_COMPLAINT_DAYS", "30")
    assert run_json(capsys, home, "cases", "--overdue", "--now", NOW)["cases"] == []
    doc = run_json(capsys, home, "cases", "--overdue", "--now", NOW, "--days", "10")  # the flag wins
    assert [c["case_id"] for c in doc["cases"]] == ["K-701"]
    assert doc["cases"][0]["answer_due_by"] == "2026-05-11T10:00:00+02:00"


def test_cases_list_shows_owner_clocks_and_filters(capsys: pytest.CaptureFixture[str], home: Path) -> None:
    by_id = {c["case_id"]: c for c in run_json(capsys, home, "cases", "--now", NOW)["cases"]}
    assert sorted(by_id) == ["K-701", "K-702", "K-703"]
    k702 = by_id["K-702"]
    assert (k702["status"], k702["owner_department"], k702["transfers"]) == ("open", "billing", 1)
    assert k702["departments"] == ["customer_care", "billing", "outsourced_callcenter"]
    assert k702["first_response_at"] == "2026-05-13T16:00:00+02:00"
    assert k702["response_s"] == 3 * 86400 + 7 * 3600
    assert (k702["answered_late"], k702["overdue"]) == (False, False)
    assert (k702["late_events"], k702["contradictions"]) == (1, 1)
    k703 = by_id["K-703"]
    assert (k703["status"], k703["answer_due_by"], k703["overdue"]) == ("resolved", None, False)
    assert k703["resolution_s"] == 2 * 86400 + 3600
    assert k703["first_response_type"] == "case.resolved"  # the resolution told the customer

    def ids(*flags: str) -> list[str]:
        return sorted(c["case_id"] for c in run_json(capsys, home, "cases", "--now", NOW, *flags)["cases"])

    assert ids("--open") == ["K-701", "K-702"]
    assert ids("--department", "billing") == ["K-702"]
    assert ids("--kind", "incident") == ["K-703"]
    assert ids("--customer", "+34 600 700 002") == ["K-703"]


def test_one_case_by_tracking_key_with_contradiction_and_late_notes(
        capsys: pytest.CaptureFixture[str], home: Path) -> None:
    key = tracking_key("K-702")
    case = run_json(capsys, home, "case", key.lower().replace("-", ""), "--now", NOW)
    assert (case["case_id"], case["tracking_key"], case["customer"]["customer_number"]) == ("K-702", key, "C-7001")
    (contradiction,) = case["contradictions"]
    assert contradiction["topic"] == "refund"
    yes, no = contradiction["yes"], contradiction["no"]
    assert (yes["type"], yes["department"], yes["promise_id"]) == ("promise.made", "customer_care", "P-1")
    assert (no["type"], no["department"], no["agent"], no["answer"]) == ("case.responded", "billing", "B-7", "no")
    history = case["history"]
    assert [(h["type"], h.get("department"), h["late"]) for h in history] == [
        ("case.opened", "customer_care", False),
        ("case.transferred", "customer_care", False),
        ("case.note", "outsourced_callcenter", True),  # uploaded after billing's later answer
        ("case.responded", "billing", False)]
    assert [p["promise_id"] for p in case["promises"]] == ["P-1"]

    code, out, _ = run(capsys, home, "case", "K-702", "--now", NOW)
    assert code == 0
    assert f"tracking key {key}" in out
    assert "Contradictions (1)" in out and "“refund”" in out
    assert "YES" in out and "NO " in out
    note = next(line for line in out.splitlines() if "customer says the refund" in line)
    assert "2026-05-12 11:05" in note and "LATE" in note and "the outsourced call centre (X-150)" in note
    assert "OVERDUE" in out  # the promise P-1, due 2026-05-15, is still open


def test_a_late_upload_changes_no_clock(capsys: pytest.CaptureFixture[str], home: Path, tmp_path: Path) -> None:
    """The same facts recorded in the order they happened give the same case, only unmarked."""
    in_order = sorted(THIS_WEEK + LAST_WEEK, key=lambda f: f["occurred_at"])
    other = tmp_path / "in-order"
    code, _, _ = run(capsys, other, "append", str(_write(tmp_path / "all.jsonl", in_order)))
    assert code == 0

    def comparable(doc: Any) -> Any:
        if isinstance(doc, dict):
            return {k: comparable(v) for k, v in doc.items()
                    if k not in ("late", "late_events", "recorded_at", "as_of_position")}
        if isinstance(doc, list):
            return [comparable(v) for v in doc]
        return doc

    late = run_json(capsys, home, "case", "K-702", "--now", NOW)
    timely = run_json(capsys, other, "case", "K-702", "--now", NOW)
    assert [h["late"] for h in timely["history"]] == [False] * 4
    assert comparable(late) == comparable(timely)


def test_overdue_promises(capsys: pytest.CaptureFixture[str], home: Path) -> None:
    doc = run_json(capsys, home, "promises", "--overdue", "--now", NOW)
    (promise,) = doc["promises"]
    assert (promise["promise_id"], promise["case_id"], promise["status"]) == ("P-1", "K-702", "open")
    assert promise["made_department"] == "customer_care"
    assert promise["due_at"] == "2026-05-16T00:00:00+02:00"  # the end of the day promised
    code, out, _ = run(capsys, home, "promises", "--overdue", "--now", NOW)
    assert code == 0
    assert "P-1" in out and "OVERDUE" in out and "2026-05-15 (end of day)" in out
    assert "P-2" not in out and "P-3" not in out

    pedro = {p["promise_id"]: p for p in run_json(capsys, home, "promises", "--customer", "C-7002")["promises"]}
    assert pedro["P-2"]["status"] == "kept"
    assert (pedro["P-2"]["closed_department"], pedro["P-2"]["closed_agent"]) == ("technical_service", "T-9")
    assert (pedro["P-3"]["status"], pedro["P-3"]["case_id"]) == ("open", None)
    assert [p["promise_id"] for p in run_json(capsys, home, "promises", "--open", "--now", NOW)["promises"]] == [
        "P-1", "P-3"]


@pytest.mark.parametrize(("args", "code", "message"), [
    (("case", "K-999"), 3, "no case with id or tracking key 'K-999'"),
    (("cases", "--customer", "@nobody"), 3, "nobody known as '@nobody'"),
    (("promises", "--customer", "phone:abc"), 2, "not a phone number"),
    (("cases", "--now", "yesterday"), 2, "--now"),
    (("cases", "--now", "2026-05-20T12:00:00"), 2, "has no UTC offset"),
    (("cases", "--days", "-1"), 2, "must not be negative"),
])
def test_bad_usage_and_unknown_names(capsys: pytest.CaptureFixture[str], home: Path, args: tuple[str, ...],
                                     code: int, message: str) -> None:
    got, _, err = run(capsys, home, *args)
    assert got == code
    assert message in err


def test_the_configured_deadline_is_the_one_the_customer_view_shows(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEY_COMPLAINT_DAYS", "30")
    ledger = tmp_path / "ledger"
    code, out, _ = run(capsys, ledger, "append", str(_write(tmp_path / "facts.jsonl", THIS_WEEK)))
    assert code == 0, out
    cases = {c["case_id"]: c for c in run_json(capsys, ledger, "customer", "C-7001")["cases"]}
    assert (cases["K-701"]["answer_days"], cases["K-701"]["answer_due_by"]) == (30, "2026-05-31T10:00:00+02:00")


def test_the_configured_instant_range_refuses_facts_at_the_door(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEY_LATEST", "2026-04-15T00:00:00Z")
    ledger = tmp_path / "ledger"
    code, out, _ = run(capsys, ledger, "append", str(_write(tmp_path / "facts.jsonl", THIS_WEEK)))
    assert code == 1
    assert f"recorded 2, duplicates 0, rejected {len(THIS_WEEK) - 2}" in out
    (rejects,) = (ledger / "rejects").glob("*.rejects.jsonl")
    reasons = [orjson.loads(line)["reason"] for line in rejects.read_text().splitlines()]
    assert len(reasons) == len(THIS_WEEK) - 2
    assert all("is after 2026-04-15T00:00:00+00:00, the latest instant" in r for r in reasons), reasons
