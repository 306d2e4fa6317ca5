"""Who records which fact types: every role posts one fact of every catalogue type through the
real API, and what is recorded and what is rejected (and why) is policy.RECORDERS.

The facts are the catalogue's own documented examples (docs/events.md), re-numbered per role
and given the role's department, so a rejection can only come from the type.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from domain.catalogue import TYPES
from journey.api.policy import ADMIN, DEPARTMENTS, RECORDERS, ROLES, Permission, may_record, permitted
from tests.api.conftest import auth

EVENTS_DOC = Path(__file__).resolve().parents[2] / "docs" / "events.md"

#: The types the ledger writes itself: nobody records them through the API, admin included.
LEDGER_TYPES = [name for name, spec in TYPES.items() if spec.system]
#: Data for them (the catalogue documents no input example of a type it refuses as input).
LEDGER_DATA: dict[str, dict[str, Any]] = {
    "identity.unlinked": {"kind": "phone", "value": "+34600000001", "reason": "moved"},
    "customer.forgotten": {"reason": "art. 17 request"},
    "contact.decided": {"channel": "phone", "purpose": "commercial", "at": "2026-02-01T10:00:00+01:00",
                        "allowed": False, "reasons": ["objection"], "policy_version": "1"},
}


def _examples() -> dict[str, dict[str, Any]]:
    blocks = re.findall(r"```json\n(.*?)\n```", EVENTS_DOC.read_text(), flags=re.S)
    facts = [orjson.loads(b) for b in blocks]
    found = {f["type"]: f for f in facts if isinstance(f, dict) and f.get("source") == "docs"}
    for name in LEDGER_TYPES:
        found[name] = {"type": name, "id": f"ex-{name}", "source": "docs",
                       "customer": {"customer_id": "C-1001"},
                       "occurred_at": "2026-03-01T10:30:00+01:00", "data": LEDGER_DATA[name]}
    return found


EXAMPLES = _examples()
_PER_ROLE = ("case_id", "promise_id", "claim_id", "contract_id")
TYPE_NAMES = list(TYPES)


def _facts_of(role: str) -> list[dict[str, Any]]:
    """One fact of every type, in catalogue order, as ``role``'s desk would send it."""
    facts = []
    for name in TYPE_NAMES:
        fact = {**EXAMPLES[name], "id": f"{role}-{name}", "source": f"desk-{role}"}
        fact.pop("department", None)
        # a case, promise, claim or contract happens once: one of its own per role
        fact["data"] = {k: (f"{v}-{role}" if k in _PER_ROLE and isinstance(v, str) else v)
                        for k, v in fact["data"].items()}
        if name == "customer.registered":  # a person registers once: a new one per role
            fact["customer"] = {"customer_id": f"C-{role}"}
            fact["data"] = {k: v for k, v in fact["data"].items() if k not in ("phone", "email", "twitter")}
        if role in DEPARTMENTS:
            fact["department"] = role
        facts.append(fact)
    return facts


def test_every_type_has_an_example() -> None:
    assert sorted(EXAMPLES) == sorted(TYPE_NAMES)


@pytest.mark.parametrize("role", ROLES)
def test_every_role_records_exactly_the_types_the_table_gives_it(
        client: TestClient, secrets: dict[str, str], role: str) -> None:
    response = client.post("/api/facts", json=_facts_of(role), headers=auth(secrets[role]))
    if not permitted(role, Permission.WRITE_FACTS):
        assert response.status_code == 403, response.text
        assert response.json()["error"] == f"role {role!r} may not record facts"
        return
    assert response.status_code == 422, response.text  # the ledger's own types, at least
    detail = response.json()["detail"]
    reasons = {r["index"]: r["reason"] for r in detail["rejected"]}
    for index, name in enumerate(TYPE_NAMES):
        if name in LEDGER_TYPES:
            assert reasons.get(index, "").startswith(f"type: is written by the ledger itself {name!r}"), \
                (role, name, reasons.get(index))
        elif may_record(role, name):
            assert index not in reasons, (role, name, reasons.get(index))
        else:
            reason = reasons.get(index)
            assert reason is not None, (role, name)
            assert reason.startswith(f"type: role {role!r} may not record {name!r} (recorded by "), reason
            if name in RECORDERS:
                assert all(d in reason for d in RECORDERS[name]), reason
    allowed = [n for n in TYPE_NAMES if n not in LEDGER_TYPES and may_record(role, n)]
    assert detail["facts"] == len(TYPE_NAMES)
    assert detail["recorded"] + detail["duplicates"] == len(allowed)
    assert len(reasons) == len(TYPE_NAMES) - len(allowed)
    # what was recorded is there, what was refused is not
    [(kind, value)] = EXAMPLES["store.visit"]["customer"].items()
    seen = client.get(f"/api/customers/{kind}:{value}/timeline", params={"limit": 500},
                      headers=auth(secrets[ADMIN]))
    assert seen.status_code == 200, seen.text
    ids = {e["source_id"] for e in seen.json()["events"]}
    assert (f"{role}-store.visit" in ids) is may_record(role, "store.visit")


@pytest.mark.parametrize("role", ROLES)
def test_me_lists_the_types_the_role_records(client: TestClient, secrets: dict[str, str],
                                             role: str) -> None:
    """What the console shows forms for: exactly the types the POST above records for the role,
    in catalogue order; nothing for a role without the right to record."""
    me = client.get("/api/me", headers=auth(secrets[role]))
    assert me.status_code == 200, me.text
    expected = ([n for n in TYPE_NAMES if n not in LEDGER_TYPES and may_record(role, n)]
                if permitted(role, Permission.WRITE_FACTS) else [])
    assert me.json()["may_record"] == expected
    if role == "social_media":
        assert "social.reply" in expected and "store.visit" not in expected
    if role in ("auditor", "analyst"):
        assert expected == []


def test_admin_records_every_input_type() -> None:
    inputs = [n for n in TYPE_NAMES if n not in LEDGER_TYPES]
    assert all(may_record(ADMIN, n) for n in inputs)
    assert not [n for n in inputs if n not in RECORDERS and n not in ("customer.merged", "customer.unmerged")]


def test_a_desk_links_only_identities_it_may_see(client: TestClient, secrets: dict[str, str]) -> None:
    def link(role: str, fid: str) -> Any:
        fact = {"type": "identity.linked", "id": fid, "source": "desk", "customer": {"customer_id": "C-1002"},
                "occurred_at": "2026-05-19T10:00:00+02:00", "data": {"kind": "national_id", "value": "X1234567L"}}
        return client.post("/api/facts", json=[fact], headers=auth(secrets[role]))

    refused = link("social_media", "nid-social")
    assert refused.status_code == 422
    assert refused.json()["detail"]["rejected"] == [{"index": 0, "reason": (
        "data.kind: role 'social_media' may not link identities of kind 'national_id' (it may not see them)")}]
    assert link("billing", "nid-billing").status_code == 201


def test_a_refused_type_never_takes_the_others_with_it(client: TestClient, secrets: dict[str, str]) -> None:
    reply = {**EXAMPLES["social.reply"], "id": "mixed-reply"}
    visit = {**EXAMPLES["store.visit"], "id": "mixed-visit", "department": "stores"}
    call = {**EXAMPLES["call.inbound"], "id": "mixed-call", "department": "stores"}
    reply.pop("department", None)
    response = client.post("/api/facts", json=[call, reply, visit], headers=auth(secrets["stores"]))
    assert response.status_code == 422
    body = response.json()
    assert body["detail"]["rejected"] == [{"index": 1, "reason": (
        "type: role 'stores' may not record 'social.reply' (recorded by social_media and admin)")}]
    assert body["detail"]["recorded"] + body["detail"]["duplicates"] == 2
    assert "fact [1]: type: role 'stores' may not record 'social.reply'" in body["error"]
