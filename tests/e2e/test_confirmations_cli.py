"""``journey merge`` and ``journey forget`` cannot be undone by a slip of the keyboard: they show
who they would join or erase and ask at the terminal; ``--yes`` answers for a script; with no
terminal and no ``--yes`` they refuse at once instead of waiting for an answer nobody gives.

Real ``journey`` processes: without a terminal (standard input not a tty) and with one (a
pseudo-terminal the test types the answer into).
"""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.processes import free_port, stop, wait_for_health

FACTS = [
    {"type": "customer.registered", "id": "r1", "source": "crm", "customer": {"customer_id": "C-1"},
     "occurred_at": "2026-01-01T10:00:00+01:00", "data": {"name": "Ana Gómez", "phone": "+34600000001"}},
    {"type": "customer.registered", "id": "r2", "source": "stores", "customer": {"customer_id": "C-2"},
     "occurred_at": "2026-01-02T10:00:00+01:00", "data": {"name": "Andrés Gil", "email": "andres@example.com"}},
    {"type": "store.visit", "id": "v1", "source": "stores", "customer": {"email": "andres@example.com"},
     "occurred_at": "2026-01-05T10:00:00+01:00", "department": "stores", "data": {"store": "Sol"}},
]


def command(home: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "journey.cli", "--data-dir", str(home), *args]


def journey(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """A run with no terminal: standard input is /dev/null."""
    return subprocess.run(command(home, *args), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=120)


#: The environment of a person at a terminal: not a CI job's (CI=true means nobody answers).
AT_A_DESK = {name: value for name, value in os.environ.items() if name != "CI"}


def at_terminal(home: Path, answer: str, *args: str, env: dict[str, str] | None = None
                ) -> subprocess.CompletedProcess[str]:
    """A run whose standard input is a terminal, where ``answer`` is typed."""
    main, side = pty.openpty()
    try:
        process = subprocess.Popen(command(home, *args), stdin=side, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, env=env or AT_A_DESK)
        os.write(main, answer.encode())
        out, err = process.communicate(timeout=120)
    finally:
        os.close(main)
        os.close(side)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "ledger"
    source = tmp_path / "facts.jsonl"
    source.write_bytes(b"".join(orjson.dumps(f) + b"\n" for f in FACTS))
    assert journey(path, "append", str(source)).returncode == 0
    return path


def number_of(home: Path, ref: str) -> str:
    done = journey(home, "customer", ref, "--json")
    assert done.returncode == 0, done.stderr
    return str(orjson.loads(done.stdout)["customer_number"])


def test_merge_without_a_terminal_refuses_unless_told_yes(home: Path) -> None:
    done = journey(home, "merge", "C-1", "C-2", "--reason", "same DNI")
    assert done.returncode == 2 and "--yes" in done.stderr and "no terminal" in done.stderr, done.stderr
    assert number_of(home, "andres@example.com") == "C-2"  # nothing was joined
    done = journey(home, "merge", "C-1", "C-2", "--reason", "same DNI", "--yes")
    assert done.returncode == 0, done.stderr
    assert number_of(home, "andres@example.com") == "C-1"


def test_merge_shows_both_records_and_asks(home: Path) -> None:
    done = at_terminal(home, "n\n", "merge", "C-1", "C-2", "--reason", "same DNI")
    assert done.returncode == 1 and "not confirmed; nothing recorded" in done.stderr, done.stderr
    shown = done.stderr
    assert "C-1  Ana Gómez · phone +34600000001 · 1 event" in shown
    assert "C-2  Andrés Gil · e-mail andres@example.com · 2 events" in shown
    assert "Their names differ (Ana Gómez / Andrés Gil)" in shown
    assert "Merge C-2 into C-1? [y/N]" in shown
    assert number_of(home, "andres@example.com") == "C-2"
    # Yes at the terminal: merged; the question goes to stderr, so --json output stays JSON.
    done = at_terminal(home, "yes\n", "merge", "C-1", "C-2", "--reason", "same DNI", "--json")
    assert done.returncode == 0, done.stderr
    assert orjson.loads(done.stdout)["refused"] == []
    assert number_of(home, "andres@example.com") == "C-1"


def test_merge_says_which_record_is_unknown(home: Path) -> None:
    done = journey(home, "merge", "C-8", "C-9", "--reason", "x", "--yes")
    assert done.returncode == 1
    assert "nobody is known as 'C-8' (REF), nor as 'C-9' (OTHER); nothing recorded" in done.stderr
    done = journey(home, "merge", "C-1", "C-9", "--reason", "x")
    assert done.returncode == 1 and "nobody is known as 'C-9' (OTHER);" in done.stderr, done.stderr
    done = journey(home, "merge", "C-8", "C-2", "--reason", "x")
    assert done.returncode == 1 and "nobody is known as 'C-8' (REF);" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_forget_shows_who_and_asks(home: Path) -> None:
    done = journey(home, "forget", "C-2", "--reason", "art. 17 request")
    assert done.returncode == 2 and "--yes" in done.stderr and "cannot be undone" in done.stderr
    done = at_terminal(home, "\n", "forget", "C-2", "--reason", "art. 17 request")
    assert done.returncode == 1 and "not confirmed; nothing erased" in done.stderr, done.stderr
    assert "C-2  Andrés Gil · e-mail andres@example.com · 2 events" in done.stderr
    assert "Forget C-2? [y/N]" in done.stderr
    assert number_of(home, "andres@example.com") == "C-2"  # still there, readable
    # Nobody known: said before any question.
    done = journey(home, "forget", "C-9", "--reason", "x")
    assert done.returncode == 3 and "nobody known as 'C-9'" in done.stderr
    done = at_terminal(home, "y\n", "forget", "C-2", "--reason", "art. 17 request")
    assert done.returncode == 0 and "forgotten: 1 key destroyed" in done.stdout, done.stderr
    assert journey(home, "customer", "andres@example.com").returncode == 3


@pytest.fixture
def served(home: Path, tmp_path: Path) -> Iterator[Path]:
    """``journey serve`` on the ledger, itself started at a terminal: the commands it runs for
    other processes must never ask on it (nobody there answers for them)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    main, side = pty.openpty()
    with open(log, "w") as err:
        server = subprocess.Popen(command(home, "serve", "--port", str(port)), stdin=side,
                                  stdout=subprocess.DEVNULL, stderr=err, text=True,
                                  env={**AT_A_DESK, "PYTHONUNBUFFERED": "1"})
    try:
        wait_for_health(url, server, log.read_text)
        yield home
    finally:
        stop(server)
        os.close(main)
        os.close(side)


def test_beside_a_server_the_question_is_asked_here(served: Path) -> None:
    home = served
    done = journey(home, "merge", "C-1", "C-2", "--reason", "same DNI")
    assert done.returncode == 2 and "no terminal" in done.stderr, done.stderr
    done = at_terminal(home, "n\n", "merge", "C-1", "C-2", "--reason", "same DNI")
    assert done.returncode == 1 and "not confirmed; nothing recorded" in done.stderr, done.stderr
    assert "C-2  Andrés Gil · e-mail andres@example.com · 2 events" in done.stderr
    assert done.stdout == ""
    assert number_of(home, "andres@example.com") == "C-2"
    done = at_terminal(home, "y\n", "merge", "C-1", "C-2", "--reason", "same DNI")
    assert done.returncode == 0, done.stderr
    assert "C-2 merged into C-1 (same DNI)" in done.stdout
    assert number_of(home, "andres@example.com") == "C-1"
    done = journey(home, "merge", "C-1", "C-9", "--reason", "x")
    assert done.returncode == 1 and "nobody is known as 'C-9' (OTHER)" in done.stderr, done.stderr
    done = at_terminal(home, "yes\n", "forget", "C-1", "--reason", "art. 17 request", "--json")
    assert done.returncode == 0, done.stderr
    # The merged record, as the view now reads it: both customer numbers, both contacts.
    assert "C-1  Andrés Gil · customer number C-2 · e-mail andres@example.com" in done.stderr
    assert orjson.loads(done.stdout)["already_forgotten"] is False


def test_a_ci_job_is_refused_even_at_a_terminal(home: Path) -> None:
    """A CI job's pseudo-terminal has nobody at it: with CI=true the question is not asked."""
    done = at_terminal(home, "y\n", "merge", "C-1", "C-2", "--reason", "same DNI",
                       env={**AT_A_DESK, "CI": "true"})
    assert done.returncode == 2 and "no terminal" in done.stderr, done.stderr
    assert number_of(home, "andres@example.com") == "C-2"
