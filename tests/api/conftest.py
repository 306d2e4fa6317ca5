"""A real embedded ledger (SQLite + DuckDB in tmp_path) behind the API, and a token per role.

The scenario has what the field policy is about: a national id (``identity.linked``), a bank
account in a billing fact, free texts, a complaint moved between departments with a promise,
a tweet to the brand, a purchase without invoice and its warranty claim, and a customer who
objected to commercial calls.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from journey.api.app import create_app
from journey.api.policy import ROLES
from journey.api.tokens import open_tokens
from journey.cli import main
from journey.config import Settings

NOW = "2026-05-20T12:00:00+02:00"
ANA = {"customer_id": "C-1001"}
LUIS = {"customer_id": "C-1002"}
NID = "12345678Z"
IBAN = "ES9121000418450200051332"
BRAND = "@ondaluz"


def fact(fid: str, kind: str, at: str, customer: dict[str, str], data: dict[str, Any],
         department: str | None = None, agent: str | None = None, source: str = "crm") -> dict[str, Any]:
    out: dict[str, Any] = {"type": kind, "id": fid, "source": source, "customer": customer,
                           "occurred_at": at, "data": data}
    if department:
        out["department"] = department
    if agent:
        out["agent"] = agent
    return out


SCENARIO = [
    fact("r1", "customer.registered", "2026-01-10T10:00:00+01:00", ANA,
         {"name": "Ana Martín", "birthday": "1985-03-02", "phone": "+34600111001",
          "email": "ana@example.es", "twitter": "@ana_m",
          "address": {"street": "Calle Mayor", "number": "5", "postal_code": "28013", "city": "Madrid"}},
         "sales", "A-1"),
    fact("n1", "identity.linked", "2026-01-11T10:00:00+01:00", ANA,
         {"kind": "national_id", "value": NID}, "billing", "B-1", source="contracts"),
    fact("b1", "contract.started", "2026-01-11T10:30:00+01:00", ANA,
         {"contract_id": "CT-1", "service": "fibra 300", "iban": IBAN}, "billing", "B-1",
         source="contracts"),
    fact("o1", "objection.recorded", "2026-02-01T09:30:00+01:00", {"phone": "+34600111001"},
         {"channels": "all", "purpose": "commercial"}, "customer_care", "CC-3"),
    fact("c1", "call.outbound", "2026-02-03T11:00:00+01:00", {"phone": "+34600111001"},
         {"purpose": "commercial", "campaign": "spring", "outcome": "hung_up", "duration_s": 5},
         "sales", "A-2"),
    fact("k1", "case.opened", "2026-05-01T10:00:00+02:00", ANA,
         {"case_id": "K-1", "kind": "complaint", "subject": "charged twice in April"},
         "customer_care", "CC-1"),
    fact("p1", "promise.made", "2026-05-01T10:10:00+02:00", ANA,
         {"promise_id": "P-1", "case_id": "K-1", "what": "refund the duplicate charge",
          "due_by": "2026-05-05", "topic": "refund"}, "customer_care", "CC-1"),
    fact("k2", "case.transferred", "2026-05-02T10:00:00+02:00", ANA,
         {"case_id": "K-1", "to": "billing", "reason": "refunds are billing's"},
         "customer_care", "CC-1"),
    fact("k3", "case.note", "2026-05-03T10:00:00+02:00", ANA,
         {"case_id": "K-1", "text": "Ana called again, upset"}, "billing", "B-2"),
    fact("t1", "social.mention", "2026-05-04T10:00:00+02:00", {"twitter": "@ana_m"},
         {"network": "twitter", "handle": "@ana_m", "to": BRAND, "text": f"{BRAND} where is my refund?"},
         source="social-listener"),
    fact("s1", "purchase.recorded", "2025-06-15T18:00:00+02:00", {"phone": "+34600111001"},
         {"product": "Router X200", "serial": "X200-5581-AB", "store": "Madrid Gran Vía",
          "price": 89.9}, "stores", "S-12", source="pos"),
    fact("w1", "warranty.claim_filed", "2026-05-10T11:00:00+02:00", {"phone": "+34600111001"},
         {"claim_id": "W-1", "serial": "X200-5581-AB", "issue": "no Wi-Fi"}, "stores", "S-31",
         source="pos"),
    fact("r2", "customer.registered", "2026-02-10T10:00:00+01:00", LUIS,
         {"name": "Luis Gómez", "phone": "+34600111002"}, "sales", "A-1"),
    # more than the 50 events the customer document shows
    *[fact(f"l{i}", "call.inbound", f"2026-03-{1 + i // 10:02d}T{8 + i % 10:02d}:00:00+01:00", LUIS,
           {"reason": f"question {i}"}, "customer_care", "CC-2") for i in range(60)],
]

#: What each role's token is called in the tests.
TOKEN_NAMES = {role: f"t-{role}" for role in ROLES}


def record(home: Path, facts: list[dict[str, Any]]) -> None:
    source = home.parent / f"{home.name}-facts.jsonl"
    source.write_bytes(b"".join(orjson.dumps(f) + b"\n" for f in facts))
    assert main(["--data-dir", str(home), "append", str(source)]) == 0


def make_tokens(home: Path) -> dict[str, str]:
    store = open_tokens(Settings(data_dir=home))
    try:
        return {role: store.create(name, role)[1] for role, name in TOKEN_NAMES.items()}
    finally:
        store.close()


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ledger with the scenario, shared by a module's read-only tests."""
    path = tmp_path_factory.mktemp("api") / "ledger"
    record(path, SCENARIO)
    return path


@pytest.fixture(scope="module")
def secrets(home: Path) -> dict[str, str]:
    return make_tokens(home)


@pytest.fixture(scope="module")
def app(home: Path, secrets: dict[str, str]) -> FastAPI:
    # No background duties: the documents must not depend on other modules' work
    # (tests/api/test_duties.py and test_serve.py run them).
    return create_app(Settings(data_dir=home), duties=[])


@pytest.fixture(scope="module")
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


def auth(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}
