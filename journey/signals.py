"""Clean shutdown for long-running workers: SIGTERM and SIGINT set a flag the loops check."""

from __future__ import annotations

import signal
import threading
from types import FrameType


def stop_flag() -> threading.Event:
    """An event set by SIGTERM/SIGINT; workers finish their batch, flush, and return."""
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop
