"""The auditors' and admins' endpoints over a real ledger: a contact decision as of a past
instant, the replay of a recorded one, the hash chains verified (intact, then tampered with),
the subject-access export as a download, forget behind a typed confirmation, and the
quarantine a page at a time."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from journey.api.app import create_app
from journey.cli import main
from journey.config import Settings
from tests import planted
from tests.api.conftest import IBAN, NID, SCENARIO, auth, fact, make_tokens, record
from tests.ledgers import open_journey

OBJECTION_LATE = fact("o-late", "objection.recorded", "2026-03-01T09:00:00+01:00", {"customer_id": "C-1002"},
                      {"channels": "all", "purpose": "service"}, "customer_care", "CC-9")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("api-audit") / "ledger"
    record(path, SCENARIO)
    return path


@pytest.fixture(scope="module")
def cli_export(home: Path) -> dict[str, Any]:
    """What ``journey subject-access C-1001 --out FILE`` writes, before the server holds the ledger."""
    out = home.parent / "ana-export.json"
    assert main(["--data-dir", str(home), "subject-access", "C-1001", "--out", str(out)]) == 0
    doc: dict[str, Any] = orjson.loads(out.read_bytes())
    return doc


@pytest.fixture(scope="module")
def served(home: Path, cli_export: dict[str, Any]) -> Iterator[tuple[TestClient, dict[str, str]]]:
    secrets = make_tokens(home)
    with TestClient(create_app(Settings(data_dir=home), duties=[])) as client:
        yield client, secrets


def _contact(client: TestClient, secret: str, ref: str, **params: str) -> Any:
    return client.get(f"/api/customers/{ref}/contact-as-of", params=params, headers=auth(secret))


# -------------------------------------------------------------------- contact decisions as of


def test_a_contact_decision_as_of_an_instant_gives_the_reasons_of_then(
        served: tuple[TestClient, dict[str, str]]) -> None:
    client, secrets = served
    auditor = secrets["auditor"]
    before = _contact(client, auditor, "C-1001", channel="phone", purpose="commercial",
                      at="2026-01-20T11:00:00+01:00", axis="occurred")
    assert before.status_code == 200, before.text
    doc = before.json()
    assert doc["decision"]["allowed"] is True and doc["policy_version"] == "2026-11-1"
    assert doc["customer_number"] == "C-1001" and doc["axis"] == "occurred"
    after = _contact(client, auditor, "C-1001", channel="phone", purpose="commercial",
                     at="2026-02-02T11:00:00+01:00", axis="occurred").json()
    assert after["decision"]["allowed"] is False
    assert [r["code"] for r in after["decision"]["reasons"]] == ["objection"]
    assert after["history"]["facts"] > doc["history"]["facts"]
    # As recorded: nothing was recorded by then, so nobody was known.
    unknown = _contact(client, auditor, "C-1001", channel="phone", purpose="commercial",
                       at="2026-02-02T11:00:00+01:00")
    assert unknown.status_code == 404 and "by 2026-02-02" in unknown.json()["error"]


def test_as_recorded_leaves_out_what_was_recorded_later(served: tuple[TestClient, dict[str, str]]) -> None:
    """An objection that happened in March but was recorded now: the ledger did not know it an
    instant before, though it had happened by then."""
    client, secrets = served
    auditor = secrets["auditor"]
    then = datetime.now(UTC).isoformat()  # to the microsecond, as recorded_at is
    assert client.post("/api/facts", json=OBJECTION_LATE, headers=auth(secrets["admin"])).status_code == 201
    known = _contact(client, auditor, "C-1002", channel="phone", purpose="service", at=then).json()
    assert known["axis"] == "recorded" and known["decision"]["allowed"] is True
    happened = _contact(client, auditor, "C-1002", channel="phone", purpose="service", at=then,
                        axis="occurred").json()
    assert happened["decision"]["allowed"] is False
    assert happened["history"]["recorded_late"] >= 1
    assert [r["code"] for r in happened["decision"]["reasons"]] == ["objection"]


def test_contact_as_of_refuses_bad_questions(served: tuple[TestClient, dict[str, str]]) -> None:
    client, secrets = served
    auditor = secrets["auditor"]
    bad = _contact(client, auditor, "C-1001", channel="phone", purpose="commercial", at="yesterday")
    assert bad.status_code == 422 and "at" in bad.json()["error"]
    nobody = _contact(client, auditor, "C-4040", channel="phone", purpose="commercial",
                      at="2026-02-02T11:00:00+01:00")
    assert nobody.status_code == 404 and "C-4040" in nobody.json()["error"]
    assert _contact(client, auditor, "C-1001", channel="pigeon", purpose="commercial",
                    at="2026-02-02T11:00:00+01:00").status_code == 422
    assert _contact(client, secrets["sales"], "C-1001", channel="phone", purpose="commercial",
                    at="2026-02-02T11:00:00+01:00").status_code == 403


def test_a_made_contact_replays_against_the_policy_of_its_day(served: tuple[TestClient, dict[str, str]]) -> None:
    """The scenario's commercial call of 3 February, made after the customer's objection."""
    client, secrets = served
    h = auth(secrets["auditor"])
    violation = client.get("/api/violations", headers=h).json()["violations"][0]
    replay = client.get(f"/api/decisions/{violation['event_id']}/replay", headers=h)
    assert replay.status_code == 200, replay.text
    doc = replay.json()
    assert doc["recorded"]["allowed"] is True and doc["recomputed"]["allowed"] is False
    assert doc["agree"] is False
    assert [r["code"] for r in doc["recomputed"]["reasons"]] == ["objection"]
    assert client.get("/api/decisions/no-such-event/replay", headers=h).status_code == 404


# -------------------------------------------------------------------- subject access


def test_the_export_downloads_what_the_cli_writes(served: tuple[TestClient, dict[str, str]],
                                                  cli_export: dict[str, Any]) -> None:
    client, secrets = served
    answer = client.get("/api/customers/C-1001/subject-access", headers=auth(secrets["auditor"]))
    assert answer.status_code == 200, answer.text
    disposition = answer.headers["content-disposition"]
    assert disposition.startswith("attachment;")
    assert f'filename="subject-access-{cli_export["summary"]["customer_id"]}.json"' in disposition
    doc = orjson.loads(answer.content)
    assert NID in answer.text and IBAN in answer.text
    # The same export, up to when it was made (and the decision the other tests asked for,
    # which is not a fact of Ana's).
    for export in (doc, cli_export):
        export["summary"].pop("exported_at")
    assert doc["raw_events"] == cli_export["raw_events"]
    assert doc["summary"] == cli_export["summary"] | {"store_position": doc["summary"]["store_position"]}
    assert doc["tables"].keys() == cli_export["tables"].keys()
    assert doc["customer_view"]["name"] == cli_export["customer_view"]["name"] == "Ana Martín"
    assert client.get("/api/customers/C-4040/subject-access",
                      headers=auth(secrets["auditor"])).status_code == 404
    assert client.get("/api/customers/C-1001/subject-access",
                      headers=auth(secrets["billing"])).status_code == 403


# -------------------------------------------------------------------- forget


def test_forget_refuses_a_wrong_confirmation_and_erases_with_the_right_one(
        served: tuple[TestClient, dict[str, str]], home: Path) -> None:
    client, secrets = served
    h = auth(secrets["auditor"])
    ledger_id = client.get("/api/customers/C-1001", headers=h).json()["customer_id"]
    for confirm in ("C-1002", "", "Ana"):
        wrong = client.post("/api/customers/C-1001/forget", headers=h,
                            json={"confirm": confirm, "reason": "art. 17 request"})
        assert wrong.status_code == 422, (confirm, wrong.text)
        assert "type the customer's reference" in wrong.json()["error"]
    no_reason = client.post("/api/customers/C-1001/forget", headers=h,
                            json={"confirm": "C-1001", "reason": "  "})
    assert no_reason.status_code == 422 and "reason" in no_reason.json()["error"]
    assert client.get("/api/customers/C-1001", headers=h).json()["name"] == "Ana Martín"  # nothing forgotten
    assert client.post("/api/customers/C-4040/forget", headers=h,
                       json={"confirm": "C-4040", "reason": "x"}).status_code == 404

    done = client.post("/api/customers/C-1001/forget", headers=h,
                       json={"confirm": "  ana   MARTÍN ", "reason": "art. 17 request"})
    assert done.status_code == 200, done.text
    report = done.json()
    assert report["customer_id"] == ledger_id and report["already_forgotten"] is False
    assert report["projected"] is True and report["records"]
    # A tombstone is left; the personal data is unreadable everywhere the API answers from.
    tomb = client.get(f"/api/customers/{ledger_id}", headers=h)
    assert tomb.status_code == 200 and tomb.json()["forgotten"] is True
    assert tomb.json()["name"] is None
    assert client.get("/api/customers/C-1001", headers=h).status_code == 404
    assert client.get("/api/customers/+34600111001", headers=h).status_code == 404
    export = client.get(f"/api/customers/{ledger_id}/subject-access", headers=h)
    assert export.status_code == 200 and orjson.loads(export.content)["summary"]["forgotten"] is True
    for secret in ("Ana Mart", "600111001", "ana@example.es", IBAN, NID, "charged twice"):
        assert secret not in export.text and secret not in tomb.text
    assert client.get("/api/customers/C-1002", headers=h).json()["name"] == "Luis Gómez"  # nobody else
    with sqlite3.connect(home / "ledger.sqlite") as con:
        stored = b"".join(bytes(r[0]) for r in con.execute("SELECT state FROM stored_events"))
    assert b"ana@example.es" not in stored


def test_forget_is_for_auditors_and_admins(served: tuple[TestClient, dict[str, str]]) -> None:
    client, secrets = served
    for role in ("billing", "analyst", "customer_care"):
        answer = client.post("/api/customers/C-1002/forget", headers=auth(secrets[role]),
                             json={"confirm": "C-1002", "reason": "test"})
        assert answer.status_code == 403, role
        assert answer.json()["error"] == f"role {role!r} may not forget customers"


# -------------------------------------------------------------------- verify


def _verified(client: TestClient, secret: str) -> dict[str, Any]:
    started = client.post("/api/audit/verify", headers=auth(secret))
    assert started.status_code == 200, started.text
    assert started.json()["state"] in ("running", "done")
    deadline = time.monotonic() + 120
    while True:
        doc: dict[str, Any] = client.get("/api/audit/verify", headers=auth(secret)).json()
        if doc["state"] != "running":
            return doc
        assert time.monotonic() < deadline, "the verification did not end in 120 s"
        time.sleep(0.05)


def test_verify_reports_a_healthy_ledger_then_the_tampered_event(tmp_path: Path) -> None:
    home = tmp_path / "ledger"
    record(home, SCENARIO)
    secrets = make_tokens(home)
    with TestClient(create_app(Settings(data_dir=home), duties=[])) as client:
        idle = client.get("/api/audit/verify", headers=auth(secrets["admin"])).json()
        assert idle["state"] == "idle" and idle["report"] is None
        healthy = _verified(client, secrets["auditor"])
        assert healthy["state"] == "done" and healthy["started_by"] == "t-auditor", healthy
        report = healthy["report"]
        assert report["intact"] is True and report["first_broken"] is None
        assert report["events"] == report["chained"] == len(SCENARIO)

        with sqlite3.connect(home / "ledger.sqlite") as con:
            [(state,)] = con.execute("SELECT state FROM stored_events WHERE rowid = 5").fetchall()
            changed = bytearray(state)
            changed[20] ^= 0x01
            con.execute("UPDATE stored_events SET state = ? WHERE rowid = 5", (bytes(changed),))
        broken = _verified(client, secrets["admin"])["report"]
        assert broken["intact"] is False
        assert broken["first_broken"]["position"] == 5
        assert "stored bytes" in broken["first_broken"]["what"]
        for role in ("sales", "analyst"):
            assert client.post("/api/audit/verify", headers=auth(secrets[role])).status_code == 403


# -------------------------------------------------------------------- quarantine


def test_the_quarantine_pages_with_a_total(tmp_path: Path) -> None:
    home = tmp_path / "ledger"
    record(home, SCENARIO)
    j = open_journey(home)
    try:
        view = j.customer("C-1001")
        assert view is not None
        ana = view["customer_id"]
    finally:
        j.close()
    positions = [planted.plant(home / "ledger.sqlite", ana, planted.FAULTS[name](ana))
                 for name in ("year-one", "warranty-overflow", "not-json", "deep-nesting")]
    secrets = make_tokens(home)
    with TestClient(create_app(Settings(data_dir=home), duties=[])) as client:
        h = auth(secrets["admin"])
        first = client.get("/api/quarantine", params={"limit": 3}, headers=h)
        assert first.status_code == 200, first.text
        doc = first.json()
        assert doc["total"] == 4 and doc["offset"] == 0 and doc["limit"] == 3
        assert [e["position"] for e in doc["entries"]] == positions[:3]
        assert doc["store_position"] == doc["projection_position"] == max(positions)
        assert all(e["reason"] and e["quarantined_at"] for e in doc["entries"])
        rest = client.get("/api/quarantine", params={"limit": 3, "offset": 3}, headers=h).json()
        assert rest["total"] == 4 and [e["position"] for e in rest["entries"]] == positions[3:]
        past = client.get("/api/quarantine", params={"offset": 10}, headers=h).json()
        assert past["total"] == 4 and past["entries"] == []
        assert client.get("/api/quarantine", params={"limit": 0}, headers=h).status_code == 422
        for role in ("auditor", "analyst", "billing"):
            answer = client.get("/api/quarantine", headers=auth(secrets[role]))
            assert answer.status_code == 403, role
