"""Ctrl-C in the middle of a long command: a line and exit 130, never a traceback, and nothing
half-written: the rerun records the rest exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson

from journey import demo_data
from tests.processes import stored_events


def _journey(home: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "journey.cli", "--data-dir", str(home), *args]


def test_an_interrupted_append_says_so_keeps_whole_batches_and_the_rerun_records_the_rest(
        tmp_path: Path) -> None:
    home = tmp_path / "ledger"
    source = tmp_path / "facts.jsonl"
    count = demo_data.write_jsonl(source, demo_data.generate(1500, seed=3))
    append = subprocess.Popen(_journey(home, "append", str(source), "--no-project", "--batch", "500"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert append.stderr is not None
    # Interrupt once the first progress line shows batches are being recorded.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = append.stderr.readline()
        if not line or "append:" in line:
            break
    append.send_signal(signal.SIGINT)
    _, err = append.communicate(timeout=120)
    if append.returncode == 0:  # finished before the signal landed: nothing to judge
        return
    assert append.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err
    kept = stored_events(home)
    assert kept < count

    rerun = subprocess.run(_journey(home, "append", str(source), "--no-project", "--json"),
                           capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    summary = orjson.loads(rerun.stdout)
    assert summary["rejected"] == 0
    # Every line is recorded or a duplicate of what the interrupted run kept, once.
    assert summary["recorded"] + summary["duplicates"] == summary["lines"] == count
    rebuilt = tmp_path / "again"
    once = subprocess.run(_journey(rebuilt, "append", str(source), "--no-project"),
                          capture_output=True, text=True, timeout=300)
    assert once.returncode == 0, once.stderr
    assert stored_events(home) == stored_events(rebuilt)
