"""A data field the catalogue does not declare may hold anything (an IBAN as ``cuenta``, a
national id as ``doc``): only the roles that may see every kind of personal data see it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from journey.api.app import create_app
from journey.api.policy import ADMIN, ANALYST, AUDITOR, HIDDEN, field_policy
from journey.config import Settings
from tests.api.conftest import ANA, SCENARIO, auth, fact, make_tokens, record

CUENTA = "ES7620770024003102575766"
UNDECLARED = fact("b9", "contract.started", "2026-01-12T10:00:00+01:00", ANA,
                  {"contract_id": "CT-9", "service": "movil", "cuenta": CUENTA,
                   "titular": {"doc": "00000000T"}}, "billing", "B-1", source="contracts")


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, dict[str, str]]]:
    home = tmp_path_factory.mktemp("undeclared") / "ledger"
    record(home, [*SCENARIO, UNDECLARED])
    secrets = make_tokens(home)
    with TestClient(create_app(Settings(data_dir=home), duties=[])) as client:
        yield client, secrets


@pytest.mark.parametrize(("role", "sees"), [
    ("billing", True), ("sales", False), ("customer_care", False), ("stores", False),
    ("technical_service", False), ("social_media", False), ("outsourced_callcenter", False),
    (AUDITOR, True), (ADMIN, True)])
def test_undeclared_fields_are_seen_only_by_roles_that_see_everything(
        setup: tuple[TestClient, dict[str, str]], role: str, sees: bool) -> None:
    client, secrets = setup
    view = client.get("/api/customers/C-1001", headers=auth(secrets[role])).json()
    contract = next(e for e in view["timeline"] if e["type"] == "contract.started"
                    and e["data"].get("contract_id") == "CT-9")
    # What the catalogue declares is there for everyone who may read the customer...
    assert contract["data"]["service"] == "movil"
    # ...what it does not, only for those who may see every kind of personal data.
    if sees:
        assert contract["data"]["cuenta"] == CUENTA and contract["data"]["titular"] == {"doc": "00000000T"}
    else:
        assert contract["data"]["cuenta"] == HIDDEN and contract["data"]["titular"] == HIDDEN
        assert CUENTA not in view.__repr__() and "00000000T" not in view.__repr__()


def test_the_ledgers_own_facts_keep_their_fields() -> None:
    """A notice the ledger wrote (an address change told to the customer) holds nothing a
    source invented: its bookkeeping fields stay readable for every department."""
    policy = field_policy("sales")
    notice = {"type": "letter.sent", "source": "ledger",
              "data": {"purpose": "service", "notice_for": "e-1", "changed_by": "billing"}}
    assert policy.redact(notice) == notice
    assert field_policy(ANALYST).undeclared and not field_policy("billing").undeclared
