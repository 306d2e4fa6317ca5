"""POST /api/facts with a fact whose source and id are recorded with other content: 422, and
the reason says which recorded fact and which field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from journey.api.app import create_app
from journey.config import Settings
from tests.api.conftest import ANA, SCENARIO, auth, make_tokens, record


def _call(reason: str) -> dict[str, Any]:
    return {"type": "call.inbound", "id": "k1", "source": "pbx", "customer": ANA,
            "occurred_at": "2026-05-19T10:00:00+02:00", "department": "customer_care",
            "data": {"reason": reason, "duration_s": 60}}


def test_a_conflicting_resend_is_a_422_naming_the_field(tmp_path: Path) -> None:
    home = tmp_path / "ledger"
    record(home, SCENARIO[:3])
    secrets = make_tokens(home)
    with TestClient(create_app(Settings(data_dir=home), duties=[])) as client:
        h = auth(secrets["customer_care"])
        assert client.post("/api/facts", json=_call("billing question"), headers=h).status_code == 201
        same = client.post("/api/facts", json=_call("billing question"), headers=h)
        assert same.status_code == 201 and same.json()["duplicates"] == 1
        other = {**_call("billing question"), "data": {"reason": "billing question", "duration_s": 90}}
        response = client.post("/api/facts", json=[other, _call("a new complaint")], headers=h)
        assert response.status_code == 422, response.text
        rejected = response.json()["detail"]["rejected"]
        assert [r["index"] for r in rejected] == [0, 1]
        assert 'source "pbx", id "k1"' in rejected[0]["reason"]
        assert "data.duration_s: recorded 60, sent 90" in rejected[0]["reason"]
        # data.reason is free text (personal): named, never shown.
        assert "data.reason differs (personal data: values not shown)" in rejected[1]["reason"]
        assert "billing question" not in rejected[1]["reason"]
