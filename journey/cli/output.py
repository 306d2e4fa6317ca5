"""What every command prints besides its own text: JSON for machines, progress for people.

One ``dump`` so that ``--json`` means the same bytes in every command (indented, UTF-8, keys in
the order the use case gave them), and one ``Ticker`` so long runs show they are alive on
stderr without flooding it.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any

import orjson

from consumers.jsonl_ingest import IngestSummary
from consumers.log_follower import Progress
from journey.cli.textview import printable


def dump(obj: Any) -> None:
    """``obj`` as indented JSON on stdout (what ``--json`` prints)."""
    sys.stdout.write(orjson.dumps(obj, option=orjson.OPT_INDENT_2).decode() + "\n")


class Ticker:
    """Progress on stderr at most once a second, so long runs show they are alive."""

    def __init__(self, label: str, every: float = 1.0) -> None:
        self.label = label
        self.every = every
        self.last = time.monotonic()

    def __call__(self, text: str, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.last >= self.every:
            self.last = now
            print(f"{self.label}: {text}", file=sys.stderr, flush=True)


def ingest_progress(ticker: Ticker) -> Callable[[IngestSummary], None]:
    def show(s: IngestSummary) -> None:
        ticker(f"{s.lines:,} lines read, {s.recorded:,} recorded, {s.duplicates:,} duplicates, "
               f"{len(s.rejected):,} rejected ({s.rate:,.0f} lines/s)")
    return show


def project_progress(ticker: Ticker) -> Callable[[Progress], None]:
    def show(p: Progress) -> None:
        rate = p.projected / p.elapsed if p.elapsed else 0.0
        ticker(f"position {p.position:,} of {p.head:,} ({rate:,.0f} events/s)")
    return show


def no_terminal(settings: object) -> bool:
    """Nobody can answer a question: standard input is not a terminal, or the settings say the
    command runs in CI (``settings.ci``: a CI job's pseudo-terminal has nobody at it)."""
    return not sys.stdin.isatty() or bool(getattr(settings, "ci", False))


def ask(lines: list[str], question: str) -> bool:
    """Show ``lines`` and ``question`` on stderr (stdout stays the command's answer, JSON with
    --json) and read the answer: True only for y or yes; an empty line or the end of input
    is no."""
    for line in lines:
        print(printable(line), file=sys.stderr)
    print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline()
    if not answer:
        print(file=sys.stderr)
    return answer.strip().lower() in ("y", "yes")


def plural(n: int, word: str, many: str | None = None) -> str:
    """``plural(1, "key")`` -> "1 key", ``plural(2, "key")`` -> "2 keys"."""
    return f"{n:,} {word if n == 1 else many or word + 's'}"


def log_to_stderr(logger: str, label: str) -> None:
    """A long-running loop's log (``logger``) on stderr, each line prefixed with ``label``.

    kafka-python reports every failed reconnect; the loops say what matters once per wait, so
    its own log is kept to critical errors.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{label}: %(message)s"))
    log = logging.getLogger(logger)
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
