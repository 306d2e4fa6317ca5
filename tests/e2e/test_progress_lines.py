"""The progress lines a person watches during ``journey demo`` and ``journey replay rebuild``:
counts done of the total, rising as the work goes, and a line for the part after the last event
is written (the customers' derived rows), never a position that stands still at 0."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from consumers.log_follower import Progress
from journey.cli.output import Ticker, project_progress


def journey(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "journey.cli", "--data-dir", str(home), *args],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600)


def test_demo_then_rebuild_say_how_far_they_are(tmp_path: Path) -> None:
    home = tmp_path / "demo"
    built = journey(home, "demo", "--customers", "40")
    assert built.returncode == 0, built.stderr
    lines = built.stderr.splitlines()
    wrote = re.search(r"projections: [\d,]+ customers, ([\d,]+) events", built.stdout)
    assert wrote, built.stdout
    events = int(wrote.group(1).replace(",", ""))
    # Whatever the pace of the lines before, the one at the end of the log is always shown.
    assert f"project: all {events:,} events written; now working out each customer's summary, cases and " \
           "promises from them" in lines, lines
    for line in lines:
        assert not re.search(r"\b0 of [\d,]+", line), line
        if line.startswith("append: "):
            assert re.match(r"append: [\d,]+ of [\d,]+ lines read", line), line

    rebuilt = journey(home, "replay", "rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert f"rebuild: all {events:,} events written; now working out" in rebuilt.stderr
    assert not re.search(r"position 0 of", rebuilt.stderr)


def test_the_lines_count_up_to_the_total_then_name_the_last_part(capsys: pytest.CaptureFixture[str]) -> None:
    every = Ticker("project", every=0.0)
    with project_progress(every) as show:
        for position in (20_000, 38_075):
            show(Progress(projected=position, position=position, head=38_075, elapsed=2.0))
    err = capsys.readouterr().err.splitlines()
    assert err == ["project: 20,000 of 38,075 events written (10,000 events/s)",
                   "project: all 38,075 events written; now working out each customer's summary, cases "
                   "and promises from them"]


def test_a_catch_up_from_the_middle_counts_the_new_events(capsys: pytest.CaptureFixture[str]) -> None:
    with project_progress(Ticker("project", every=0.0)) as show:
        show(Progress(projected=500, position=30_500, head=31_000, elapsed=1.0))
        show(Progress(projected=1_000, position=31_000, head=31_000, elapsed=2.0))
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "project: 500 of 1,000 new events written, position 30,500 of 31,000 (500 events/s)"
    assert err[1].startswith("project: all 1,000 new events written, position 31,000 of 31,000; now working out")


def test_the_last_part_says_it_is_still_at_work_until_it_ends(capsys: pytest.CaptureFixture[str]) -> None:
    seen = ""
    with project_progress(Ticker("rebuild", every=0.0), quiet_every=0.05) as show:
        show(Progress(projected=10, position=10, head=10, elapsed=0.1))
        deadline = time.monotonic() + 60
        while "still working out" not in seen and time.monotonic() < deadline:
            time.sleep(0.05)
            seen += capsys.readouterr().err
    assert "rebuild: still working out the customers' rows (" in seen
    capsys.readouterr()
    time.sleep(0.2)
    assert capsys.readouterr().err == ""  # closed: nothing more


def test_a_short_catch_up_says_nothing_and_one_event_is_one(capsys: pytest.CaptureFixture[str]) -> None:
    """``journey customer`` after an append catches up a few events in a blink: no line. A
    command that follows its catch-up to the end says it, in the singular for one event."""
    show = project_progress(Ticker("project"))
    show(Progress(projected=1, position=101, head=101, elapsed=0.01))
    assert capsys.readouterr().err == ""
    with project_progress(Ticker("project"), quiet_every=60) as shown:
        shown(Progress(projected=1, position=101, head=101, elapsed=0.01))
    assert capsys.readouterr().err == ("project: all 1 new event written, position 101 of 101; now working "
                                       "out each customer's summary, cases and promises from them\n")
