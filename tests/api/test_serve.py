"""``journey serve`` as a real process on a free loopback port, spoken to with httpx."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from benchmarks import api_load
from domain.catalogue import TYPES
from tests.api.conftest import SCENARIO, record
from tests.processes import free_port, stop, wait_for_health


def _journey(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "journey.cli", "--data-dir", str(home), *args],
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, str, subprocess.Popen[str], Path]]:
    home = tmp_path / "ledger"
    record(home, SCENARIO)
    made = _journey(home, "token", "create", "ops", "--role", "admin", "--json")
    assert made.returncode == 0, made.stderr
    secret = orjson.loads(made.stdout)["secret"]
    port = free_port()
    log = tmp_path / "serve.log"
    with open(log, "w") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "journey.cli", "--data-dir", str(home), "serve", "--port", str(port)],
            stdout=subprocess.DEVNULL, stderr=err, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(url, process, log.read_text)
        yield url, secret, process, log
    finally:
        stop(process)


def test_serve_answers_over_loopback(server: tuple[str, str, subprocess.Popen[str], Path]) -> None:
    url, secret, process, log = server
    bearer = {"Authorization": f"Bearer {secret}"}
    with httpx.Client(base_url=url, timeout=30) as client:
        inputs = [name for name, spec in TYPES.items() if not spec.system]
        assert client.get("/api/me", headers=bearer).json() == {"name": "ops", "role": "admin",
                                                                "department": None,
                                                                "may_record": inputs}
        assert client.get("/api/me").status_code == 401
        before = client.get("/api/customers/+34600111001", headers=bearer).json()
        fact = {"type": "call.inbound", "id": "serve-1", "source": "pbx",
                "customer": {"customer_id": "C-1001"}, "occurred_at": "2026-05-19T10:00:00+02:00",
                "department": "customer_care", "data": {}}
        response = client.post("/api/facts", json=[fact], headers=bearer)
        assert response.status_code == 201, response.text
        after = client.get("/api/customers/C-1001", headers=bearer).json()
        assert after["counts"]["events"] == before["counts"]["events"] + 1
        assert client.get("/", follow_redirects=False).headers["location"] == "/console/"
        assert "/api/customers/{ref}" in client.get("/openapi.json").json()["paths"]
        # a browser: the session cookie
        assert client.post("/api/session", json={"token": secret}).status_code == 200
        assert client.get("/api/cases").status_code == 200
        client.delete("/api/session")
        assert client.get("/api/cases").status_code == 401
    # the load generator, briefly, against the real server
    report = api_load.run(url, secret, ["C-1001", "+34600111002", "ana@example.es", "C-404"],
                          seconds=1.0, concurrency=2)
    assert report["requests"] > 0 and not report["errors"]
    assert set(report["statuses"]) == {"200", "404"}
    assert report["median_ms"] > 0 and report["p99_ms"] >= report["median_ms"]
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 0
    text = log.read_text()
    assert f"on http://127.0.0.1:{url.rsplit(':', 1)[1]}/" in text  # loopback unless told otherwise
    assert "ops (admin) GET /api/customers/C-1001 200" in text
    assert '- GET /api/me 401' in text and 'reason="no token' in text
    assert secret not in text


def test_serve_binds_loopback_by_default() -> None:
    from journey.cli import build_parser

    args = build_parser().parse_args(["serve"])
    assert (args.host, args.port) == ("127.0.0.1", 8000)
