"""The relay's read-ahead: a child process that reads the store and builds the messages.

Why a process: the relay's rate is bounded by kafka-python, whose ``send()`` and sender thread
are Python and need the GIL. Everything else the relay did in the same interpreter (reading
the batch from SQLite, finding each state's key and headers, splicing the value: ~8 µs per
event, next to ~35 µs of kafka-python's own) took the GIL from the producer; at 1M events
the relay ran at 0.74-0.85 of a raw produce loop (docs/performance.md, "The relay"). The
child does that work on the other core and hands the relay finished messages; unpickling
them costs the relay ~0.5 µs per event.

What it does not change: the relay alone records its position, after the broker acknowledged
the batch. The child only reads (its own ``sqlite3`` connection; SQLite in WAL mode lets it
read beside the writer) and is always at most one batch ahead: a pipe holds 64 KB, so
the child waits in ``send`` until the relay takes the batch. If the child dies or says
something unexpected, the relay stops using it and reads the store itself from its own
position: the worst case is a slower batch, never a skipped or doubled one. If the relay dies,
the child's next ``send`` fails on the closed pipe and it exits.

The child stops by itself after a batch shorter than ``batch`` (it caught up with the store):
a relay following the store reads its few new events itself, with no process idling beside it.
"""

from __future__ import annotations

import logging
import multiprocessing
import pickle
import sqlite3
from multiprocessing.connection import Connection
from typing import Any

from consumers.wire import Message, encode_stored
from ledger.sqlite_recorder import Row, rows_after

log = logging.getLogger(__name__)

#: Seconds the relay waits for a batch before it gives up on the child (the child's read of
#: one batch takes milliseconds; this only catches a child that hangs).
TAKE_TIMEOUT = 60.0

#: One event of a batch as the child sends it: its message, or the stored row itself when its
#: bytes alone cannot make the message (the relay then decodes it with the application).
Item = tuple[int, Message | Row]


def stored_message(row: Row) -> Message | None:
    """The message of a plain SQLite store's row, from its stored bytes (None: decode it)."""
    position, hex_id, version, _topic, state = row
    stream = f"{hex_id[:8]}-{hex_id[8:12]}-{hex_id[12:16]}-{hex_id[16:20]}-{hex_id[20:]}"
    return encode_stored(position, stream, version, state)


def items_of(rows: list[Row]) -> list[Item]:
    return [(row[0], stored_message(row) or row) for row in rows]


def _serve(db_path: str, table: str, after: int, stop_at: int | None, batch: int, out: Connection) -> None:
    """The child: send ``(after, items)`` batch after batch, then ``None`` when done."""
    db = sqlite3.connect(db_path)
    try:
        db.execute("PRAGMA query_only = 1")
        cursor = db.cursor()
        while True:
            rows = rows_after(cursor, table, after, batch, stop_at)
            if rows:
                out.send_bytes(pickle.dumps((after, items_of(rows)), protocol=pickle.HIGHEST_PROTOCOL))
                after = rows[-1][0]
            if len(rows) < batch:
                out.send_bytes(pickle.dumps(None))
                return
    except (BrokenPipeError, ConnectionResetError):
        return  # the relay is gone
    finally:
        db.close()
        out.close()


class ReadAhead:
    """The relay's side of the child: :meth:`take` the next batch after the relay's position."""

    def __init__(self, db_path: str, table: str, after: int, stop_at: int | None, batch: int) -> None:
        context = multiprocessing.get_context("spawn")  # a fork would copy the relay's producer
        self._conn, child_end = context.Pipe(duplex=False)
        self.process = context.Process(target=_serve, name="journey-relay-reader", daemon=True,
                                       args=(db_path, table, after, stop_at, batch, child_end))
        try:
            self.process.start()
        except BaseException:
            self._conn.close()
            raise
        finally:
            child_end.close()
        self.ended = False

    def take(self, position: int) -> list[Item] | None:
        """The batch that follows ``position``; None once the child is done, or has failed or
        gone out of step (the caller then reads the store itself from ``position``)."""
        if self.ended:
            return None
        try:
            if not self._conn.poll(TAKE_TIMEOUT):
                log.warning("the read-ahead process sent nothing for %.0f s; reading the store "
                            "in the relay", TAKE_TIMEOUT)
                self.close()
                return None
            sent: tuple[int, list[Item]] | None = pickle.loads(self._conn.recv_bytes())
        except (EOFError, OSError) as error:
            log.warning("the read-ahead process is gone (%r, exit code %s); reading the store in "
                        "the relay from position %d", error, self.process.exitcode, position)
            self.close()
            return None
        if sent is None:
            self.close()
            return None
        after, items = sent
        if after != position:
            log.error("the read-ahead process sent the batch after position %d, the relay is at %d; "
                      "reading the store in the relay", after, position)
            self.close()
            return None
        return items

    def close(self) -> None:
        self.ended = True
        self._conn.close()
        if self.process.is_alive():
            self.process.terminate()
        self.process.join(5.0)


def start(recorder: Any, after: int, stop_at: int | None, batch: int) -> ReadAhead | None:
    """A read-ahead process for a SQLite store held in a file; None for any other store."""
    pool = recorder.datastore.pool
    if pool.is_sqlite_memory_mode:
        return None
    return ReadAhead(pool.db_name, recorder.events_table_name, after, stop_at, batch)
