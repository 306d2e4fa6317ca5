"""``journey demo --serve``: the README's first command must end at a console a newcomer can open."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from tests.processes import free_port, wait_for_health


def test_demo_serve_prints_sign_in_links_that_open_the_console(tmp_path: Path) -> None:
    home = tmp_path / "demo"
    port = free_port()
    out = tmp_path / "demo.out"
    with open(out, "w") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "journey.cli", "--data-dir", str(home), "demo", "--customers", "60",
             "--serve", "--port", str(port)],
            stdout=handle, stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(base, process, out.read_text, timeout=180)
        printed = out.read_text()
        links = dict(re.findall(r"^\s+(\w+)\s+(http://\S+/console/#token=\S+)$", printed, re.M))
        assert {"stores", "customer_care", "social_media", "auditor", "admin"} <= set(links)
        secret = links["stores"].split("#token=", 1)[1]
        # What the page does with the link: the token becomes the session cookie.
        with httpx.Client(base_url=base) as browser:
            assert browser.get("/console/").status_code == 200
            assert browser.post("/api/session", json={"token": secret}).status_code in (200, 204)
            me = browser.get("/api/me").json()
            assert me["role"] == "stores"
            view = browser.get("/api/customers/+34600900001")
            assert view.status_code == 200
            assert "C-900001" in view.text
        assert (home / "demo-tokens.txt").read_text().count("jt_") == 5
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
