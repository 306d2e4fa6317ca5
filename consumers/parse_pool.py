"""The door's judging on the other core: a process of its own parses a long append's lines.

Judging a line (the compiled fast path, the Python normalisation of identities, dates and
phones: consumers/jsonl_ingest.py) and writing what the fact says as the digest's bytes
(:func:`ledger.fact_digest.content_bytes`) cost about 30 microseconds a fact, on the core that
also runs the writer and SQLite, while a second core idles. A long append hands its lines to
one parse process instead: the main process reads them, sends them in chunks, and gets back, in
order, each line's fact with its content bytes, or the reason it was refused. Sending a fact
back costs a third of judging it, so the writer's process does about a fifth less per fact, and
the parse process works on the next lines while the writer writes.

The process is a fresh interpreter (``python -m consumers.parse_pool``), not a fork: the main
process has threads (SQLite's checkpointer, a Kafka client) that a fork would copy in the
middle of what they hold, and no main module is imported again (a script that does its work at
import would run twice). It inherits two pipes and nothing else. It is sent the parser itself,
which pickles as the settings it was built from (:class:`consumers.jsonl_ingest.ConfiguredParser`),
so it judges by the ledger's configured bounds.

It ends with its parent: a parent that is gone closes the pipes, and the process reads the end
of its input (or fails to write its answer) and exits. A parse process that dies makes the
append stop with :class:`ParseStageFailed`: what was recorded stays recorded, and the same input
appended again records the rest (the rest come back as duplicates).
"""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from queue import SimpleQueue
from typing import Any

from domain.errors import InvalidFact
from ledger.fact_digest import content_bytes

Fact = dict[str, Any]
#: What the parse process gives back per line it was sent, in order: the fact, or None when
#: it was refused; and the fact's content bytes (None: they could not be written, the writer
#: works them out and says why), or the refusal's reason.
Verdicts = tuple[list[Fact | None], list[bytes | str | None]]

#: Lines per message: large enough that a message's own cost is nothing beside judging it,
#: small enough that the first answers come back soon and that the lines in flight stay few.
CHUNK_LINES = 2_000
#: Lines from which an append whose caller did not choose judges them in a parse process:
#: starting one takes about a quarter of a second (on the other core; the main process judges
#: the first lines itself meanwhile), which a few thousand lines win back.
FROM_LINES = 2_000
#: The first message of a parse process: it has built its parser and reads lines.
READY = "ready"


class ParseStageFailed(Exception):
    """The parse process of an append ended before the input did (killed, out of memory): the
    append stops; the batches recorded before it are kept."""


def wanted(lines_ahead: int, batch_size: int) -> bool:
    """Whether an append that has ``lines_ahead`` lines read ahead (and more to come when that
    is more than one batch) is worth a parse process: a second core, and more than one batch
    (and than :data:`FROM_LINES`) of input. A short input is judged faster than a process
    starts, and its batches would not overlap with anything."""
    return cores() > 1 and bool(sys.executable) and lines_ahead > max(batch_size, FROM_LINES)


def cores() -> int:
    """The cores this process may run on (a container pinned to one core sees the host's count
    in ``os.cpu_count()``)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def in_flight(batch_size: int) -> int:
    """Chunks sent and not yet answered: a batch's worth and one more, so that the parse
    process judges the whole next batch while the writer records one, and at most 16 (the
    memory a very large batch would otherwise hold twice)."""
    return max(2, min(16, -(-batch_size // CHUNK_LINES) + 1))


class ParseProcess:
    """One parse process; :meth:`send` a chunk of lines, :meth:`receive` the verdicts of the
    oldest chunk not yet received. The caller bounds the chunks in flight."""

    def __init__(self, parse: Callable[[bytes | str], Fact]) -> None:
        root = str(Path(__file__).resolve().parent.parent)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [root, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))])}
        requests_in, requests_out = os.pipe()
        replies_in, replies_out = os.pipe()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "consumers.parse_pool", str(requests_in), str(replies_out)],
                pass_fds=(requests_in, replies_out), stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, env=env, cwd=root)
        except BaseException:
            for end in (requests_out, replies_in):
                os.close(end)
            raise
        finally:
            os.close(requests_in)
            os.close(replies_out)
        self._requests = Connection(requests_out, readable=False)
        self._replies = Connection(replies_in, writable=False)
        self._ready = False
        self._send(parse)

    def ready(self) -> bool:
        """True once the process has built its parser (never waits)."""
        if not self._ready and self._replies.poll(0):
            self._expect_ready()
        return self._ready

    def send(self, lines: Sequence[bytes | str]) -> None:
        self._send(list(lines))

    def receive(self) -> Verdicts:
        if not self._ready:
            self._expect_ready()
        reply = self._receive()
        if isinstance(reply, str):  # the process could not judge the chunk, and stopped
            raise ParseStageFailed(f"the parse process (pid {self.process.pid}) failed: {reply}")
        verdicts: Verdicts = reply
        return verdicts

    def close(self) -> None:
        """Close the pipes (the process reads their end and exits) and wait for it."""
        self._requests.close()
        self._replies.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def _expect_ready(self) -> None:
        if self._receive() != READY:
            raise ParseStageFailed(f"the parse process (pid {self.process.pid}) did not start")
        self._ready = True

    def _send(self, message: object) -> None:
        try:
            self._requests.send(message)
        except OSError:  # a broken pipe: the process is gone
            raise self._gone() from None

    def _receive(self) -> Any:
        try:
            return self._replies.recv()
        except (EOFError, OSError):
            raise self._gone() from None

    def _gone(self) -> ParseStageFailed:
        try:
            code = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            how = "stopped answering"
        else:
            if code < 0:
                try:
                    how = f"was killed by {signal.Signals(-code).name}"
                except ValueError:
                    how = f"was killed by signal {-code}"
            else:
                how = f"exited with status {code}"
        return ParseStageFailed(f"the parse process (pid {self.process.pid}) {how} before every line "
                                "was judged")

    def __enter__(self) -> ParseProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ------------------------------------------------------------------------ in the parse process


def judge(parse: Callable[[bytes | str], Fact], lines: Sequence[bytes | str]) -> Verdicts:
    """Each line's fact and content bytes, or the reason it is refused; what ``ingest`` does
    for a line in its own process, up to the batch."""
    facts: list[Fact | None] = []
    extras: list[bytes | str | None] = []
    for raw in lines:
        try:
            fact = parse(raw)
        except InvalidFact as error:
            facts.append(None)
            extras.append(str(error))
            continue
        try:
            content: bytes | None = content_bytes(fact)
        except Exception:  # the writer works them out again, and says what is wrong there
            content = None
        facts.append(fact)
        extras.append(content)
    return facts, extras


def _serve(requests: Connection, replies: Connection) -> None:
    """Judge each chunk sent until the main process goes away.

    One thread reads the chunks and another writes the verdicts, so the main process never
    waits to send (its lines are taken as they come) and this one judges the next chunks while
    the main process, busy writing a batch, is not reading."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    try:
        parse = requests.recv()
    except (EOFError, OSError):
        return
    # Nothing here lives longer than a chunk, and facts hold no cycles: the collector would
    # only walk the young facts over and over.
    gc.freeze()
    gc.disable()
    inbox: SimpleQueue[list[bytes | str] | None] = SimpleQueue()
    outbox: SimpleQueue[object] = SimpleQueue()

    def read() -> None:
        while True:
            try:
                inbox.put(requests.recv())
            except (EOFError, OSError):  # the main process has closed the pipe, or is gone
                inbox.put(None)
                return

    def write() -> None:
        while (reply := outbox.get()) is not None:
            try:
                replies.send(reply)
            except OSError:  # the main process is gone
                os._exit(0)

    threading.Thread(target=read, name="journey-parse-read", daemon=True).start()
    writer = threading.Thread(target=write, name="journey-parse-write", daemon=True)
    writer.start()
    outbox.put(READY)
    while (lines := inbox.get()) is not None:
        try:
            outbox.put(judge(parse, lines))
        except Exception as error:  # a fault of this process, not of a line: say it and stop
            outbox.put(f"{type(error).__name__}: {str(error)[:200]}")
            break
    outbox.put(None)
    writer.join()


if __name__ == "__main__":  # a parse process: its functions are the module's, not __main__'s
    from consumers import parse_pool

    parse_pool._serve(Connection(int(sys.argv[1]), writable=False),
                      Connection(int(sys.argv[2]), readable=False))
