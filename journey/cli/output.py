"""What every command prints besides its own text: JSON for machines, progress for people.

One ``dump`` so that ``--json`` means the same bytes in every command (indented, UTF-8, keys in
the order the use case gave them), and one ``Ticker`` so long runs show they are alive on
stderr without flooding it.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson

from consumers.jsonl_ingest import IngestSummary
from consumers.log_follower import Progress
from journey.cli.textview import plural as plural
from journey.cli.textview import printable
from journey.config import Settings


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


def ingest_progress(ticker: Ticker, total: int | None = None) -> Callable[[IngestSummary], None]:
    """Lines read (of ``total`` when the command knows how many there are), recorded, left out."""
    of = f" of {total:,}" if total is not None else ""

    def show(s: IngestSummary) -> None:
        ticker(f"{s.lines:,}{of} lines read, {s.recorded:,} recorded, {s.duplicates:,} duplicates, "
               f"{len(s.rejected):,} rejected ({s.rate:,.0f} lines/s)")
    return show


class Projecting:
    """A catch-up's progress on stderr, as the work goes.

    While the log is read and its rows written: how many of the events to project are done
    and, when the catch-up did not start at the beginning, the position reached. Once every
    event is written, the projection still works out each customer's derived rows (summary,
    cases, promises) for a while with no count of its own: that is said at once, whatever the
    ticker's pace, and with ``quiet_every`` (seconds) how long it has been at it, every so
    often, until :meth:`close`. Without ``quiet_every`` nothing runs after the last call, so
    a caller that never closes it loses nothing, and a catch-up shorter than the ticker's pace
    prints nothing at all.
    """

    def __init__(self, ticker: Ticker, quiet_every: float | None = None) -> None:
        self.ticker = ticker
        self.quiet_every = quiet_every
        self.start: int | None = None
        self.stop = threading.Event()
        self.waiting: threading.Thread | None = None

    def __call__(self, p: Progress) -> None:
        if self.start is None:
            self.start = max(0, p.position - p.projected)
        todo = max(p.head - self.start, 0)
        done = min(p.position - self.start, todo)
        rate = p.projected / p.elapsed if p.elapsed else 0.0
        events = "new event" if self.start else "event"
        where = f", position {p.position:,} of {p.head:,}" if self.start else ""
        if p.position < p.head:
            self.ticker(f"{done:,} of {plural(todo, events)} written{where} ({rate:,.0f} events/s)")
            return
        # A short catch-up (a command reading a customer after an append) says nothing it has
        # not said before; a long one, or one its command follows to the end, says what follows.
        self.ticker(f"all {plural(todo, events)} written{where}; now working out each customer's "
                    "summary, cases and promises from them",
                    force=self.quiet_every is not None or p.elapsed >= self.ticker.every)
        if self.quiet_every is not None and self.waiting is None:
            self.waiting = threading.Thread(target=self._still, args=(time.monotonic(),), daemon=True)
            self.waiting.start()

    def _still(self, since: float) -> None:
        assert self.quiet_every is not None
        while not self.stop.wait(self.quiet_every):
            self.ticker(f"still working out the customers' rows ({time.monotonic() - since:,.0f} s)",
                        force=True)

    def close(self) -> None:
        self.stop.set()
        if self.waiting is not None:
            self.waiting.join()

    def __enter__(self) -> Projecting:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def project_progress(ticker: Ticker, quiet_every: float | None = None) -> Projecting:
    return Projecting(ticker, quiet_every)


def no_terminal(settings: Settings) -> bool:
    """Nobody can answer a question: standard input is not a terminal, or the settings say the
    command runs in CI (``settings.ci``: a CI job's pseudo-terminal has nobody at it)."""
    return not sys.stdin.isatty() or settings.ci


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


#: Why each command that asks first cannot run without a terminal or --yes.
UNASKED = {
    "merge": "a merge joins two records for good, and there is no terminal here to confirm it at; "
             "check the two records and add --yes",
    "forget": "an erasure cannot be undone, and there is no terminal here to confirm it at; "
              "check who the reference names and add --yes",
}
#: What each says when the answer is no.
DECLINED = {"merge": "not confirmed; nothing recorded", "forget": "not confirmed; nothing erased"}


def confirm(args: argparse.Namespace, settings: Settings, lines: list[str], question: str) -> int | None:
    """Ask ``question`` after ``lines`` for ``journey merge``/``forget``: None to go on; else
    the exit code (1 not confirmed, 2 no terminal to ask at).

    With ``args.check`` (a server runs the command for a process at a terminal, and has no
    terminal of its own: :func:`confirm_forwarded`) the lines and the question are printed on
    stdout instead, for that process to ask, and nothing is done."""
    if getattr(args, "check", False):
        for line in [*lines, question]:
            print(printable(line))
        return 0
    if no_terminal(settings):
        print(f"journey {args.command}: {UNASKED[args.command]}", file=sys.stderr)
        return 2
    if not ask(lines, question):
        print(f"journey {args.command}: {DECLINED[args.command]}", file=sys.stderr)
        return 1
    return None


def confirm_forwarded(args: argparse.Namespace, settings: Settings,
                      run: Callable[[argparse.Namespace], int]) -> int | None:
    """The confirmation of a command that asks first (``args.yes`` False) when this data
    directory's server runs it (``run`` hands it the command): the server looks the records up
    and says what to ask (``--check``), this process asks at its own terminal, and the command
    then goes to the server with ``--yes``. None: go on and forward ``args`` (now with yes);
    else the exit code."""
    said = io.StringIO()
    with contextlib.redirect_stdout(said):
        code = run(argparse.Namespace(**{**vars(args), "check": True}))
    lines = said.getvalue().splitlines()
    if code != 0:
        sys.stdout.write(said.getvalue())
        return code
    if lines and no_terminal(settings):
        print(f"journey {args.command}: {UNASKED[args.command]}", file=sys.stderr)
        return 2
    if lines and not ask(lines[:-1], lines[-1]):
        print(f"journey {args.command}: {DECLINED[args.command]}", file=sys.stderr)
        return 1
    args.yes = True
    return None


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
