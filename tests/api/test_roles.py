"""Who may call what (every endpoint, every role, 401 and 403) and which fields each role sees."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from domain.catalogue import TYPES
from journey.api.policy import (
    ADMIN,
    ANALYST,
    AUDITOR,
    DEPARTMENTS,
    HIDDEN,
    RECORDERS,
    ROLES,
    VISIBLE,
    Permission,
    field_policy,
    permitted,
    recorders_table,
)
from journey.cli import main
from ledger.writer import event_id
from tests.api.conftest import IBAN, NID, TOKEN_NAMES, auth


@pytest.fixture(scope="module")
def ledger_uuid(client: TestClient, secrets: dict[str, str]) -> str:
    doc = client.get("/api/customers/C-1001", headers=auth(secrets[ADMIN])).json()
    return str(doc["customer_id"])


def _endpoints() -> list[tuple[str, str, Permission | None, dict[str, Any]]]:
    """(method, path, permission needed, request keywords): every endpoint behind a token."""
    # no department, a type every department records: any writer may send it
    call = {"type": "call.inbound", "id": "every-writer", "source": "pbx", "customer": {"customer_id": "C-1002"},
            "occurred_at": "2026-05-19T09:00:00+02:00", "data": {"duration_s": 30}}
    return [
        ("GET", "/api/me", None, {}),
        ("GET", "/api/customers/C-1001", Permission.READ_CUSTOMERS, {}),
        ("GET", "/api/customers/C-1001/timeline", Permission.READ_CUSTOMERS, {"params": {"limit": 5}}),
        ("GET", "/api/customers/C-1001/as-of", Permission.READ_CUSTOMERS,
         {"params": {"occurred_by": "2026-12-31T00:00:00+01:00"}}),
        ("GET", "/api/customers/C-1001/can-contact", Permission.READ_CUSTOMERS,
         {"params": {"channel": "phone", "purpose": "commercial"}}),
        ("GET", "/api/cases", Permission.READ_LISTS, {"params": {"overdue": "true"}}),
        ("GET", "/api/cases/K-1", Permission.READ_LISTS, {}),
        ("GET", "/api/promises", Permission.READ_LISTS, {"params": {"overdue": "true"}}),
        ("GET", "/api/inbox", Permission.READ_LISTS, {}),
        ("GET", "/api/violations", Permission.READ_CUSTOMERS, {"params": {"limit": 5}}),
        ("GET", "/api/warranty/X200-5581-AB", Permission.READ_LISTS, {}),
        ("POST", "/api/facts", Permission.WRITE_FACTS, {"json": call}),
        ("GET", "/api/tokens", Permission.MANAGE_TOKENS, {}),
        ("POST", "/api/tokens", Permission.MANAGE_TOKENS, {"json": {"name": "made-by-{role}", "role": "sales"}}),
        ("POST", "/api/tokens/spun-{role}/rotate", Permission.MANAGE_TOKENS, {}),
        ("DELETE", "/api/tokens/doomed-{role}", Permission.MANAGE_TOKENS, {}),
        ("GET", "/api/customers/C-1001/contact-as-of", Permission.AUDIT,
         {"params": {"channel": "phone", "purpose": "commercial", "at": "2026-02-02T11:00:00+01:00",
                     "axis": "occurred"}}),
        ("GET", f"/api/decisions/{event_id('crm', 'c1')}/replay", Permission.AUDIT, {}),
        ("POST", "/api/audit/verify", Permission.AUDIT, {}),
        ("GET", "/api/audit/verify", Permission.AUDIT, {}),
        ("GET", "/api/customers/C-1001/subject-access", Permission.AUDIT, {}),
        # somebody of their own for each role to forget (registered by the test)
        ("POST", "/api/customers/F-{role}/forget", Permission.FORGET,
         {"json": {"confirm": "F-{role}", "reason": "roles test"}}),
        ("GET", "/api/quarantine", Permission.READ_QUARANTINE, {"params": {"limit": 5}}),
    ]


ENDPOINTS = _endpoints()
IDS = [f"{m} {p}" for m, p, _, _ in ENDPOINTS]


def _call(client: TestClient, method: str, path: str, role: str, kwargs: dict[str, Any],
          headers: dict[str, str]) -> Any:
    kwargs = dict(kwargs)
    if "json" in kwargs and isinstance(kwargs["json"], dict):
        for key in ("name", "confirm"):
            if key in kwargs["json"]:
                kwargs["json"] = {**kwargs["json"], key: kwargs["json"][key].format(role=role)}
    return client.request(method, path.format(role=role), headers=headers, **kwargs)


@pytest.mark.parametrize(("method", "path", "permission", "kwargs"), ENDPOINTS, ids=IDS)
def test_every_role_on_every_endpoint(client: TestClient, secrets: dict[str, str], home: Path,
                                      method: str, path: str, permission: Permission | None,
                                      kwargs: dict[str, Any]) -> None:
    for role in ROLES:
        if "{role}" in path and path.startswith("/api/tokens/"):  # to rotate or revoke, per role
            name = path.split("/")[3].format(role=role)
            assert main(["--data-dir", str(home), "token", "create", name, "--role",
                         "auditor", "--json"]) == 0
        elif "{role}" in path:  # somebody to forget, per role
            number = path.split("/")[3].format(role=role)
            somebody = {"type": "customer.registered", "id": f"roles-{number}", "source": "crm",
                        "customer": {"customer_id": number}, "occurred_at": "2026-05-19T09:00:00+02:00",
                        "data": {"name": f"Someone {role}"}}
            made = client.post("/api/facts", json=somebody, headers=auth(secrets[ADMIN]))
            assert made.status_code == 201, made.text
        response = _call(client, method, path, role, kwargs, auth(secrets[role]))
        allowed = permission is None or permitted(role, permission)
        if allowed:
            assert response.status_code in (200, 201), (role, response.text)
        else:
            assert response.status_code == 403, (role, response.text)
            body = response.json()
            assert body["error"] == f"role {role!r} may not {permission.value}"  # type: ignore[union-attr]
            assert body["detail"] == {"role": role}


@pytest.mark.parametrize(("method", "path", "permission", "kwargs"), ENDPOINTS, ids=IDS)
def test_every_endpoint_wants_a_valid_token(client: TestClient, secrets: dict[str, str],
                                            method: str, path: str, permission: Permission | None,
                                            kwargs: dict[str, Any]) -> None:
    for headers in ({}, auth("jt_not-a-real-secret"), {"Authorization": "Basic dXNlcjpwYXNz"},
                    {"Authorization": "Bearer "}, {"Cookie": "journey_token=wrong"}):
        response = _call(client, method, path, "x", kwargs, headers)
        assert response.status_code == 401, (headers, response.text)
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert set(response.json()) == {"error", "detail"}


def test_the_matrix_is_the_documented_one() -> None:
    """docs/security.md's table, as code: a change here must change the docs too."""
    may = {role: {p.name for p in Permission if permitted(role, p)} for role in ROLES}
    for department in DEPARTMENTS:
        assert may[department] == {"READ_CUSTOMERS", "READ_LISTS", "WRITE_FACTS"}
    assert may[AUDITOR] == {"READ_CUSTOMERS", "READ_LISTS", "AUDIT", "FORGET"}
    assert may[ANALYST] == {"READ_LISTS"}
    assert may[ADMIN] == {p.name for p in Permission}
    assert VISIBLE["social_media"] >= {"contact", "free_text"}
    assert not VISIBLE["social_media"] & {"bank", "national_id"}
    assert VISIBLE[ANALYST] == frozenset()
    assert field_policy(AUDITOR).hides_nothing and field_policy("billing").hides_nothing


def test_me_says_who(client: TestClient, secrets: dict[str, str]) -> None:
    for role in ROLES:
        me = client.get("/api/me", headers=auth(secrets[role])).json()
        department = role if role in DEPARTMENTS else None
        recordable = [name for name, spec in TYPES.items() if not spec.system
                      and (role == ADMIN or role in RECORDERS.get(name, ()))]
        if not permitted(role, Permission.WRITE_FACTS):
            recordable = []
        assert me == {"name": TOKEN_NAMES[role], "role": role, "department": department,
                      "may_record": recordable}


# -------------------------------------------------------------------- field policy


def _text(response: Any) -> str:
    assert response.status_code == 200, response.text
    return str(response.text)


def _find(doc: Any, predicate: Any) -> list[Any]:
    found = []
    if isinstance(doc, dict):
        if predicate(doc):
            found.append(doc)
        for v in doc.values():
            found += _find(v, predicate)
    elif isinstance(doc, list):
        for v in doc:
            found += _find(v, predicate)
    return found


def test_social_media_never_sees_national_ids_or_bank_data(client: TestClient,
                                                           secrets: dict[str, str]) -> None:
    h = auth(secrets["social_media"])
    view = client.get("/api/customers/C-1001", headers=h).json()
    nid = [i for i in view["identities"] if i["kind"] == "national_id"]
    assert nid and all(i["value"] == HIDDEN for i in nid)
    linked = [e for e in view["timeline"] if e["type"] == "identity.linked"]
    assert linked[0]["data"] == {"kind": "national_id", "value": HIDDEN}
    contract = next(e for e in view["timeline"] if e["type"] == "contract.started")
    assert contract["data"]["iban"] == HIDDEN and contract["data"]["service"] == "fibra 300"
    # what the social desk does need stays
    assert view["name"] == "Ana Martín" and view["contact"]["twitter"] == "@ana_m"
    assert view["contact"]["phone"] == "+34600111001"
    mention = next(e for e in view["timeline"] if e["type"] == "social.mention")
    assert mention["data"]["text"].endswith("where is my refund?")
    for path in ("/api/customers/C-1001", "/api/customers/C-1001/timeline?limit=500", "/api/cases",
                 "/api/cases/K-1", "/api/promises", "/api/inbox?all=true",
                 "/api/warranty/C-1001", "/api/customers/@ana_m/can-contact?channel=social&purpose=service"):
        text = _text(client.get(path, headers=h))
        assert NID not in text and IBAN not in text, path


def test_a_role_may_not_look_people_up_by_what_it_may_not_see(client: TestClient,
                                                              secrets: dict[str, str],
                                                              ledger_uuid: str) -> None:
    social = auth(secrets["social_media"])
    for path in (f"/api/customers/national_id:{NID}", f"/api/customers/national_id:{NID}/timeline",
                 f"/api/cases?customer=national_id:{NID}", f"/api/warranty/national_id:{NID}"):
        response = client.get(path, headers=social)
        assert response.status_code == 403, path
        assert response.json()["error"] == "role 'social_media' may not look customers up by national_id"
    billing = auth(secrets["billing"])
    assert client.get(f"/api/customers/national_id:{NID}", headers=billing).status_code == 200
    analyst = auth(secrets[ANALYST])
    for path in ("/api/cases?customer=C-1001", "/api/promises?customer=%2B34600111001",
                 "/api/warranty/C-1001"):
        assert client.get(path, headers=analyst).status_code == 403, path
    cases = client.get(f"/api/cases?customer={ledger_uuid}", headers=analyst).json()["cases"]
    assert [c["case_id"] for c in cases] == ["K-1"]


@pytest.mark.parametrize(("role", "sees_nid", "sees_iban"), [
    ("billing", True, True), ("sales", True, False), ("customer_care", True, False),
    ("stores", True, False), ("technical_service", False, False), ("social_media", False, False),
    ("outsourced_callcenter", False, False), (AUDITOR, True, True), (ADMIN, True, True)])
def test_departments_see_personal_fields_only_where_they_need_them(
        client: TestClient, secrets: dict[str, str], role: str, sees_nid: bool, sees_iban: bool) -> None:
    view = client.get("/api/customers/C-1001", headers=auth(secrets[role])).json()
    nid = next(i for i in view["identities"] if i["kind"] == "national_id")
    assert (nid["value"] == NID) is sees_nid and (nid["value"] == HIDDEN) is (not sees_nid)
    contract = next(e for e in view["timeline"] if e["type"] == "contract.started")
    assert (contract["data"]["iban"] == IBAN) is sees_iban
    # every department sees the full case history, with its texts
    case = client.get("/api/cases/K-1", headers=auth(secrets[role])).json()
    assert any(h.get("text") == "Ana called again, upset" for h in case["history"])
    assert view["name"] == "Ana Martín"


def test_analysts_read_cases_and_lists_without_anything_personal(client: TestClient,
                                                                 secrets: dict[str, str]) -> None:
    h = auth(secrets[ANALYST])
    personal = ("Ana", "Martín", "+34600111001", "ana@example.es", "@ana_m", NID, IBAN, "C-1001",
                "charged twice", "upset", "refunds are billing", "no Wi-Fi", "where is my refund")
    docs = {}
    for path in ("/api/cases", "/api/cases/K-1", "/api/promises", "/api/inbox?all=true",
                 "/api/warranty/X200-5581-AB"):
        text = _text(client.get(path, headers=h))
        for value in personal:
            assert value not in text, (path, value)
        docs[path] = orjson.loads(text)
    case = docs["/api/cases/K-1"]
    assert case["status"] == "open" and case["owner_department"] == "billing"
    assert case["customer"]["name"] == HIDDEN and case["subject"] == HIDDEN
    row = docs["/api/cases"]["cases"][0]
    assert row["customer_name"] == HIDDEN and row["customer_number"] == HIDDEN
    assert row["kind"] == "complaint"
    waiting = docs["/api/inbox?all=true"]["waiting"][0]
    assert waiting["text"] == HIDDEN and waiting["handle"] == HIDDEN and waiting["network"] == "twitter"
    assert docs["/api/inbox?all=true"]["overall"]["waiting"] == 1


def test_hidden_is_a_marker_not_null(client: TestClient, secrets: dict[str, str]) -> None:
    """A client must tell "your role may not see it" from "nothing recorded"."""
    view = client.get("/api/customers/C-1002", headers=auth(secrets["social_media"])).json()
    assert view["contact"]["email"] is None  # Luis gave no e-mail: null for everybody
    analyst_case = client.get("/api/cases/K-1", headers=auth(secrets[ANALYST])).json()
    assert _find(analyst_case, lambda d: d.get("customer_number") == HIDDEN)


# -------------------------------------------------------------------- writing


def test_departments_write_only_their_own_facts(client: TestClient, secrets: dict[str, str]) -> None:
    fact = {"type": "call.inbound", "id": "roles-1", "source": "pbx", "customer": {"customer_id": "C-1002"},
            "occurred_at": "2026-05-19T10:00:00+02:00", "department": "billing", "data": {}}
    response = client.post("/api/facts", json=fact, headers=auth(secrets["sales"]))
    assert response.status_code == 422
    assert response.json()["detail"]["rejected"] == [
        {"index": 0, "reason": "department: a sales token records facts of sales only, not 'billing'"}]
    assert client.post("/api/facts", json=fact, headers=auth(secrets["billing"])).status_code == 201
    fact = {**fact, "id": "roles-2", "department": "sales"}
    assert client.post("/api/facts", json=fact, headers=auth(secrets[ADMIN])).status_code == 201


def test_who_records_what_is_the_documented_table() -> None:
    """docs/security.md shows policy.RECORDERS as it is; every input type of the catalogue is
    decided (only the merges are left to admin), and no type the catalogue lacks is named."""
    docs = (Path(__file__).resolve().parents[2] / "docs" / "security.md").read_text()
    table = recorders_table()
    assert table in docs, "regenerate the table in docs/security.md from policy.recorders_table()"
    assert len(re.findall(r"^\| fact type \|", docs, re.M)) == 1
    inputs = {name for name, spec in TYPES.items() if not spec.system}
    assert set(RECORDERS) == inputs - {"customer.merged", "customer.unmerged"}
    assert all(roles <= set(DEPARTMENTS) and roles for roles in RECORDERS.values())
    assert RECORDERS["social.reply"] == {"social_media"}
    assert RECORDERS["warranty.claim_decided"] == {"technical_service"}
    assert RECORDERS["call.inbound"] == RECORDERS["objection.recorded"] == set(DEPARTMENTS)


# -------------------------------------------------------------------- sessions and tokens


@pytest.fixture
def browser(app: FastAPI) -> Iterator[TestClient]:
    """A client of its own: it keeps cookies."""
    yield TestClient(app)


def test_session_cookie_signs_a_browser_in_and_out(browser: TestClient, secrets: dict[str, str]) -> None:
    assert browser.get("/api/me").status_code == 401
    assert browser.post("/api/session", json={"token": "jt_wrong"}).status_code == 401
    response = browser.post("/api/session", json={"token": secrets["stores"]})
    assert response.status_code == 200
    signed_in = response.json()
    ends = datetime.fromisoformat(signed_in.pop("expires_at"))  # JOURNEY_SESSION_HOURS from now
    assert timedelta(hours=11) < ends - datetime.now(UTC) <= timedelta(hours=12)
    assert signed_in == {"name": "t-stores", "role": "stores", "department": "stores"}
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("journey_token=")
    for attribute in ("HttpOnly", "SameSite=strict", "Path=/"):
        assert attribute.lower() in cookie.lower()
    assert "secure" not in cookie.lower()  # plain http on loopback; https sets Secure
    assert browser.get("/api/me").json()["role"] == "stores"
    assert browser.get("/api/customers/C-1001").status_code == 200
    fact = {"type": "store.visit", "id": "cookie-1", "source": "pos", "customer": {"customer_id": "C-1002"},
            "occurred_at": "2026-05-19T10:00:00+02:00", "department": "stores", "data": {"store": "MAD1"}}
    # a signed-in browser must say it sends JSON: a cross-site form cannot
    text = browser.post("/api/facts", content=orjson.dumps(fact), headers={"Content-Type": "text/plain"})
    assert text.status_code == 415
    assert browser.post("/api/facts", json=fact).status_code == 201
    out = browser.delete("/api/session")
    assert out.status_code == 200
    assert 'journey_token=""' in out.headers["set-cookie"] or "max-age=0" in out.headers["set-cookie"].lower()
    assert browser.get("/api/me").status_code == 401


def test_a_revoked_token_is_refused_at_once(client: TestClient, home: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["--data-dir", str(home), "token", "create", "short-lived", "--role", "sales", "--json"]) == 0
    secret = orjson.loads(capsys.readouterr().out)["secret"]
    assert client.get("/api/me", headers=auth(secret)).status_code == 200
    assert main(["--data-dir", str(home), "token", "revoke", "short-lived"]) == 0
    response = client.get("/api/me", headers=auth(secret))
    assert response.status_code == 401
    assert response.json()["error"] == "unknown or revoked token (bearer)"


def test_admins_manage_tokens_over_http(client: TestClient, secrets: dict[str, str]) -> None:
    h = auth(secrets[ADMIN])
    made = client.post("/api/tokens", json={"name": "via-http", "role": "technical_service"}, headers=h)
    assert made.status_code == 201
    secret = made.json()["secret"]
    assert made.json()["token"]["department"] == "technical_service"
    assert client.get("/api/me", headers=auth(secret)).json()["name"] == "via-http"
    listed = client.get("/api/tokens", headers=h).json()["tokens"]
    assert "via-http" in {t["name"] for t in listed}
    assert secret not in str(listed) and all("secret" not in t for t in listed)
    bad = client.post("/api/tokens", json={"name": "x", "role": "boss"}, headers=h)
    assert bad.status_code == 422 and "is not one of" in bad.json()["error"]
    assert client.post("/api/tokens", json={"name": "via-http", "role": "sales"}, headers=h).status_code == 422
    assert client.delete("/api/tokens/via-http", headers=h).json()["token"]["active"] is False
    assert client.get("/api/me", headers=auth(secret)).status_code == 401
    assert client.delete("/api/tokens/never-was", headers=h).status_code == 404


# -------------------------------------------------------------------- access log


def test_refusals_are_logged_with_who_and_why_never_the_secret(
        client: TestClient, secrets: dict[str, str], caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="journey.api.access"):
        client.get("/api/customers/C-1001", headers=auth("jt_guessing"))
        client.get("/api/customers/C-1001", headers=auth(secrets[ANALYST]))
        client.get("/api/cases", headers=auth(secrets[ANALYST]))
        client.get("/api/me")
    records = [r for r in caplog.records if r.name == "journey.api.access"]
    assert len(records) == 4
    unknown, forbidden, allowed, anonymous = records
    assert unknown.levelno == logging.WARNING and unknown.status == 401  # type: ignore[attr-defined]
    assert "unknown or revoked token" in unknown.getMessage()
    assert forbidden.levelno == logging.WARNING and forbidden.status == 403  # type: ignore[attr-defined]
    assert forbidden.token_name == "t-analyst" and forbidden.token_role == ANALYST  # type: ignore[attr-defined]
    assert forbidden.path == "/api/customers/C-1001"  # type: ignore[attr-defined]
    assert forbidden.getMessage().startswith("t-analyst (analyst) GET /api/customers/C-1001 403")
    assert "may not read customers" in forbidden.getMessage()
    assert allowed.levelno == logging.INFO and allowed.status == 200  # type: ignore[attr-defined]
    assert anonymous.status == 401 and "no token" in anonymous.getMessage()  # type: ignore[attr-defined]
    logged = " ".join(r.getMessage() + repr(r.__dict__) for r in records)
    for secret in secrets.values():
        assert secret not in logged
    assert "jt_guessing" not in logged
