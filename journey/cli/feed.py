"""``journey feed``: publish every change of a customer view to the compacted topic
``journey.customer-views`` (see consumers/view_feed.py and docs/kafka.md).

It brings the embedded projections up to date first and publishes from the same process,
because only one process may hold projections.duckdb open for writing. ``--follow`` keeps
projecting and publishing until SIGTERM/SIGINT (the attempt in hand is confirmed and
committed, or left to be sent again on the next start). Progress on stderr, summary on stdout.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from consumers.view_feed import DEFAULT_CHUNK, POLL_INTERVAL, ViewFeedTopicError
from journey.bootstrap import Journey
from journey.cli.output import dump, log_to_stderr
from journey.faults import pause_at_batch
from journey.signals import stop_flag
from journey.usecases.feed import kafka_feed


def _fault_pause() -> Callable[[int], None] | None:
    """Crash tests: JOURNEY_FAULT_FEED_PAUSE_AFTER_FLUSH=N stalls after attempt N was confirmed
    by the broker and before the feed position is committed (the worst moment to die)."""
    pause = pause_at_batch("JOURNEY_FAULT_FEED_PAUSE_AFTER_FLUSH", "feed paused after flush of attempt")
    return None if pause is None else (lambda attempt: pause())


def cmd_feed(args: argparse.Namespace, journey: Journey) -> int:
    if args.chunk < 1 or args.poll <= 0:
        print("journey feed: --chunk must be at least 1 and --poll positive", file=sys.stderr)
        return 2
    log_to_stderr("consumers.view_feed", "feed")
    stop = stop_flag()
    feed = kafka_feed(journey, bootstrap=args.bootstrap, topic=args.topic, chunk=args.chunk,
                      after_flush=_fault_pause())
    try:
        summary = feed.run(follow=args.follow, stop=stop, before_pass=journey.project,
                           poll_interval=args.poll)
    except ViewFeedTopicError as error:
        print(f"journey feed: {error}", file=sys.stderr)
        return 2
    finally:
        feed.close()
    if args.json:
        doc: dict[str, Any] = {
            "topic": summary.topic, "views": summary.views, "tombstones": summary.tombstones,
            "attempts": summary.attempts, "start_position": summary.start_position,
            "position": summary.position, "head": summary.head, "seconds": round(summary.seconds, 3),
            "failures": summary.failures, "unconfirmed": summary.unconfirmed, "stopped": summary.stopped}
        dump(doc)
    else:
        line = (f"published {summary.views} views and {summary.tombstones} tombstones to {summary.topic} "
                f"in {summary.seconds:.1f} s, now at position {summary.position}")
        if summary.failures:
            line += f"; {summary.failures} attempts sent again after broker errors"
        if summary.unconfirmed:
            line += f"; {summary.unconfirmed} changes unconfirmed at stop (sent again next start)"
        print(line)
    return 0


def register(subparsers: Any, commands: dict[str, Callable[[argparse.Namespace, Journey], int]]) -> None:
    p = subparsers.add_parser(
        "feed", help="publish every change of a customer view to a compacted Kafka topic")
    p.add_argument("--bootstrap",
                   help="Kafka bootstrap servers (env KAFKA_BOOTSTRAP, default 127.0.0.1:9092)")
    p.add_argument("--topic", help="topic (env JOURNEY_VIEWS_TOPIC, default journey.customer-views)")
    p.add_argument("--follow", action="store_true",
                   help="keep projecting and publishing until SIGTERM/SIGINT")
    p.add_argument("--poll", type=float, default=POLL_INTERVAL,
                   help="seconds between passes when nothing changed (with --follow)")
    p.add_argument("--chunk", type=int, default=DEFAULT_CHUNK,
                   help="views per flush and committed position (the redelivery window after a crash)")
    p.add_argument("--json", action="store_true")
    commands["feed"] = cmd_feed
