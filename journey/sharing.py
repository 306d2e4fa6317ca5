"""Several processes on one data directory: who holds the projections, and turns at the store.

DuckDB admits one process per file while any process writes it, and its own refusal names
nobody a person would recognise. So whoever opens the projections first takes an exclusive
``flock`` on ``projections.lock`` and writes into it who it is (pid, command, a server's
address, since when); a second process waits for it, telling its user whom it waits for, up
to ``JOURNEY_WAIT`` seconds, then gives up with :class:`Busy` (exit code 75, sysexits.h's
EX_TEMPFAIL: try again later), never a traceback. The flock dies with its process, so a
killed holder never leaves a stale lock. A process that has the file open without our lock
is named from DuckDB's refusal at once (:class:`ForeignHolder`).

Within one process the hold is shared and counted: DuckDB shares one database between the
connections of a process too, and a server's threads must not wait for themselves.

Writers of the SQLite store take turns per batch on ``writer.lock`` (:func:`writer_turns`):
a short blocking flock, so two appends interleave their batches instead of one failing on
SQLite's "database is locked".
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import duckdb
import orjson

#: The exit code of a command that gave up waiting for the projections.
BUSY = 75
#: How often a waiting command repeats whom it waits for.
SAY_EVERY = 5.0
_POLL = 0.1

T = TypeVar("T")


class Busy(Exception):
    """Another process kept the projections longer than this one would wait."""


@dataclass(frozen=True)
class Holder:
    pid: int
    command: str
    started_at: str
    url: str | None = None

    def describe(self) -> str:
        what = f"journey serve at {self.url}" if self.url else self.command
        if not self.pid:
            return what
        try:
            since = datetime.fromisoformat(self.started_at).strftime("%H:%M:%S")
        except ValueError:
            since = self.started_at
        return f"{what} (pid {self.pid}, since {since})"

    def to_json(self) -> bytes:
        return orjson.dumps({"pid": self.pid, "command": self.command,
                             "started_at": self.started_at, "url": self.url})


# What this process says it is; set once by the command line (and by a server, its address).
_identity: dict[str, str | None] = {"command": None, "url": None}
_started = datetime.now().astimezone().isoformat(timespec="seconds")


def identify(command: str, url: str | None = None) -> None:
    """Name this process in the lock it holds: the subcommand only (never its arguments,
    which may be a customer's phone number), and a server's address."""
    _identity["command"] = command
    _identity["url"] = url


def this_process() -> Holder:
    command = _identity["command"] or Path(sys.argv[0]).name or "python"
    return Holder(os.getpid(), command, _started, _identity["url"])


def read_holder(path: Path) -> Holder | None:
    """Who wrote ``path`` last; None while it is being written or when it is not ours."""
    try:
        raw = orjson.loads(path.read_bytes())
        return Holder(int(raw["pid"]), str(raw["command"]), str(raw["started_at"]),
                      raw.get("url"))
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class _Hold:
    fd: int
    count: int


_holds: dict[str, _Hold] = {}
_guard = threading.Lock()
_taking = threading.Lock()


class Waiting:
    """Says on stderr whom we wait for, at most every :data:`SAY_EVERY` seconds, and gives up
    at the deadline."""

    def __init__(self, directory: Path, wait: float) -> None:
        self.directory = directory
        self.wait = wait
        self.started = time.monotonic()
        self.said = -SAY_EVERY
        self.me = this_process().command

    def tick(self, whom: str, server: bool = False) -> None:
        elapsed = time.monotonic() - self.started
        if elapsed >= self.wait:
            until = " (a server keeps them until it stops)" if server else ""
            raise Busy(f"{self.me}: {whom} holds the projections in {self.directory}{until}; gave "
                       f"up after {self.wait:g} s (set JOURNEY_WAIT to wait longer; 0: do not wait)")
        if elapsed - self.said >= SAY_EVERY:
            self.said = elapsed
            print(f"{self.me}: waiting for {whom} to release the projections in {self.directory} "
                  f"({elapsed:.0f} of {self.wait:g} s; JOURNEY_WAIT)...", file=sys.stderr, flush=True)
        time.sleep(_POLL)


def hold(lock: Path, waiting: Waiting) -> Callable[[], None]:
    """Take the projections' lock (waiting for its holder); returns the function that lets go."""
    key = str(lock.resolve())
    with _taking:  # a second thread of this process shares the hold, never waits for it
        with _guard:
            held = _holds.get(key)
            if held is not None:
                held.count += 1
                return lambda: _let_go(key)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    holder = read_holder(lock)
                    waiting.tick(holder.describe() if holder else "another process",
                                 server=holder is not None and holder.url is not None)
            os.ftruncate(fd, 0)
            os.pwrite(fd, this_process().to_json(), 0)
        except BaseException:
            os.close(fd)
            raise
        with _guard:
            _holds[key] = _Hold(fd, 1)
    return lambda: _let_go(key)


def _let_go(key: str) -> None:
    with _guard:
        held = _holds[key]
        held.count -= 1
        if held.count:
            return
        del _holds[key]
    os.ftruncate(held.fd, 0)
    os.close(held.fd)  # closing the last descriptor releases the flock


def holder_now(lock: Path) -> Holder | None:
    """Who holds the projections right now, if another process does (without waiting)."""
    try:
        fd = os.open(lock, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return read_holder(lock) or Holder(0, "another process", "")
    finally:
        os.close(fd)
    return None


_DUCKDB_HOLDER = re.compile(r"Conflicting lock is held in (.*?) \(PID (\d+)\)")


class ForeignHolder(Busy, duckdb.IOException):
    """The projections are open in a process that does not take our lock (an older journey, a
    DuckDB shell): nothing says when it lets go, so nobody waits for it. Still DuckDB's lock
    error too, for callers with their own way around one (``journey export`` leaves a request)."""


def _open_or_name(open_: Callable[[], T], lock: Path) -> T:
    """``open_()`` the DuckDB file; its lock error, naming the process DuckDB names."""
    try:
        return open_()
    except duckdb.IOException as error:
        if "lock" not in str(error).lower():
            raise
        found = _DUCKDB_HOLDER.search(str(error))
        whom = f"{found.group(1)} (pid {found.group(2)})" if found else "another process"
        raise ForeignHolder(
            f"{this_process().command}: {whom} has the projections in {lock.parent} open without "
            f"taking {lock.name} (an older journey, a DuckDB shell?); stop it and try again") from error


def open_projections(lock: Path, wait: float, open_: Callable[[], T]) -> tuple[T, Callable[[], None]]:
    """Hold the projections, then open them; the function returned closes nothing, it lets go
    of the lock (call it after closing what ``open_`` opened)."""
    release = hold(lock, Waiting(lock.parent, wait))
    try:
        return _open_or_name(open_, lock), release
    except BaseException:
        release()
        raise


#: Writer turns this thread holds, by lock file: a turn is re-entrant within one thread.
_turns = threading.local()


def writer_turns(lock: Path) -> Callable[[], contextlib.AbstractContextManager[None]]:
    """Turns at the store for :class:`ledger.writer.Ledger`: one flock per batch attempt, on a
    fresh descriptor each time so threads of one process take turns too.

    A turn is re-entrant within one thread, whichever ledger of the process asks: a writer
    that records something while it holds its turn (a hook of the batch, a second ledger on
    the same store) must not wait for itself; the store's own conflict check still judges
    what the two write."""
    key = str(lock.resolve())

    @contextlib.contextmanager
    def turn() -> Iterator[None]:
        held: dict[str, int] = _turns.__dict__.setdefault("held", {})
        if held.get(key, 0):
            held[key] += 1
            try:
                yield
            finally:
                held[key] -= 1
            return
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            held[key] = 1
            try:
                yield
            finally:
                held[key] = 0
        finally:
            os.close(fd)

    return turn
