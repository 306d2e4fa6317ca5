"""The cyclic garbage collector, paused while a batch is written.

A batch allocates some hundred thousand small containers (the facts' dicts, the event states,
the index changes) and keeps most of them until it commits. CPython's collector runs a young
collection every 700 net allocations and walks every surviving container each time, so over a
10,000-fact batch it walked the batch's objects again and again: a fifth of the append's time
(py-spy; the same append with the collector off ran 15-25 % faster). The write path creates no
reference cycles of its own, and what it allocates is freed by reference counting when the
batch ends; paused for the length of one batch, the collector's first run afterwards walks the
survivors once. Memory stays bounded by the batch.

Writers on several threads of one process (Kafka ingest workers) share the pause: the collector
runs again when the last of them ends its batch.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_holders = 0
#: Whether the collector was on when the first holder paused it (a caller that turned it off
#: for its own reasons keeps it off).
_resume = False


@contextmanager
def paused() -> Iterator[None]:
    global _holders, _resume
    with _lock:
        if _holders == 0:
            _resume = gc.isenabled()
            gc.disable()
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0 and _resume:
                gc.enable()
