"""A ledger, tokens and a real `journey serve` process for the console's browser tests.

Also used by scripts/console_screenshots.py, so the screenshots in docs/console/ show the same
customers the tests check.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
JOURNEY = str(Path(sys.executable).with_name("journey"))
CHROMIUM = "/usr/bin/chromium"

#: A customer with more events than the first page of the timeline (the "show older" button).
BUSY_CUSTOMER = "C-990001"
BUSY_EVENTS = 64  # registration + 63 calls
#: The national id linked to the "don't call me again" customer: a field some roles may not see.
NATIONAL_ID = "12345678Z"


def scenario_facts() -> list[dict[str, Any]]:
    """Facts added on top of the demo: a late store visit and a national id for C-900001 (the
    demo's "don't call me again" customer), and a customer with a long history."""
    facts: list[dict[str, Any]] = [
        # Happened on 8 March, uploaded now: the demo already holds his calls of 9-11 March,
        # so the timeline marks it as recorded late.
        {"type": "store.visit", "id": "late-visit-1", "source": "store-mad01",
         "customer": {"phone": "+34600900001"}, "occurred_at": "2026-03-08T12:30:00+01:00",
         "department": "stores", "agent": "S-7",
         "data": {"store": "MAD01", "reason": "asked why sales keeps calling him"}},
        {"type": "identity.linked", "id": "dni-1", "source": "store-mad01",
         "customer": {"customer_id": "C-900001"}, "occurred_at": "2026-10-01T10:00:00+02:00",
         "department": "stores", "agent": "S-7",
         "data": {"kind": "national_id", "value": NATIONAL_ID}},
        {"type": "customer.registered", "id": "busy-0", "source": "crm",
         "customer": {"customer_id": BUSY_CUSTOMER}, "occurred_at": "2026-01-05T09:00:00+01:00",
         "department": "sales", "agent": "A-1",
         "data": {"name": "Marta Busy Llamadas", "phone": "+34611990001",
                  "email": "marta.busy@example.es"}},
    ]
    for i in range(1, BUSY_EVENTS):
        facts.append({
            "type": "call.inbound", "id": f"busy-{i}", "source": "crm",
            "customer": {"customer_id": BUSY_CUSTOMER},
            "occurred_at": f"2026-02-{1 + i % 28:02d}T{8 + i % 12:02d}:{i % 60:02d}:00+01:00",
            "department": "customer_care", "agent": f"CC-{i % 5}",
            "data": {"reason": f"question number {i}"}})
    return facts


def journey(data_dir: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([JOURNEY, "--data-dir", str(data_dir), *args], capture_output=True,
                            text=True, timeout=timeout, cwd=ROOT)
    if result.returncode != 0:
        raise RuntimeError(f"journey {' '.join(args)} exited {result.returncode}:\n"
                           f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return result


def build_ledger(data_dir: Path, customers: int = 200) -> None:
    """The demo ledger (its six stories included) plus :func:`scenario_facts`."""
    journey(data_dir, "demo", "--customers", str(customers), "--seed", "7")
    facts = data_dir / "console-scenario.jsonl"
    facts.write_text("".join(json.dumps(f, ensure_ascii=False) + "\n" for f in scenario_facts()),
                     encoding="utf-8")
    journey(data_dir, "append", str(facts))


def create_token(data_dir: Path, name: str, role: str, department: str | None = None) -> str:
    """`journey token create`: the secret it prints."""
    args = ["token", "create", name, "--role", role]
    if department:
        args += ["--department", department]
    out = journey(data_dir, *args).stdout
    found = re.findall(r"\bjt_[A-Za-z0-9_\-]+", out)
    if found:
        return found[-1]
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    if not lines:
        raise RuntimeError(f"journey token create printed no secret: {out!r}")
    return lines[-1].split()[-1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def serve(data_dir: Path, log: Path) -> Iterator[str]:
    """A real `journey serve` on a free loopback port; yields its base URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [JOURNEY, "--data-dir", str(data_dir), "serve", "--host", "127.0.0.1", "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            deadline = time.monotonic() + 90
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"journey serve exited {process.returncode}:\n"
                                       f"{log.read_text(errors='replace')[-3000:]}")
                try:
                    with urllib.request.urlopen(base + "/api/health", timeout=2) as r:
                        if r.status == 200:
                            break
                except (urllib.error.URLError, OSError):
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"journey serve did not answer on {base} in 90 s:\n"
                                       f"{log.read_text(errors='replace')[-3000:]}")
                time.sleep(0.3)
            yield base
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def chromium_available() -> bool:
    return os.access(CHROMIUM, os.X_OK) or shutil.which(CHROMIUM) is not None


def sign_in(page: Any, base: str, secret: str, route: str = "") -> None:
    """Open the console (at ``route``, a hash like ``#/inbox``) and sign in through the form."""
    page.goto(f"{base}/console/{route}")
    page.wait_for_selector("#login-form")
    page.fill("#token", secret)
    page.click("#login-button")
    page.wait_for_selector("#user .user-name")
