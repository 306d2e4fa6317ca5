"""Lists page: cases, promises, the inbox, violations and a timeline, on a ledger with many of each.

Every list is walked page by page and compared with what the CLI's ``--json`` prints without
``--limit`` (the whole list, the unpaged use case): the pages concatenate to it with no row
twice and none missing, every page says the same ``total``, and the state filters split the
whole into the states it has.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from journey.cli import main
from tests.api.conftest import NOW, auth, fact, record

CUSTOMERS = 12
DEPARTMENTS = ("customer_care", "billing", "sales")


def _who(i: int) -> dict[str, str]:
    return {"customer_id": f"C-{2000 + i % CUSTOMERS}"}


def paging_scenario() -> list[dict[str, Any]]:
    """12 customers; 30 cases (complaints and requests, some answered or resolved); 25 promises
    (kept, broken, open before and after NOW); 15 tweets to the brand nobody answered; 6
    customers who objected to commercial contact and were called 3 times each after it."""
    facts = [fact(f"r{i}", "customer.registered", "2026-01-05T10:00:00+01:00", _who(i),
                  {"name": f"Cliente {i}", "phone": f"+3460020{i:04d}", "twitter": f"@cliente_{i}"},
                  "sales", "A-1") for i in range(CUSTOMERS)]
    for i in range(30):
        dept = DEPARTMENTS[i % 3]
        kind = "request" if i % 5 == 4 else "complaint"
        facts.append(fact(f"k{i}", "case.opened", f"2026-04-{1 + i % 28:02d}T10:00:00+02:00", _who(i),
                          {"case_id": f"K-P{i}", "kind": kind, "subject": f"problem {i}"}, dept, "X-1"))
        if i % 4 == 0:
            facts.append(fact(f"kr{i}", "case.resolved", "2026-05-10T10:00:00+02:00", _who(i),
                              {"case_id": f"K-P{i}", "resolution": "fixed"}, dept, "X-1"))
        elif i % 7 == 1:
            facts.append(fact(f"ka{i}", "case.responded", f"2026-04-{2 + i % 27:02d}T10:00:00+02:00",
                              _who(i), {"case_id": f"K-P{i}", "text": "we are on it"}, dept, "X-1"))
    for i in range(25):
        due = "2026-05-01" if i % 2 else "2026-06-30"
        facts.append(fact(f"p{i}", "promise.made", "2026-04-20T10:00:00+02:00", _who(i),
                          {"promise_id": f"P-P{i}", "what": f"call back {i}", "due_by": due},
                          DEPARTMENTS[i % 3], "X-2"))
        if i % 4 == 0:
            facts.append(fact(f"pk{i}", "promise.kept", "2026-04-25T10:00:00+02:00", _who(i),
                              {"promise_id": f"P-P{i}"}, DEPARTMENTS[i % 3], "X-2"))
        elif i % 4 == 1:
            facts.append(fact(f"pb{i}", "promise.broken", "2026-04-26T10:00:00+02:00", _who(i),
                              {"promise_id": f"P-P{i}"}, DEPARTMENTS[i % 3], "X-2"))
    for i in range(15):
        facts.append(fact(f"t{i}", "social.mention", f"2026-05-{1 + i:02d}T09:00:00+02:00",
                          {"twitter": f"@cliente_{i % CUSTOMERS}"},
                          {"network": "twitter", "handle": f"@cliente_{i % CUSTOMERS}",
                           "to": "@ondaluz", "text": f"hello? {i}"}, source="social-listener"))
    for i in range(6):
        facts.append(fact(f"o{i}", "objection.recorded", "2026-02-01T09:00:00+01:00", _who(i),
                          {"channels": "all", "purpose": "commercial"}, "customer_care", "CC-1"))
        for j in range(3):
            facts.append(fact(f"c{i}-{j}", "call.outbound", f"2026-03-{2 + j:02d}T11:00:00+01:00",
                              _who(i), {"purpose": "commercial", "campaign": "spring"},
                              DEPARTMENTS[(i + j) % 2 + 1], f"S-{j}"))
    return facts


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This module's own ledger (the shared fixtures' app, client and tokens are built on it)."""
    path = tmp_path_factory.mktemp("paging") / "ledger"
    record(path, paging_scenario())
    return path


@pytest.fixture(scope="module")
def h(client: TestClient, secrets: dict[str, str]) -> dict[str, str]:
    headers = auth(secrets["admin"])
    assert client.get("/api/me", headers=headers).status_code == 200  # the projections are open
    return headers


def cli(capsys: pytest.CaptureFixture[str], home: Path, *args: str) -> Any:
    capsys.readouterr()
    code = main(["--data-dir", str(home), *args, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return orjson.loads(out)


def walk(client: TestClient, h: dict[str, str], path: str, key: str, limit: int,
         **params: Any) -> tuple[list[dict[str, Any]], int, int]:
    """Every page of a list from offset 0: (the rows in order, total, pages)."""
    rows: list[dict[str, Any]] = []
    offset, total, pages = 0, None, 0
    while total is None or offset < total:
        response = client.get(path, headers=h, params={**params, "limit": limit, "offset": offset})
        assert response.status_code == 200, response.text
        doc = response.json()
        assert (doc["offset"], doc["limit"]) == (offset, limit)
        assert total is None or doc["total"] == total, "the total changed between pages"
        total = doc["total"]
        assert len(doc[key]) == min(limit, total - offset)
        rows += doc[key]
        offset += limit
        pages += 1
    assert total is not None
    return rows, total, pages


#: (path, the list's key, what names a row, API parameters, the same question to the CLI)
LISTS = [
    ("/api/cases", "cases", ("customer_id", "case_id"), {"now": NOW}, ("cases", "--now", NOW)),
    ("/api/cases", "cases", ("customer_id", "case_id"), {"now": NOW, "status": "overdue"},
     ("cases", "--now", NOW, "--status", "overdue")),
    ("/api/cases", "cases", ("customer_id", "case_id"), {"now": NOW, "department": "billing"},
     ("cases", "--now", NOW, "--department", "billing")),
    ("/api/promises", "promises", ("customer_id", "promise_id"), {"now": NOW},
     ("promises", "--now", NOW)),
    ("/api/promises", "promises", ("customer_id", "promise_id"), {"now": NOW, "status": "unkept"},
     ("promises", "--now", NOW, "--status", "unkept")),
    ("/api/inbox", "waiting", ("mention_id",), {"now": NOW}, ("inbox", "--now", NOW)),
    ("/api/violations", "violations", ("event_id",), {}, ("violations",)),
    ("/api/violations", "violations", ("event_id",), {"department": "billing"},
     ("violations", "--department", "billing")),
]


@pytest.mark.parametrize(("path", "key", "names", "params", "question"), LISTS,
                         ids=[f"{p} {q}" for p, _, _, q, _ in LISTS])
@pytest.mark.parametrize("limit", [1, 7, 1000])
def test_pages_concatenate_to_the_whole_list(client: TestClient, h: dict[str, str], home: Path,
                                             capsys: pytest.CaptureFixture[str], path: str, key: str,
                                             names: tuple[str, ...], params: dict[str, Any],
                                             question: tuple[str, ...], limit: int) -> None:
    whole = cli(capsys, home, *question)
    assert (whole["offset"], whole["limit"]) == (0, None)
    assert whole["total"] == len(whole[key]) > 1
    rows, total, pages = walk(client, h, path, key, limit, **params)
    assert total == whole["total"]
    assert pages == max(1, -(-total // limit))
    ids = [tuple(r[n] for n in names) for r in rows]
    assert len(set(ids)) == len(ids), "a row on two pages"
    assert rows == whole[key]


def test_the_scenario_fills_more_than_a_page_of_everything(client: TestClient, h: dict[str, str]) -> None:
    """The walks above page through lists longer than their pages (else they prove nothing)."""
    totals = {path: client.get(path, headers=h, params={"limit": 1, "now": NOW} if path != "/api/violations"
                               else {"limit": 1}).json()["total"]
              for path in ("/api/cases", "/api/promises", "/api/inbox", "/api/violations")}
    assert totals == {"/api/cases": 30, "/api/promises": 25, "/api/inbox": 15, "/api/violations": 18}


@pytest.mark.parametrize("path", ["/api/cases", "/api/promises", "/api/inbox", "/api/violations"])
def test_an_offset_past_the_end_is_an_empty_page(client: TestClient, h: dict[str, str], path: str) -> None:
    first = client.get(path, headers=h).json()
    assert first["limit"] == 100 and first["offset"] == 0
    key = {"/api/cases": "cases", "/api/promises": "promises", "/api/inbox": "waiting",
           "/api/violations": "violations"}[path]
    for offset in (first["total"], first["total"] + 1, 1_000_000_000):
        response = client.get(path, headers=h, params={"offset": offset})
        assert response.status_code == 200, response.text
        doc = response.json()
        assert doc[key] == [] and doc["total"] == first["total"] and doc["offset"] == offset


@pytest.mark.parametrize("path", ["/api/cases", "/api/promises", "/api/inbox", "/api/violations",
                                  "/api/customers/C-2001/timeline"])
@pytest.mark.parametrize(("params", "where", "words"), [
    ({"limit": 0}, "query.limit", "greater than or equal to 1"),
    ({"limit": -5}, "query.limit", "greater than or equal to 1"),
    ({"limit": 5000}, "query.limit", "less than or equal to"),
    ({"limit": "ten"}, "query.limit", "valid integer"),
    ({"offset": -1}, "query.offset", "greater than or equal to 0"),
    ({"offset": 10**12}, "query.offset", "less than or equal to 1000000000"),
])
def test_bad_limits_and_offsets_are_422_naming_the_parameter(
        client: TestClient, h: dict[str, str], path: str, params: dict[str, Any], where: str,
        words: str) -> None:
    response = client.get(path, headers=h, params=params)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"].startswith(f"{where}: ") and words in body["error"], body
    assert body["detail"][0]["where"] == where


def _bound(schema: dict[str, Any], name: str) -> Any:
    """A bound of a parameter's schema, also of an optional one (``anyOf`` with null)."""
    found = [s[name] for s in (schema, *schema.get("anyOf", ())) if name in s]
    return found[0] if found else None


def test_openapi_documents_limit_and_offset(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for path in ("/api/cases", "/api/promises", "/api/inbox", "/api/violations",
                 "/api/customers/{ref}/timeline"):
        params = {p["name"]: p for p in spec["paths"][path]["get"]["parameters"]}
        for name in ("limit", "offset"):
            assert params[name]["description"], (path, name)
        assert _bound(params["limit"]["schema"], "minimum") == 1
        assert _bound(params["offset"]["schema"], "minimum") == 0
    cases = {p["name"]: p for p in spec["paths"]["/api/cases"]["get"]["parameters"]}
    assert cases["limit"]["schema"]["maximum"] == 1000 and cases["limit"]["schema"]["default"] == 100
    promises = {p["name"]: p for p in spec["paths"]["/api/promises"]["get"]["parameters"]}
    assert "broken" in promises["status"]["description"]


def test_promise_states_split_the_whole_list(client: TestClient, h: dict[str, str]) -> None:
    everything = client.get("/api/promises", headers=h, params={"now": NOW}).json()
    rows = everything["promises"]
    by_state = {}
    for state in ("open", "kept", "broken", "overdue", "unkept"):
        doc = client.get("/api/promises", headers=h, params={"now": NOW, "status": state}).json()
        assert doc["total"] == len(doc["promises"]) == everything["counts"][state] == doc["counts"][state]
        assert doc["counts"] == everything["counts"], "counts do not depend on the state asked for"
        by_state[state] = {p["promise_id"] for p in doc["promises"]}
    assert all(p["status"] == "broken" or p["overdue"] for p in rows if p["promise_id"] in by_state["unkept"])
    assert {p["promise_id"] for p in rows if p["status"] == "broken"} == by_state["broken"]
    assert {p["promise_id"] for p in rows if p["overdue"]} == by_state["overdue"]
    assert by_state["open"] | by_state["kept"] | by_state["broken"] == {p["promise_id"] for p in rows}
    assert by_state["unkept"] == by_state["broken"] | by_state["overdue"]
    assert by_state["overdue"] <= by_state["open"]
    # 25 promises: every 4th kept, the next broken, the rest open; odd ones were due on 1 May.
    assert {k: len(v) for k, v in by_state.items()} == {"open": 12, "kept": 7, "broken": 6,
                                                         "overdue": 6, "unkept": 12}
    # the old flags still mean what they meant
    assert ({p["promise_id"] for p in client.get("/api/promises", headers=h,
                                                 params={"now": NOW, "overdue": "true"}).json()["promises"]}
            == by_state["overdue"])


def test_case_states_and_departments_split_the_whole_list(client: TestClient, h: dict[str, str]) -> None:
    everything = client.get("/api/cases", headers=h, params={"now": NOW}).json()
    rows = everything["cases"]
    assert everything["total"] == len(rows) == 30
    ids = {}
    for state in ("open", "resolved", "overdue"):
        doc = client.get("/api/cases", headers=h, params={"now": NOW, "status": state}).json()
        assert doc["total"] == len(doc["cases"]) == everything["counts"][state]
        ids[state] = {c["case_id"] for c in doc["cases"]}
    assert ids["open"] | ids["resolved"] == {c["case_id"] for c in rows}
    assert not ids["open"] & ids["resolved"]
    assert ids["overdue"] and ids["overdue"] <= ids["open"]
    assert all(c["kind"] == "complaint" and c["first_response_at"] is None
               for c in rows if c["case_id"] in ids["overdue"])
    assert len(ids["resolved"]) == 8  # every 4th of 30
    per_department = 0
    for dept in DEPARTMENTS:
        doc = client.get("/api/cases", headers=h, params={"now": NOW, "department": dept,
                                                          "limit": 3}).json()
        assert doc["total"] == sum(1 for c in rows if c["owner_department"] == dept)
        assert sum(doc["counts"][s] for s in ("open", "resolved")) == doc["total"]
        per_department += doc["total"]
    assert per_department == 30
    requests = client.get("/api/cases", headers=h, params={"now": NOW, "kind": "request"}).json()
    assert requests["total"] == 6 and {c["kind"] for c in requests["cases"]} == {"request"}
    for bad in ({"status": "lost"}, {"status": "broken"}):
        assert client.get("/api/cases", headers=h, params=bad).status_code == 422


def test_violations_summary_counts_every_violation_whatever_the_page(
        client: TestClient, h: dict[str, str]) -> None:
    doc = client.get("/api/violations", headers=h, params={"limit": 2, "offset": 4}).json()
    assert doc["total"] == 18 and len(doc["violations"]) == 2
    summary = doc["summary"]
    whole = client.get("/api/violations", headers=h, params={"limit": 1000}).json()
    assert whole["summary"] == summary and len(whole["violations"]) == 18
    rules: dict[str, int] = {}
    for v in whole["violations"]:
        for code in {r["code"] for r in v["reasons"]}:
            rules[code] = rules.get(code, 0) + 1
    assert {r["rule"]: r["violations"] for r in summary["by_rule"]} == rules
    assert rules["objection"] == 18  # every call after the objection
    counts = [r["violations"] for r in summary["by_rule"]]
    assert counts == sorted(counts, reverse=True)
    assert sum(d["violations"] for d in summary["by_department"]) == 18
    assert {d["department"] for d in summary["by_department"]} == {"billing", "sales"}
    assert summary["by_channel"] == [{"channel": "phone", "violations": 18}]
    assert summary["customers"] == 6
    assert [c["customer_number"] for c in summary["worst_customers"]] == [f"C-{2000 + i}" for i in range(5)]
    assert [c["violations"] for c in summary["worst_customers"]] == [3] * 5
    assert summary["worst_customers"][0]["last_at"] == "2026-03-04T11:00:00+01:00"
    narrowed = client.get("/api/violations", headers=h, params={"department": "sales"}).json()
    assert narrowed["total"] == sum(d["violations"] for d in summary["by_department"]
                                    if d["department"] == "sales")
    assert {v["department"] for v in narrowed["violations"]} == {"sales"}
    for params, total in (({"rule": "quiet_hours"}, 0), ({"rule": "objection"}, 18),
                          ({"channel": "sms"}, 0)):
        assert client.get("/api/violations", headers=h, params=params).json()["total"] == total
    for bad in ({"rule": "rudeness"}, {"channel": "pigeon"}, {"since": "last week"}):
        response = client.get("/api/violations", headers=h, params=bad)
        assert response.status_code == 422, bad
        assert response.json()["error"]


def test_timeline_pages_by_offset_and_says_where_a_cursor_page_starts(
        client: TestClient, h: dict[str, str], home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    newest_first = cli(capsys, home, "customer", "C-2001")["timeline"][::-1]
    assert len(newest_first) > 8
    rows, offset = [], 0
    while True:
        page = client.get("/api/customers/C-2001/timeline", headers=h,
                          params={"limit": 4, "offset": offset}).json()
        assert page["total"] == len(newest_first) and page["offset"] == offset
        if not page["events"]:
            break
        rows += page["events"]
        offset += 4
    assert rows == newest_first
    first = client.get("/api/customers/C-2001/timeline", headers=h, params={"limit": 4}).json()
    assert first["offset"] == 0
    after = client.get("/api/customers/C-2001/timeline", headers=h,
                       params={"limit": 4, "before": first["next_before"]}).json()
    assert after["offset"] == 4 and after["events"] == newest_first[4:8]
    both = client.get("/api/customers/C-2001/timeline", headers=h,
                      params={"before": first["next_before"], "offset": 4})
    assert both.status_code == 422 and "not both" in both.json()["error"]
