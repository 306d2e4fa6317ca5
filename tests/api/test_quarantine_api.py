"""The server's reads answer over a store holding facts no reader can handle (written straight
into it), and its status shows the quarantine."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from journey.api.app import create_app
from journey.config import Settings
from tests import planted
from tests.api.conftest import SCENARIO, auth, make_tokens, record
from tests.ledgers import open_journey


@pytest.fixture(scope="module")
def planted_home(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    home = tmp_path_factory.mktemp("api-quarantine") / "ledger"
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
    return {"home": home, "ana": ana, "positions": positions}


@pytest.fixture(scope="module")
def client(planted_home: dict[str, Any]) -> Iterator[tuple[TestClient, dict[str, str]]]:
    home = planted_home["home"]
    secrets = make_tokens(home)
    with TestClient(create_app(Settings(data_dir=home), duties=[])) as c:
        yield c, secrets


def test_status_lists_the_quarantined_facts(client: tuple[TestClient, dict[str, str]],
                                            planted_home: dict[str, Any]) -> None:
    c, secrets = client
    answer = c.get("/api/status", headers=auth(secrets["auditor"]))
    assert answer.status_code == 200, answer.text
    doc = answer.json()
    assert doc["quarantined"] == len(planted_home["positions"])
    assert doc["projection_position"] == doc["store_position"] == max(planted_home["positions"])
    assert [e["position"] for e in doc["quarantine_latest"]] == sorted(planted_home["positions"],
                                                                       reverse=True)
    assert c.get("/api/status").status_code == 401


def test_every_read_answers_and_the_view_names_its_quarantined_facts(
        client: tuple[TestClient, dict[str, str]], planted_home: dict[str, Any]) -> None:
    c, secrets = client
    care = auth(secrets["customer_care"])
    ana = c.get("/api/customers/C-1001", headers=care)
    assert ana.status_code == 200, ana.text
    year_one, warranty, not_json, deep = planted_home["positions"]
    assert ana.json()["quarantined"] == [year_one, warranty, deep]  # not_json: nobody's, undecoded
    assert [p["serial"] for p in ana.json()["products"]] == ["X200-5581-AB"]
    luis = c.get("/api/customers/C-1002", headers=care)
    assert luis.status_code == 200 and luis.json()["quarantined"] == []
    for path in ("/api/customers/C-1001/timeline", "/api/cases", "/api/inbox",
                 "/api/warranty/X200-5581-AB", "/api/promises",
                 "/api/customers/C-1001/as-of?occurred_by=2030-01-01T00:00:00%2B00:00",
                 "/api/customers/C-1001/as-of?recorded_by=2099-01-01T00:00:00%2B00:00"):
        answer = c.get(path, headers=care)
        assert answer.status_code == 200, (path, answer.text)
    asof = c.get("/api/customers/C-1001/as-of?occurred_by=2030-01-01T00:00:00%2B00:00", headers=care)
    assert asof.json()["quarantined"] == [year_one, warranty, not_json, deep]
