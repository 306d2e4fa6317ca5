"""Every endpoint answers with the document the CLI prints with --json, and errors as JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from journey.cli import main
from tests.api.conftest import ANA, NOW, auth

ADMIN = "admin"


def cli_json(capsys: pytest.CaptureFixture[str], home: Path, *args: str) -> Any:
    capsys.readouterr()
    code = main(["--data-dir", str(home), *args, "--json"])
    out, err = capsys.readouterr()
    assert code in (0, 4), err
    return orjson.loads(out)


def get(client: TestClient, secrets: dict[str, str], path: str, role: str = ADMIN,
        **params: Any) -> Any:
    response = client.get(path, headers=auth(secrets[role]), params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()


def without_clock(doc: Any) -> Any:
    """A customer view without what depends on the instant it was rendered at."""
    if isinstance(doc, dict):
        return {k: without_clock(v) for k, v in doc.items() if k not in ("age_s", "overdue_s")}
    if isinstance(doc, list):
        return [without_clock(v) for v in doc]
    return doc


@pytest.fixture(scope="module")
def served(client: TestClient, secrets: dict[str, str]) -> TestClient:
    """The API has opened the projections (the CLI below shares the process's DuckDB)."""
    get(client, secrets, "/api/me")
    return client


def test_customer_is_the_cli_document_with_the_latest_50_events(
        served: TestClient, secrets: dict[str, str], home: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    api = get(served, secrets, "/api/customers/+34600111001")
    cli = cli_json(capsys, home, "customer", "+34600111001")
    assert api["timeline"] == cli["timeline"][-50:]
    page = api.pop("timeline_page")
    assert page == {"limit": 50, "total": len(cli["timeline"]), "next_before": None}
    assert without_clock(api) == without_clock(cli)
    for ref in ("C-1001", "ana@example.es", "@ana_m",
                api["customer_id"], "national_id:12345678z", "phone:+34 600 111 001"):
        assert get(served, secrets, f"/api/customers/{ref}")["customer_id"] == api["customer_id"]


def test_customer_shows_the_latest_50_events_and_continues_with_the_timeline(
        served: TestClient, secrets: dict[str, str], home: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    cli = cli_json(capsys, home, "customer", "C-1002")["timeline"]
    assert len(cli) == 61
    api = get(served, secrets, "/api/customers/C-1002")
    assert api["timeline"] == cli[-50:]
    assert api["timeline_page"] == {"limit": 50, "total": 61, "next_before": cli[-50]["position"]}
    older = get(served, secrets, "/api/customers/C-1002/timeline",
                before=api["timeline_page"]["next_before"], limit=100)
    assert older["events"] == cli[:-50][::-1]
    assert older["next_before"] is None


def test_timeline_pages_newest_first_until_next_before_is_null(
        served: TestClient, secrets: dict[str, str], home: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    cli = cli_json(capsys, home, "customer", "C-1001")["timeline"]
    seen: list[dict[str, Any]] = []
    before = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3}
        if before is not None:
            params["before"] = before
        page = get(served, secrets, "/api/customers/C-1001/timeline", **params)
        assert page["order"] == "newest first" and page["total"] == len(cli)
        assert len(page["events"]) <= 3
        seen += page["events"]
        pages += 1
        before = page["next_before"]
        if before is None:
            break
    assert seen == cli[::-1]
    assert pages == -(-len(cli) // 3)


def test_as_of_is_the_cli_document_with_one_page_of_each_list(
        served: TestClient, secrets: dict[str, str], home: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    timeline = cli_json(capsys, home, "customer", "C-1002")["timeline"]
    at = timeline[30]["occurred_at"]
    for param, flag in (("occurred_by", "--occurred-by"), ("recorded_by", "--as-of")):
        moment = at if param == "occurred_by" else timeline[30]["recorded_at"]
        cli = cli_json(capsys, home, "customer", "C-1002", flag, moment)
        api = get(served, secrets, "/api/customers/C-1002/as-of", **{param: moment, "limit": 5})
        assert api["timeline"] == cli["timeline"][-5:] and api["recorded_late"] == cli["recorded_late"][-5:]
        assert api.pop("timeline_page") == {"limit": 5, "order": "latest", "total": len(cli["timeline"])}
        assert api.pop("recorded_late_page") == {"limit": 5, "total": len(cli["recorded_late"])}
        assert api == {**cli, "timeline": api["timeline"], "recorded_late": api["recorded_late"]}
        oldest = get(served, secrets, "/api/customers/C-1002/as-of", **{param: moment, "order": "oldest"})
        assert oldest["timeline"] == cli["timeline"][:50]


def test_as_of_refuses_unclear_instants_and_says_when_nobody_was_known(
        served: TestClient, secrets: dict[str, str]) -> None:
    h = auth(secrets[ADMIN])
    for params in ({}, {"occurred_by": NOW, "recorded_by": NOW}, {"occurred_by": "2026-01-01T10:00"},
                   {"recorded_by": "yesterday"}, {"occurred_by": "0001-01-01T00:00:00+05:00"}):
        response = served.get("/api/customers/C-1001/as-of", params=params, headers=h)
        assert response.status_code == 422, (params, response.text)
        assert set(response.json()) == {"error", "detail"}
    response = served.get("/api/customers/C-1001/as-of", params={"occurred_by": "2000-01-01T00:00:00Z"},
                          headers=h)
    assert response.status_code == 404 and "by 2000-01-01" in response.json()["error"]


def test_timeline_with_an_unknown_cursor_is_422(served: TestClient, secrets: dict[str, str]) -> None:
    response = served.get("/api/customers/C-1001/timeline", params={"before": 999999},
                          headers=auth(secrets[ADMIN]))
    assert response.status_code == 422
    assert "next_before" in response.json()["error"]


def test_unknown_and_bad_references(served: TestClient, secrets: dict[str, str]) -> None:
    for path in ("/api/customers/+34699999999", "/api/customers/nobody@example.es/timeline",
                 "/api/customers/C-404/can-contact?channel=phone&purpose=commercial"):
        response = served.get(path, headers=auth(secrets[ADMIN]))
        assert response.status_code == 404, path
        assert response.json()["error"].startswith("nobody known as")
    response = served.get("/api/customers/phone:abc", headers=auth(secrets[ADMIN]))
    assert response.status_code == 422
    assert "not a phone number" in response.json()["error"]


def test_can_contact_is_the_cli_decision(served: TestClient, secrets: dict[str, str], home: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    at = "2026-05-20T11:00:00+02:00"
    for ref, channel, purpose in (("+34600111001", "phone", "commercial"),
                                  ("C-1002", "email", "service"), ("C-1002", "phone", "commercial")):
        api = get(served, secrets, f"/api/customers/{ref}/can-contact", channel=channel,
                  purpose=purpose, at=at)
        cli = cli_json(capsys, home, "can-contact", ref, "--channel", channel, "--purpose", purpose,
                       "--at", at)
        assert api == cli
    denied = get(served, secrets, "/api/customers/C-1001/can-contact", channel="phone",
                 purpose="commercial", at=at)
    assert denied["allowed"] is False
    assert "objection" in {r["code"] for r in denied["reasons"]}
    for params in ({"channel": "pigeon", "purpose": "commercial"}, {"channel": "phone"},
                   {"channel": "phone", "purpose": "commercial", "at": "yesterday"}):
        response = served.get("/api/customers/C-1001/can-contact", params=params,
                              headers=auth(secrets[ADMIN]))
        assert response.status_code == 422, params
        assert response.json()["error"]


def test_cases_case_and_promises_are_the_cli_documents(
        served: TestClient, secrets: dict[str, str], home: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    page = ("--limit", "100")  # the API's default page; the CLI prints every row by default
    pairs = [
        (get(served, secrets, "/api/cases", now=NOW), cli_json(capsys, home, "cases", "--now", NOW, *page)),
        (get(served, secrets, "/api/cases", now=NOW, overdue="true", customer="C-1001"),
         cli_json(capsys, home, "cases", "--now", NOW, "--overdue", "--customer", "C-1001", *page)),
        (get(served, secrets, "/api/cases", now=NOW, open="true", department="billing", days=30),
         cli_json(capsys, home, "cases", "--now", NOW, "--open", "--department", "billing",
                  "--days", "30", *page)),
        (get(served, secrets, "/api/cases/K-1", now=NOW), cli_json(capsys, home, "case", "K-1", "--now", NOW)),
        (get(served, secrets, "/api/promises", now=NOW, overdue="true"),
         cli_json(capsys, home, "promises", "--now", NOW, "--overdue", *page)),
    ]
    for api, cli in pairs:
        assert api == cli
    assert pairs[0][0]["cases"][0]["case_id"] == "K-1"
    key = pairs[3][0]["tracking_key"]
    assert get(served, secrets, f"/api/cases/{key.lower()}", now=NOW)["case_id"] == "K-1"
    assert [p["promise_id"] for p in pairs[4][0]["promises"]] == ["P-1"]


def test_case_and_list_errors(served: TestClient, secrets: dict[str, str]) -> None:
    h = auth(secrets[ADMIN])
    assert served.get("/api/cases/K-404", headers=h).status_code == 404
    assert served.get("/api/cases", params={"customer": "C-404"}, headers=h).status_code == 404
    for params in ({"now": "tomorrow"}, {"days": 0}, {"overdue": "perhaps"}, {"kind": "gossip"}):
        response = served.get("/api/cases", params=params, headers=h)
        assert response.status_code == 422, params
        body = response.json()
        assert set(body) == {"error", "detail"} and body["error"]


def test_inbox_and_warranty_are_the_cli_documents(
        served: TestClient, secrets: dict[str, str], home: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    page = ("--limit", "100")  # the API's default page; the CLI prints every row by default
    assert get(served, secrets, "/api/inbox", now=NOW) == cli_json(capsys, home, "inbox", "--now", NOW, *page)
    assert (get(served, secrets, "/api/inbox", now=NOW, network="twitter", all="true")
            == cli_json(capsys, home, "inbox", "--now", NOW, "--network", "twitter", "--all", *page))
    for query in ("X200-5581-AB", "x200 5581-ab", "C-1001"):
        api = get(served, secrets, f"/api/warranty/{query}", at="2026-05-20")
        assert api == cli_json(capsys, home, "warranty", query, "--at", "2026-05-20")
    h = auth(secrets[ADMIN])
    assert served.get("/api/warranty/NOPE-1", headers=h).status_code == 404
    assert served.get("/api/warranty/X200-5581-AB", params={"at": "soon"}, headers=h).status_code == 422
    assert served.get("/api/inbox", params={"now": "2026-05-20"}, headers=h).status_code == 422


def test_errors_are_json_everywhere(served: TestClient, secrets: dict[str, str]) -> None:
    h = auth(secrets[ADMIN])
    for method, path, status in (("GET", "/api/nothing", 404), ("DELETE", "/api/me", 405),
                                 ("GET", "/api/me", 200)):
        response = served.request(method, path, headers=h)
        assert response.status_code == status
        if status != 200:
            assert set(response.json()) == {"error", "detail"}


def test_root_redirects_to_the_console_and_openapi_is_served(served: TestClient) -> None:
    response = served.get("/", follow_redirects=False)
    assert response.status_code in (302, 307)
    assert response.headers["location"] == "/console/"
    spec = served.get("/openapi.json").json()
    for path in ("/api/me", "/api/customers/{ref}", "/api/customers/{ref}/timeline",
                 "/api/customers/{ref}/as-of",
                 "/api/customers/{ref}/can-contact", "/api/cases", "/api/cases/{case_ref}",
                 "/api/promises", "/api/inbox", "/api/violations", "/api/warranty/{query}",
                 "/api/facts", "/api/session"):
        assert path in spec["paths"], path


# -------------------------------------------------------------------- writing


@pytest.fixture
def fresh(tmp_path: Path) -> tuple[TestClient, dict[str, str]]:
    from journey.api.app import create_app
    from journey.config import Settings
    from tests.api.conftest import SCENARIO, make_tokens, record

    home = tmp_path / "ledger"
    record(home, SCENARIO[:3])
    secrets = make_tokens(home)
    return TestClient(create_app(Settings(data_dir=home), duties=[])), secrets


def _call(at: str, fid: str, department: str = "customer_care") -> dict[str, Any]:
    return {"type": "call.inbound", "id": fid, "source": "pbx", "customer": ANA, "occurred_at": at,
            "department": department, "data": {"reason": "billing question"}}


def test_post_one_fact_records_it_and_reads_see_it(fresh: tuple[TestClient, dict[str, str]]) -> None:
    client, secrets = fresh
    with client:
        h = auth(secrets["customer_care"])
        before = client.get("/api/customers/C-1001", headers=h).json()
        response = client.post("/api/facts", json=_call("2026-05-19T10:00:00+02:00", "x1"), headers=h)
        assert response.status_code == 201, response.text
        body = response.json()
        assert (body["recorded"], body["duplicates"], body["rejected"], body["facts"]) == (1, 0, 0, 1)
        after = client.get("/api/customers/C-1001", headers=h).json()
        assert after["counts"]["events"] == before["counts"]["events"] + 1
        assert after["timeline"][-1]["source_id"] == "x1"
        assert after["as_of_position"] > before["as_of_position"]
        page = client.get("/api/customers/C-1001/timeline", params={"limit": 1}, headers=h).json()
        assert page["events"][0]["source_id"] == "x1"
        again = client.post("/api/facts", json=[_call("2026-05-19T10:00:00+02:00", "x1")], headers=h)
        assert again.status_code == 201
        assert (again.json()["recorded"], again.json()["duplicates"]) == (0, 1)


def test_a_rejected_fact_never_takes_its_neighbours(fresh: tuple[TestClient, dict[str, str]]) -> None:
    client, secrets = fresh
    with client:
        h = auth(secrets["customer_care"])
        bad = _call("2026-05-19T11:00:00", "y2")  # no UTC offset
        facts = [_call("2026-05-19T10:00:00+02:00", "y1"), bad, "not a fact",
                 _call("2026-05-19T12:00:00+02:00", "y4", department="billing"),
                 _call("2026-05-19T13:00:00+02:00", "y5")]
        response = client.post("/api/facts", json=facts, headers=h)
        assert response.status_code == 422
        body = response.json()
        detail = body["detail"]
        assert (detail["recorded"], detail["facts"]) == (2, 5)
        assert [r["index"] for r in detail["rejected"]] == [1, 2, 3]
        reasons = {r["index"]: r["reason"] for r in detail["rejected"]}
        assert "occurred_at" in reasons[1]
        assert "expected a JSON object" in reasons[2]
        assert "customer_care token records facts of customer_care only" in reasons[3]
        assert body["error"].startswith("3 of 5 fact(s) rejected: fact [1]: ")
        assert "The other 2 were accepted: 2 recorded" in body["error"]
        ids = [e["source_id"] for e in client.get("/api/customers/C-1001", headers=h).json()["timeline"]]
        assert "y1" in ids and "y5" in ids and "y2" not in ids and "y4" not in ids


def test_malformed_bodies(fresh: tuple[TestClient, dict[str, str]]) -> None:
    client, secrets = fresh
    with client:
        h = {**auth(secrets["admin"]), "Content-Type": "application/json"}
        response = client.post("/api/facts", content=b'{"type": ', headers=h)
        assert response.status_code == 400
        assert response.json()["error"].startswith("the body is not valid JSON")
        response = client.post("/api/facts", content=b"", headers=h)
        assert response.status_code == 400
        response = client.post("/api/facts", content=b'"a string"', headers=h)
        assert response.status_code == 422
        assert "expected a fact (a JSON object) or a list of facts" in response.json()["error"]
        response = client.post("/api/facts", content=b"[]", headers=h)
        assert response.status_code == 201 and response.json()["recorded"] == 0
        response = client.post("/api/session", content=b"{nope", headers=h)
        assert response.status_code == 400


def test_too_many_facts_is_413(fresh: tuple[TestClient, dict[str, str]],
                               monkeypatch: pytest.MonkeyPatch) -> None:
    from journey.api import app as api_app

    monkeypatch.setattr(api_app, "MAX_FACTS", 2)
    client, secrets = fresh
    with client:
        facts = [_call("2026-05-19T10:00:00+02:00", f"z{i}") for i in range(3)]
        response = client.post("/api/facts", json=facts, headers=auth(secrets["admin"]))
        assert response.status_code == 413
        assert response.json()["detail"] == {"max_facts": 2}


def test_reads_keep_what_did_not_change_and_follow_merges(
        fresh: tuple[TestClient, dict[str, str]]) -> None:
    """The server keeps views and timelines between appends: only what changed is read again."""
    client, secrets = fresh
    desk = client.app.state.desk  # type: ignore[attr-defined]
    h = auth(secrets["admin"])
    with client:
        luis = {"type": "customer.registered", "id": "luis", "source": "crm",
                "customer": {"customer_id": "C-2002"}, "occurred_at": "2026-02-10T10:00:00+01:00",
                "data": {"name": "Luis Gómez", "phone": "+34600111002"}}
        assert client.post("/api/facts", json=luis, headers=h).status_code == 201
        ana = client.get("/api/customers/C-1001", headers=h).json()
        luis_view = client.get("/api/customers/C-2002", headers=h).json()
        assert {ana["customer_id"], luis_view["customer_id"]} <= set(desk.reads.timelines)
        fact = _call("2026-05-19T10:00:00+02:00", "keep-1")
        assert client.post("/api/facts", json=fact, headers=h).status_code == 201
        assert client.get("/api/customers/C-1001", headers=h).json()["timeline"][-1]["source_id"] == "keep-1"
        assert luis_view["customer_id"] in desk.reads.timelines  # untouched: still kept
        assert client.get("/api/customers/C-2002", headers=h).json()["timeline"] == luis_view["timeline"]
        merge = {"type": "customer.merged", "id": "m1", "source": "crm", "customer": ANA,
                 "occurred_at": "2026-05-19T11:00:00+02:00", "department": "billing",
                 "data": {"from": {"customer_id": "C-2002"}, "reason": "same person"}}
        assert client.post("/api/facts", json=merge, headers=h).status_code == 201
        merged = client.get("/api/customers/+34600111002", headers=h).json()
        assert merged["customer_id"] == ana["customer_id"]
        assert "luis" in {e["source_id"] for e in merged["timeline"]}
        assert client.get("/api/customers/C-2002", headers=h).json()["customer_id"] == ana["customer_id"]
