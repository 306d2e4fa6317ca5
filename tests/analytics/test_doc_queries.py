"""The ten questions of docs/analytics.md, run as written against a snapshot of the demo."""

from __future__ import annotations

import re
from contextlib import closing
from pathlib import Path
from typing import Any

import orjson
import pytest

from domain.identity import customer_uuid
from journey.analytics.snapshots import open_snapshot
from tests.analytics.helpers import run

DOC = Path(__file__).resolve().parents[2] / "docs" / "analytics.md"


def questions() -> list[tuple[str, str]]:
    """(heading, SQL) of every ```sql block under a "### N." heading."""
    text = DOC.read_text()
    found = re.findall(r"^### (\d+\. [^\n]+)\n(?:(?!^### ).)*?```sql\n(.*?)```", text, re.S | re.M)
    return [(heading, sql) for heading, sql in found]


QUESTIONS = questions()


def test_the_doc_has_ten_questions() -> None:
    assert [h.split(".")[0] for h, _ in QUESTIONS] == [str(n) for n in range(1, 11)]
    assert len(re.findall(r"```sql\n", DOC.read_text())) == 10


def answer(capsys: pytest.CaptureFixture[str], home: Path, sql: str) -> list[dict[str, Any]]:
    code, out, err = run(capsys, home, "sql", sql, "--json")
    assert code == 0, err
    rows: list[dict[str, Any]] = orjson.loads(out)
    return rows


@pytest.mark.parametrize(("heading", "sql"), QUESTIONS, ids=[h.split(".")[0] for h, _ in QUESTIONS])
def test_every_question_runs_and_answers(heading: str, sql: str, demo_home: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    rows = answer(capsys, demo_home, sql)
    assert rows, heading


def _by(rows: list[dict[str, Any]], key: str) -> dict[Any, dict[str, Any]]:
    return {r[key]: r for r in rows}


def test_contacts_after_objections_find_the_six_calls(demo_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sql = QUESTIONS[0][1]
    rows = _by(answer(capsys, demo_home, sql), "campaign")
    assert rows["fibra"]["contacts"] >= 3 and rows["movil"]["contacts"] >= 3
    # Only Ramón's facts: exactly his six calls, three per campaign: fibra by sales, movil by the outsourced call centre.
    ramon = str(customer_uuid("C-900001"))
    con, snapshot = open_snapshot(demo_home / "analytics")
    with closing(con):
        path = snapshot.location.resolve() / "events.parquet"
        con.execute(f"CREATE OR REPLACE VIEW events AS SELECT * REPLACE (CAST(data AS JSON) AS data) "
                    f"FROM read_parquet('{path}') WHERE customer_id = '{ramon}'")
        cursor = con.execute(sql)
        names = [d[0] for d in cursor.description]
        only = [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]
    assert [(r["campaign"], r["contacts"], r["customers"]) for r in only] == [("fibra", 3, 1), ("movil", 3, 1)]
    assert [r["departments"] for r in only] == [["sales"], ["outsourced_callcenter"]]


def test_the_same_count_as_journey_violations(demo_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = answer(capsys, demo_home, QUESTIONS[0][1])
    code, out, _ = run(capsys, demo_home, "violations", "--json")
    assert code == 0
    objections = [v for v in orjson.loads(out)["violations"]
                  if any(r["code"] == "objection" for r in v["reasons"])]
    assert sum(r["contacts"] for r in rows) == len(objections)


def test_the_other_answers_are_plausible(demo_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    q = {int(h.split(".")[0]): sql for h, sql in QUESTIONS}
    networks = _by(answer(capsys, demo_home, q[2]), "network")
    assert "twitter" in networks
    assert all(r["answered"] + r["unanswered"] == r["mentions"] for r in networks.values())
    assert all(r["median_hours"] is None or r["median_hours"] >= 0 for r in networks.values())

    overdue = answer(capsys, demo_home, q[3])
    assert all(r["overdue"] > 0 and r["avg_days_late"] > 0 for r in overdue)

    churn = answer(capsys, demo_home, q[4])
    assert {r["outcome"] for r in churn} <= {"not resolved within 30 days", "resolved within 30 days"}
    assert all(0 <= r["ended_contract_90d"] <= r["complaints"] for r in churn)

    days = answer(capsys, demo_home, q[5])
    assert 1 <= len(days) <= 15 and "phone" in days[0]

    promises = answer(capsys, demo_home, q[6])
    assert all(r["kept"] + r["broken"] <= r["promises"] for r in promises)
    assert sum(r["broken"] for r in promises) >= 1  # the story's P-S4 at least

    transfers = _by(answer(capsys, demo_home, q[7]), "transfers")
    assert 0 in transfers and 1 in transfers

    claims = answer(capsys, demo_home, q[8])
    assert any("W-S3" in (r["claim_ids"] or []) for r in claims)  # Jordi, no paper invoice
    assert sum(r["approved_without_invoice"] for r in claims) >= 1

    late = _by(answer(capsys, demo_home, q[9]), "source")
    # the demo's late uploads: the call centres' batches, the stores' offline days
    assert late and all(s.startswith(("callcenter", "pos-")) for s in late)
    assert any(s.startswith("callcenter") for s in late)
    assert all(r["late"] > 0 for r in late.values())
    assert all(r["median_lag_hours"] >= 1 for r in late.values())  # hours to days, not minutes

    changes = _by(answer(capsys, demo_home, q[10]), "department")
    assert "billing" in changes  # Pilar's "data cleanup"
    assert all(r["requested_by"] != "customer" for r in changes.values())
    # customer care changes addresses at the customer's request; every company change is notified
    assert "customer_care" not in changes
    assert all(r["letter_sent"] == r["changes"] and r["not_notified"] == 0 for r in changes.values())
