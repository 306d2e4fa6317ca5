"""``journey forget`` while ``journey serve`` holds the projections: the server runs the forget
itself (journey/forwarding.py), applies it to the projections it holds, and the analysts'
snapshot no longer holds the person."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import httpx
import orjson

from journey.analytics.snapshots import MANIFEST, REQUEST
from tests.api.conftest import IBAN
from tests.api.test_serve import _journey, server  # noqa: F401  (the fixture)

SECRETS = ("Ana Mart", "600111001", "ana@example.es", IBAN, "X200-5581-AB", "charged twice")


def _until(check: Callable[[], bool], what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"waited {timeout:.0f} s for {what}"
        time.sleep(0.2)


def test_forget_while_the_server_holds_the_projections(
        server: tuple[str, str, subprocess.Popen[str], Path]) -> None:  # noqa: F811
    url, secret, _, log = server
    home = Path(log).parent / "ledger"
    exported = _journey(home, "export", "--json")
    assert exported.returncode == 0, exported.stderr
    assert "X200-5581-AB" in _leaks(_snapshot_rows(home / "analytics") or b"")  # the test can fail
    bearer = {"Authorization": f"Bearer {secret}"}
    with httpx.Client(base_url=url, timeout=30, headers=bearer) as client:
        ledger_id = client.get("/api/customers/C-1001").json()["customer_id"]

        done = _journey(home, "forget", "C-1001", "--reason", "art. 17 request", "--yes", "--json")
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
        report = orjson.loads(done.stdout)
        assert report["customer_id"] == ledger_id
        assert report["projected"] is True and report["snapshot"] in ("refreshed", "requested")

        _until(lambda: client.get(f"/api/customers/{ledger_id}").json().get("forgotten") is True,
               "the server to apply the forget")
        assert client.get("/api/customers/+34600111001").status_code == 404
        directory = home / "analytics"
        _until(lambda: not (directory / REQUEST).exists() and
               orjson.loads((directory / MANIFEST).read_bytes())["position"] >= 1 and
               _snapshot_rows(directory) is not None and not _leaks(_snapshot_rows(directory) or b""),
               "the server's export without the person")
        assert client.get("/api/customers/C-1002").json()["name"] is not None  # nobody else
    assert _leaks((home / "ledger.sqlite").read_bytes()) == []


def _snapshot_rows(directory: Path) -> bytes | None:
    """Every value of every Parquet file of every generation kept, as text (None: being deleted)."""
    con = duckdb.connect()
    try:
        return b"".join(orjson.dumps(con.execute(f"SELECT * FROM read_parquet('{p}')").fetchall(), default=str)
                        for p in sorted(directory.glob("generations/*/*.parquet")))
    except duckdb.Error:
        return None
    finally:
        con.close()


def _leaks(blob: bytes) -> list[str]:
    return [s for s in SECRETS if s.encode() in blob]
