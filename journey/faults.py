"""Fault injection for the crash tests: stall a worker at a chosen batch so a test can SIGKILL it
at the worst moment. Off unless the named environment variable is set to a batch number."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable


def pause_at_batch(variable: str, what: str) -> Callable[[], None] | None:
    """A callback that, on its N-th call (N from ``variable``), says so on stderr and stalls."""
    target = os.environ.get(variable)
    if not target:
        return None
    seen = 0

    def pause() -> None:
        nonlocal seen
        seen += 1
        if seen == int(target):
            print(f"fault: {what} {seen}", file=sys.stderr, flush=True)
            time.sleep(3600)
    return pause
