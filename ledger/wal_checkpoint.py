"""WAL checkpoints off the writer's path: copy committed pages into the database file while the
writer prepares (and writes) its next batch.

In a large store every appended fact dirties leaf pages of four B-trees on random keys. SQLite's
automatic checkpoint copies those pages into the database file inside the COMMIT of the batch
that filled the WAL, so the writer waited for it: at 1M events it was ~75% of commit time.
Here the writer connection checkpoints only past :data:`WRITER_LIMIT_PAGES` (a bound, should the
background fall behind), and after each commit a thread with its own connection runs a PASSIVE
checkpoint, which never blocks writers or readers. A checkpoint only copies committed pages, so
neither durability (synchronous, WAL) nor what a crash leaves behind changes.
"""

from __future__ import annotations

import sqlite3
import threading

#: The writer connection's own automatic checkpoint (pages), the fallback if the background
#: thread falls behind; SQLite's default is 1000.
WRITER_LIMIT_PAGES = 20000
#: WAL frames left after a background checkpoint beyond which the next batch waits for it and
#: checkpoints itself first: a writer that never pauses would otherwise keep the WAL growing
#: (SQLite restarts the WAL only when a write begins after everything was copied).
MAX_WAL_FRAMES = 40000


class BackgroundCheckpointer:
    """At most one PASSIVE checkpoint in flight per writer, each on a connection of its own."""

    def __init__(self, db_name: str, timeout: float) -> None:
        self.db_name = db_name
        self.timeout = timeout
        self._thread: threading.Thread | None = None
        self._frames_left = 0

    def start(self) -> None:
        """Checkpoint what has been committed so far, unless a checkpoint is still running."""
        if self._thread is not None and self._thread.is_alive():
            return
        # Connected here, not in the thread: the thread never opens (or creates) a file the
        # application has already let go of.
        conn = self._connect()
        # Not a daemon: an exiting interpreter waits for the copy to finish (it is crash-safe
        # either way) and closes the connection, so the last close can remove the WAL.
        self._thread = threading.Thread(target=self._run, args=(conn,), name="wal-checkpoint")
        self._thread.start()

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.db_name, uri=True, isolation_level=None,
                               check_same_thread=False, timeout=self.timeout)

    def _run(self, conn: sqlite3.Connection) -> None:
        try:
            row = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            # (busy, frames in the WAL, frames copied): what is still to copy.
            self._frames_left = int(row[1]) if row and row[1] >= 0 else 0
        except sqlite3.Error:
            pass  # the writer's own automatic checkpoint still bounds the WAL
        finally:
            conn.close()

    def before_write(self) -> None:
        """Bound the WAL: if it kept growing, wait for the running checkpoint and copy the rest
        now, so that this batch's write restarts the WAL from its start."""
        if self._frames_left <= MAX_WAL_FRAMES:
            return
        self.wait()
        self._run(self._connect())
        self._frames_left = 0

    def wait(self) -> None:
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
