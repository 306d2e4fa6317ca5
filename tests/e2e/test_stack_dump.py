"""`kill -USR1` shows where a running command is, and lets it go on (how an operator finds out
what a worker that does not stop is waiting for)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path


def test_usr1_prints_the_threads_and_the_command_carries_on(tmp_path: Path) -> None:
    command = subprocess.Popen([sys.executable, "-m", "journey.cli", "--data-dir", str(tmp_path / "ledger"),
                                "append", "-", "--no-project"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        store = tmp_path / "ledger" / "ledger.sqlite"  # made after the signal is taken over
        deadline = time.monotonic() + 60
        while not store.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert store.exists()
        command.send_signal(signal.SIGUSR1)
        time.sleep(1)
        assert command.poll() is None  # still running
        out, err = command.communicate(b'{"type": "call.inbound", "id": "c1", "source": "cc", '
                                       b'"customer": {"phone": "+34600000001"}, '
                                       b'"occurred_at": "2026-01-04T10:00:00+01:00", "data": {}}\n',
                                       timeout=60)
    finally:
        if command.poll() is None:
            command.kill()
    assert command.returncode == 0, err
    assert b"Current thread" in err or b"Thread 0x" in err
    assert b"recorded 1" in out
