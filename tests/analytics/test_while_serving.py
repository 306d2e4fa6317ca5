"""``journey sql`` and ``journey export`` work while ``journey serve`` holds the projections and
records facts: the acceptance test of issue #7's analysts part."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import httpx
import orjson
import pytest

from tests.analytics.helpers import run
from tests.processes import free_port, stop, wait_for_health, wait_for_line

SEED = [
    {"type": "customer.registered", "id": "r1", "source": "crm", "customer": {"customer_id": "C-77"},
     "occurred_at": "2026-01-03T10:00:00+01:00", "data": {"name": "Ana Ruiz", "phone": "+34622000777"}},
]


def _journey() -> list[str]:
    script = Path(sys.executable).with_name("journey")
    return [str(script)] if script.exists() else [sys.executable, "-m", "journey.cli"]


def _call(n: int) -> dict[str, Any]:
    return {"type": "call.inbound", "id": f"live-{n}", "source": "cc", "customer": {"phone": "+34622000777"},
            "occurred_at": f"2026-02-01T{10 + n // 3600 % 10:02d}:{n // 60 % 60:02d}:{n % 60:02d}+01:00",
            "department": "customer_care", "data": {"duration_s": n}}


class Writer(threading.Thread):
    """POSTs one fact after another until stopped, as a call centre's integration would."""

    def __init__(self, url: str, secret: str) -> None:
        super().__init__(daemon=True)
        self.url, self.secret = url, secret
        self.stop = threading.Event()
        self.recorded = 0
        self.errors: list[str] = []

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.secret}"}
        with httpx.Client(timeout=30) as client:
            n = 0
            while not self.stop.is_set():
                n += 1
                response = client.post(f"{self.url}/api/facts", json=_call(n), headers=headers)
                if response.status_code == 201:
                    self.recorded += 1
                else:
                    self.errors.append(f"{response.status_code} {response.text}")
                time.sleep(0.01)


def _sql(home: Path, query: str) -> list[dict[str, Any]]:
    done = subprocess.run([*_journey(), "--data-dir", str(home), "sql", query, "--json"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    rows: list[dict[str, Any]] = orjson.loads(done.stdout)
    return rows


def _export(home: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([*_journey(), "--data-dir", str(home), "export", "--json", "--timeout", "90"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finished(process: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    doc: dict[str, Any] = orjson.loads(out)
    return doc


def test_sql_and_export_while_serve_is_writing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "ledger"
    seed = tmp_path / "seed.jsonl"
    seed.write_bytes(b"\n".join(orjson.dumps(f) for f in SEED) + b"\n")
    assert run(capsys, home, "append", str(seed))[0] == 0
    code, secret, _ = run(capsys, home, "token", "create", "loader", "--role", "admin")
    assert code == 0
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # Exports only on request: what this test sees comes from `journey export`.
    env = {**os.environ, "JOURNEY_EXPORT_INTERVAL": "0"}
    server = subprocess.Popen([*_journey(), "--data-dir", str(home), "serve", "--port", str(port),
                               "--log-level", "warning"], stderr=subprocess.PIPE, text=True, env=env)
    writer = Writer(url, secret.strip())
    try:
        wait_for_line(server, "journey serve:", timeout=60)
        wait_for_health(url, server)
        writer.start()
        while writer.recorded < 5:
            assert not writer.errors, writer.errors
            time.sleep(0.05)
        # The premise: nobody else may even read the live file now.
        with pytest.raises(duckdb.IOException, match="lock"):
            duckdb.connect(str(home / "projections.duckdb"), read_only=True)

        first = _finished(_export(home))
        assert first["via"] == "direct"  # run by the server itself (journey/forwarding.py)
        assert not (home / "analytics" / "export.request").exists()
        rows = first["tables"]["events"]["rows"]
        assert rows >= 1 + 5

        # SQL against the snapshot while the server records and exports again.
        second_export = _export(home)
        answers = [_sql(home, "SELECT count(*) AS n, max(position) AS top FROM events") for _ in range(3)]
        second = _finished(second_export)
        assert second["via"] == "direct"
        assert second["tables"]["events"]["rows"] > rows
        assert second["position"] > first["position"]
        for answer in answers:
            assert answer[0]["n"] in (rows, second["tables"]["events"]["rows"])
        latest = _sql(home, "SELECT count(*) AS n, (SELECT position FROM snapshot) AS at FROM events")
        assert latest == [{"n": second["tables"]["events"]["rows"], "at": second["position"]}]
        assert writer.is_alive() and not writer.errors, writer.errors
    finally:
        writer.stop.set()
        writer.join(timeout=30)
        stop(server)
        if server.stderr is not None:
            server.stderr.close()
    assert writer.recorded > 5 and not writer.errors
