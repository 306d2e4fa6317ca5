"""Riding out a broker outage in long-running consumers.

kafka-python raises from ``poll()`` when the group coordinator cannot be reached (for example
``KafkaConnectionError: 111 ECONNREFUSED`` while a broker restarts), and a DLQ flush raises
``KafkaTimeoutError`` when nothing acknowledges. A worker that died on those would need a
supervisor to bring it back for an event as ordinary as a broker restart, so the ingest and the
projector treat them as *waiting*: log, back off, resume from the positions in their own stores.
Every other error still stops the worker, because it says something is wrong with the data or
the store, and retrying would hide it.
"""

from __future__ import annotations

import logging
import threading

from kafka.errors import KafkaError

#: First and longest pause between attempts while the broker is away.
FIRST_PAUSE_S = 0.5
LONGEST_PAUSE_S = 5.0


def is_transient(error: BaseException) -> bool:
    """A broker-side condition that goes away by itself (the client marks those retriable)."""
    if isinstance(error, ConnectionError):
        return True
    return isinstance(error, KafkaError) and bool(getattr(error, "retriable", False))


class Outage:
    """Backoff and logging for one worker: one warning when the outage starts, one when it ends."""

    def __init__(self, log: logging.Logger, what: str) -> None:
        self.log = log
        self.what = what
        self.pause = FIRST_PAUSE_S
        self.failures = 0
        #: Outages ridden out, and failed attempts, since the worker started.
        self.outages = 0
        self.failed_attempts = 0

    def failed(self, error: BaseException, stop: threading.Event | None = None) -> None:
        """Record one failed attempt and wait before the next (returns early when stopping)."""
        if self.failures == 0:
            self.outages += 1
            self.log.warning("%s: broker unreachable (%s: %s); retrying until it is back",
                             self.what, type(error).__name__, error)
        elif self.failures % 10 == 0:
            self.log.warning("%s: broker still unreachable after %d attempts (%s)",
                             self.what, self.failures, type(error).__name__)
        self.failures += 1
        self.failed_attempts += 1
        if stop is not None:
            stop.wait(self.pause)
        else:
            threading.Event().wait(self.pause)
        self.pause = min(self.pause * 2, LONGEST_PAUSE_S)

    def succeeded(self) -> None:
        if self.failures:
            self.log.warning("%s: broker back after %d failed attempts", self.what, self.failures)
        self.failures = 0
        self.pause = FIRST_PAUSE_S
