"""``journey route`` (touchpoints -> keyed by customer), ``journey ingest`` (Kafka -> ledger) and
``journey dlq list|replay``.

The loop and the dead-letter work are journey/usecases/streams.py's. Exit codes follow
``journey append``: 0 done; 1 done, but some messages went to the dead-letter topic (or some
corrected lines are still invalid); 2 bad usage.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from consumers.kafka_ingest import DEFAULT_GROUP, DEFAULT_MAX_RECORDS, IngestStats
from consumers.routing import DEFAULT_GROUP as ROUTE_GROUP
from consumers.routing import DEFAULT_MAX_RECORDS as ROUTE_MAX_RECORDS
from consumers.routing import RouteStats
from journey.bootstrap import Journey
from journey.cli.kinds import Command
from journey.cli.output import dump
from journey.cli.textview import printable
from journey.faults import pause_at_batch
from journey.signals import stop_flag
from journey.usecases import streams

S = TypeVar("S")


def register(subparsers: Any, commands: dict[str, Command]) -> None:
    p = subparsers.add_parser("ingest", help="record raw facts from the Kafka touchpoints topic")
    _kafka_args(p)
    which = p.add_mutually_exclusive_group()
    which.add_argument("--topic", help="touchpoints topic (env JOURNEY_TOUCHPOINTS_TOPIC)")
    which.add_argument("--routed", action="store_true",
                       help="read journey route's topic (env JOURNEY_ROUTED_TOPIC): each customer's "
                            "facts have one writer, so several ingest workers share the work")
    p.add_argument("--group", default=DEFAULT_GROUP, help=f"consumer group (default {DEFAULT_GROUP})")
    p.add_argument("--batch", type=int, default=DEFAULT_MAX_RECORDS, help="records per poll")
    p.add_argument("--once", action="store_true",
                   help="stop when caught up with the end offsets seen at start")
    p.add_argument("--json", action="store_true")
    commands["ingest"] = cmd_ingest

    p = subparsers.add_parser("route", help="key the touchpoints by the customer each will be written to, "
                                            "for several ingest workers")
    _kafka_args(p)
    p.add_argument("--topic", help="touchpoints topic to read (env JOURNEY_TOUCHPOINTS_TOPIC)")
    p.add_argument("--routed-topic", help="topic to write (env JOURNEY_ROUTED_TOPIC)")
    p.add_argument("--partitions", type=int,
                   help="partitions of the routed topic when it is created (env JOURNEY_ROUTED_PARTITIONS)")
    p.add_argument("--group", default=ROUTE_GROUP,
                   help=f"consumer group and transactional id (default {ROUTE_GROUP}): one router per group")
    p.add_argument("--batch", type=int, default=ROUTE_MAX_RECORDS, help="records per poll (one transaction)")
    p.add_argument("--once", action="store_true",
                   help="stop when caught up with the end offsets seen at start")
    p.add_argument("--json", action="store_true")
    commands["route"] = cmd_route

    p = subparsers.add_parser("dlq", help="the ingest dead-letter topic: list, replay")
    sub = p.add_subparsers(dest="dlq_command", required=True)
    q = sub.add_parser("list", help="every dead letter, from the beginning")
    _kafka_args(q)
    q.add_argument("--all", action="store_true", help="also the copies a crash may leave")
    q.add_argument("--json", action="store_true")
    q = sub.add_parser("replay", help="send dead letters (or corrected facts) to the touchpoints topic")
    _kafka_args(q)
    q.add_argument("--topic", help="touchpoints topic to produce to (default: the entry's source)")
    which = q.add_mutually_exclusive_group(required=True)
    which.add_argument("--offsets",
                       help="DLQ entries as they are: OFFSET or PARTITION:OFFSET, comma-separated")
    which.add_argument("--file", help="corrected facts, JSON Lines")
    q.add_argument("--json", action="store_true")
    commands["dlq"] = cmd_dlq


def _kafka_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bootstrap", help="Kafka bootstrap servers (env KAFKA_BOOTSTRAP)")
    p.add_argument("--dlq-topic", help="dead-letter topic (env JOURNEY_DLQ_TOPIC)")



def _fault_pause() -> Callable[[], None] | None:
    """Crash tests: JOURNEY_FAULT_PAUSE_INGEST_BATCH=N stalls batch N after its dead letters
    are flushed and before its store commit (the window a crash can duplicate)."""
    return pause_at_batch("JOURNEY_FAULT_PAUSE_INGEST_BATCH", "paused before commit of ingest batch")


def _throttled(line: Callable[[S], str], every: float = 1.0) -> Callable[[S], None]:
    """A progress callback that prints ``line(stats)`` on stderr at most once per ``every`` s."""
    last = time.monotonic()

    def show(stats: S) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= every:
            last = now
            print(line(stats), file=sys.stderr, flush=True)
    return show


def _ingest_line(s: IngestStats) -> str:
    return (f"ingest: {s.messages:,} messages, {s.recorded:,} recorded, {s.duplicates:,} duplicates, "
            f"{s.dead_lettered:,} dead-lettered ({s.rate:,.0f} messages/s)")


def _route_line(s: RouteStats) -> str:
    return (f"route: {s.messages:,} messages, {s.routed:,} routed, {s.dead_lettered:,} dead-lettered "
            f"({s.rate:,.0f} messages/s)")


def cmd_ingest(args: argparse.Namespace, journey: Journey) -> int:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("journey.ingest").setLevel(logging.INFO)
    stop = stop_flag()
    try:
        done = streams.ingest(journey, stop, bootstrap=args.bootstrap, topic=args.topic,
                              dlq_topic=args.dlq_topic, group=args.group, max_records=args.batch,
                              once=args.once, routed=args.routed, on_progress=_throttled(_ingest_line),
                              before_commit=_fault_pause())
    except streams.NoDeadLetterTopic as error:  # no broker, or a cluster that cannot hold it
        print(f"journey ingest: {error}", file=sys.stderr)
        return 2
    stats, topic, dlq_topic = done.stats, done.topic, done.dlq_topic
    if args.json:
        dump({"messages": stats.messages, "recorded": stats.recorded, "duplicates": stats.duplicates,
               "derived": stats.derived, "dead_lettered": stats.dead_lettered,
               "redelivered": stats.redelivered, "batches": stats.batches,
               "conflicts": stats.conflicts, "waits": stats.waits,
               "seconds": round(stats.seconds, 3), "messages_per_second": round(stats.rate),
               "topic": topic, "dlq_topic": dlq_topic})
    else:
        print(f"ingested {stats.messages} messages from {topic}: recorded {stats.recorded}, "
              f"duplicates {stats.duplicates}, dead-lettered {stats.dead_lettered} -> {dlq_topic} "
              f"({stats.seconds:.1f} s, {stats.rate:,.0f}/s)")
    return 1 if stats.dead_lettered else 0


def cmd_route(args: argparse.Namespace, journey: Journey) -> int:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("journey.route").setLevel(logging.INFO)
    for name in ("partitions", "batch"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            print(f"journey route: --{name} must be 1 or more", file=sys.stderr)
            return 2
    stop = stop_flag()
    try:
        done = streams.route(journey, stop, bootstrap=args.bootstrap, topic=args.topic,
                             routed_topic=args.routed_topic, partitions=args.partitions,
                             dlq_topic=args.dlq_topic, group=args.group, max_records=args.batch,
                             once=args.once, on_progress=_throttled(_route_line),
                             before_commit=pause_at_batch("JOURNEY_FAULT_PAUSE_ROUTE_BATCH",
                                                          "paused before commit of route batch"))
    except streams.NoDeadLetterTopic as error:
        print(f"journey route: {error}", file=sys.stderr)
        return 2
    s = done.stats
    if args.json:
        dump({"messages": s.messages, "routed": s.routed, "dead_lettered": s.dead_lettered,
              "waiting": s.waiting, "transactions": s.transactions, "rebuilt": s.rebuilt,
              "seconds": round(s.seconds, 3), "messages_per_second": round(s.rate),
              "topic": done.topic, "routed_topic": done.routed_topic, "partitions": done.partitions,
              "dlq_topic": done.dlq_topic})
    else:
        print(f"routed {s.routed} of {s.messages} messages from {done.topic} to {done.routed_topic} "
              f"({done.partitions} partitions; {s.waiting} wait for another partition), "
              f"dead-lettered {s.dead_lettered} -> {done.dlq_topic} ({s.seconds:.1f} s, {s.rate:,.0f}/s)")
    return 1 if s.dead_lettered else 0


def cmd_dlq(args: argparse.Namespace, journey: Journey) -> int:
    if args.dlq_command == "list":
        found = streams.dead_letters(journey, bootstrap=args.bootstrap, dlq_topic=args.dlq_topic,
                                     unique=not args.all)
        entries = found.entries
        if args.json:
            dump([e.as_json() for e in entries])
        else:
            for e in entries:
                print(printable(f"{e.partition}:{e.offset}  {e.source_topic}[{e.source_partition}]"
                                f"@{e.source_offset}  {e.reason}") + "\n    " + printable(e.text[:200]))
            print(f"{len(entries)} dead letters in {found.dlq_topic}")
        return 0
    if args.offsets:
        try:
            resent = streams.resend(journey, args.offsets.split(","), bootstrap=args.bootstrap,
                                    dlq_topic=args.dlq_topic, topic=args.topic)
        except ValueError as error:
            print(f"journey dlq replay: {error}", file=sys.stderr)
            return 2
        if args.json:
            dump({"sent": resent.sent, "entries": [f"{e.partition}:{e.offset}" for e in resent.entries]})
        else:
            print(f"re-submitted {resent.sent} dead letters")
        return 0
    path = Path(args.file)
    if not path.is_file():
        print(f"journey dlq replay: no such file: {args.file}", file=sys.stderr)
        return 2
    corrected = streams.resend_corrected(journey, path, bootstrap=args.bootstrap, topic=args.topic)
    result, topic = corrected.result, corrected.topic
    if args.json:
        dump({"sent": result.sent, "invalid": [{"line": n, "reason": r} for n, r in result.invalid]})
    else:
        print(f"re-submitted {result.sent} facts to {topic}, {len(result.invalid)} still invalid")
        for n, r in result.invalid:
            print(f"  line {n}: {printable(r)}", file=sys.stderr)
    return 1 if result.invalid else 0
