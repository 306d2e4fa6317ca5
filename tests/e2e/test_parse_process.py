"""``journey append`` with its parse process, as real processes killed with SIGKILL: the parse
process never outlives the append, and a parse process that dies ends the append with one line
and exit 75, keeping whole batches, and the rerun records each fact once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from journey import demo_data
from tests.processes import running, stored_events, wait_for_line

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def journey(home: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "journey.cli", "--data-dir", str(home), *args]


def appending(tmp_path: Path) -> tuple[subprocess.Popen[str], Path, Path, int, int]:
    """A ``journey append`` of a file of some 18,000 facts in batches of 500, once it has
    recorded its first batch: the process, its data directory, the file, its facts, and the
    pid of its parse process."""
    source = tmp_path / "in.jsonl"
    total = demo_data.write_jsonl(source, demo_data.generate(1500, seed=5))
    home = tmp_path / "ledger"
    append = subprocess.Popen(journey(home, "append", str(source), "--batch", "500", "--no-project"),
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
    wait_for_line(append, "lines read")
    parse = parse_process_of(append.pid)
    return append, home, source, total, parse


def parse_process_of(pid: int) -> int:
    """The child of ``pid`` that runs ``consumers.parse_pool``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if not entry.name.isdigit():
                continue
            parent = (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
            if parent == str(pid) and b"consumers.parse_pool" in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    assert len(found) == 1, found
    return found[0]


def rerun_records_each_fact_once(home: Path, source: Path, total: int) -> None:
    kept = stored_events(home)
    again = subprocess.run(journey(home, "append", str(source), "--no-project", "--json"), cwd=ROOT,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    summary = orjson.loads(again.stdout)
    assert summary["rejected"] == 0 and summary["duplicates"] > 0
    assert summary["recorded"] + summary["duplicates"] == summary["lines"] == total
    assert stored_events(home) > kept
    once = subprocess.run(journey(home.parent / "once", "append", str(source), "--no-project"),
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert once.returncode == 0, once.stderr
    assert stored_events(home) == stored_events(home.parent / "once")


def test_an_append_killed_takes_its_parse_process_with_it(tmp_path: Path) -> None:
    append, home, source, total, parse = appending(tmp_path)
    append.send_signal(signal.SIGKILL)
    append.wait()
    deadline = time.monotonic() + 10
    while running(parse) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not running(parse)  # it read the end of its pipe and exited
    rerun_records_each_fact_once(home, source, total)


def test_a_parse_process_killed_ends_the_append_with_a_line_and_the_rerun_records_the_rest(
        tmp_path: Path) -> None:
    append, home, source, total, parse = appending(tmp_path)
    os.kill(parse, signal.SIGKILL)
    _, err = append.communicate(timeout=120)
    assert append.returncode == 75, err
    assert "Traceback" not in err
    [said] = [line for line in err.splitlines() if "parse process" in line]
    assert said.startswith("journey append: the parse process") and "killed by SIGKILL" in said
    assert "append the same input again" in said
    kept = stored_events(home)
    assert 0 < kept < total
    rerun_records_each_fact_once(home, source, total)
