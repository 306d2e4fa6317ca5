"""A ledger id is accepted as keys print it (``ledger:<uuid>``), and a malformed one is refused
with a message, never a traceback, by every command and endpoint that takes a reference."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient

from journey.api.app import create_app
from journey.api.tokens import open_tokens
from journey.cli import main
from journey.config import Settings

FACTS = [
    {"type": "customer.registered", "id": "r1", "source": "crm", "customer": {"customer_id": "C-5"},
     "occurred_at": "2026-01-03T10:00:00+01:00", "data": {"name": "Iker", "phone": "+34622333444"}},
    {"type": "call.inbound", "id": "c1", "source": "cc", "customer": {"customer_id": "C-5"},
     "occurred_at": "2026-01-04T10:00:00+01:00", "data": {"reason": "invoice"}, "department": "billing"},
]
MALFORMED = ("ledger:not-a-uuid", "ledger:xyz", "ledger:")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ids") / "ledger"
    source = path.parent / "facts.jsonl"
    source.write_bytes(b"".join(orjson.dumps(f) + b"\n" for f in FACTS))
    assert main(["--data-dir", str(path), "append", str(source)]) == 0
    return path


def journey(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "journey.cli", "--data-dir", str(home), *args],
                          capture_output=True, text=True, timeout=120)


def ledger_id(home: Path) -> str:
    done = journey(home, "customer", "C-5", "--json")
    assert done.returncode == 0, done.stderr
    return str(orjson.loads(done.stdout)["customer_id"])


@pytest.mark.parametrize("args", [
    ("customer", "{ref}"), ("forget", "{ref}", "--reason", "art. 17"),
    ("can-contact", "{ref}", "--channel", "phone", "--purpose", "service"),
    ("cases", "--customer", "{ref}"), ("merge", "C-5", "{ref}", "--reason", "same person"),
    ("subject-access", "{ref}", "--out", "{out}"),
])
def test_a_malformed_ledger_id_is_a_usage_error(home: Path, tmp_path: Path, args: tuple[str, ...]) -> None:
    for ref in MALFORMED:
        done = journey(home, *(a.format(ref=ref, out=tmp_path / "sar.json") for a in args))
        assert done.returncode == 2, (args, ref, done.stdout, done.stderr)
        assert "is not a ledger id" in done.stderr and "Traceback" not in done.stderr


def test_a_ledger_id_names_the_customer_with_or_without_its_prefix(home: Path) -> None:
    uuid = ledger_id(home)
    for ref in (uuid, f"ledger:{uuid}", f"ledger:{uuid.upper()}"):
        done = journey(home, "customer", ref, "--json")
        assert done.returncode == 0, done.stderr
        assert orjson.loads(done.stdout)["customer_id"] == uuid


def test_the_api_answers_422_for_a_malformed_ledger_id(home: Path) -> None:
    store = open_tokens(Settings(data_dir=home))
    try:
        _, secret = store.create("ids", "billing")
    finally:
        store.close()
    uuid = ledger_id(home)
    headers = {"Authorization": f"Bearer {secret}"}
    with TestClient(create_app(Settings(data_dir=home), duties=[])) as client:
        for path in ("/api/customers/{ref}", "/api/customers/{ref}/timeline", "/api/cases?customer={ref}"):
            answer = client.get(path.format(ref="ledger:xyz"), headers=headers)
            assert answer.status_code == 422, (path, answer.text)
            assert "is not a ledger id" in answer.json()["error"]
        assert client.get(f"/api/customers/ledger:{uuid}", headers=headers).status_code == 200
