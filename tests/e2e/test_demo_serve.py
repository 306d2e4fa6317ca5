"""``journey demo --serve``: the README's first command must end at a console a newcomer can open."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_demo_serve_prints_sign_in_links_that_open_the_console(tmp_path: Path) -> None:
    home = tmp_path / "demo"
    port = _free_port()
    out = tmp_path / "demo.out"
    with open(out, "w") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "journey.cli", "--data-dir", str(home), "demo", "--customers", "60",
             "--serve", "--port", str(port)],
            stdout=handle, stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{base}/api/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, out.read_text()
            assert time.monotonic() < deadline, out.read_text()
            time.sleep(0.2)
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
