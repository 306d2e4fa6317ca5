"""``journey relay``: publish every recorded event to Kafka (journey/usecases/streams.py, consumers/relay.py).

Follows the store until SIGTERM/SIGINT (the batch in hand is finished, flushed and recorded);
``--once`` stops at the store's head. Progress goes to stderr, the summary to stdout.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from consumers.relay import DEFAULT_BATCH, READ_AHEAD_MIN
from journey.bootstrap import Journey
from journey.cli.kinds import Command
from journey.cli.output import dump, log_to_stderr
from journey.faults import pause_at_batch
from journey.signals import stop_flag
from journey.usecases import streams


def _fault_pause() -> Callable[[int], None] | None:
    """Crash tests: JOURNEY_FAULT_RELAY_PAUSE_AFTER_FLUSH=N stalls after batch N was flushed to
    the broker and before its position is recorded (the worst moment to die)."""
    pause = pause_at_batch("JOURNEY_FAULT_RELAY_PAUSE_AFTER_FLUSH", "relay paused after flush of batch")
    return None if pause is None else (lambda batch: pause())


def cmd_relay(args: argparse.Namespace, journey: Journey) -> int:
    if args.batch < 1:
        print("journey relay: --batch must be at least 1", file=sys.stderr)
        return 2
    log_to_stderr("consumers.relay", "relay")
    stop = stop_flag()
    summary = streams.relay(journey, stop, bootstrap=args.bootstrap, topic=args.topic, batch=args.batch,
                            once=args.once, read_ahead=args.read_ahead, after_flush=_fault_pause())
    if args.json:
        doc: dict[str, Any] = {
            "topic": summary.topic, "published": summary.published, "batches": summary.batches,
            "start_position": summary.start_position, "position": summary.position,
            "head": summary.head, "seconds": round(summary.seconds, 3),
            "events_per_second": round(summary.rate), "send_failures": summary.send_failures,
            "unconfirmed": summary.unconfirmed, "stopped": summary.stopped}
        dump(doc)
    else:
        line = (f"published {summary.published} events to {summary.topic} in {summary.seconds:.1f} s "
                f"({summary.rate:,.0f}/s), now at position {summary.position}")
        if summary.send_failures:
            line += f"; {summary.send_failures} batch re-sends after producer errors"
        if summary.unconfirmed:
            line += f"; {summary.unconfirmed} events unconfirmed at stop (sent again next start)"
        print(line)
    return 0


def register(subparsers: Any, commands: dict[str, Command]) -> None:
    p = subparsers.add_parser(
        "relay", help="publish every recorded event to Kafka (at least once, per-customer order)")
    p.add_argument("--bootstrap",
                   help="Kafka bootstrap servers (env KAFKA_BOOTSTRAP, default 127.0.0.1:9092)")
    p.add_argument("--topic", help="topic (env JOURNEY_EVENTS_TOPIC, default journey.events)")
    p.add_argument("--batch", type=int, default=DEFAULT_BATCH,
                   help="events per flush and recorded position (the redelivery window after a crash)")
    p.add_argument("--once", action="store_true", help="stop at the store's head instead of following it")
    p.add_argument("--read-ahead", action=argparse.BooleanOptionalAction, default=None,
                   help="read the store and build the messages in a second process (default: when "
                        f"the backlog is {READ_AHEAD_MIN:,} events or more; a SQLite store only)")
    p.add_argument("--json", action="store_true")
    commands["relay"] = cmd_relay
