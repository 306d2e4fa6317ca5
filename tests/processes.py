"""Helpers for tests that run real `journey` processes (and kill them)."""

from __future__ import annotations

import signal
import socket
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx


def wait_for_line(process: subprocess.Popen[str], marker: str, timeout: float = 120) -> str:
    """Read the process's stderr until a line holds ``marker``; fail with the last lines seen."""
    assert process.stderr is not None
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        seen.append(line)
        if marker in line:
            return line
        if not line and process.poll() is not None:
            break
    raise AssertionError(f"{marker!r} never appeared (exit {process.poll()}):\n{''.join(seen[-20:])}")


def free_port() -> int:
    """A loopback port nobody listens on right now (for a `journey serve` under test)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_health(url: str, process: subprocess.Popen[str], log: Callable[[], str] = lambda: "",
                    timeout: float = 60) -> None:
    """Until ``url``/api/health answers 200; fail (with ``log()``) if the server exits or is late."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"journey serve did not come up (exit {process.poll()}):\n{log()}")
        time.sleep(0.1)


def running(pid: int) -> bool:
    """True while ``pid`` runs. A zombie (exited, waiting for init to reap it) does not: an
    orphan's exit is what a test that kills its parent waits for."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def stored_events(home: Path) -> int:
    """How many events the data directory's SQLite store holds (read beside running writers)."""
    con = sqlite3.connect(home / "ledger.sqlite")
    try:
        [(count,)] = con.execute("SELECT count(*) FROM stored_events").fetchall()
    finally:
        con.close()
    return int(count)


def stop(process: subprocess.Popen[str], timeout: float = 30) -> None:
    """Stop a long-running `journey` process as Ctrl-C would, killing it if it hangs."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
