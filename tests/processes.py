"""Helpers for tests that run real `journey` processes (and kill them)."""

from __future__ import annotations

import subprocess
import time


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
