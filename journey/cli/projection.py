"""``journey project`` (bring the projections up to date, from the store or from Kafka) and
``journey status`` (positions, row counts, the quarantine)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

from consumers.log_follower import DEFAULT_BATCH
from journey.bootstrap import Journey
from journey.cli.output import Ticker, dump, project_progress
from journey.faults import pause_at_batch
from journey.usecases.status import status


def register(sub: Any, commands: dict[str, Callable[[argparse.Namespace, Journey], int]]) -> None:
    p = sub.add_parser("project", help="bring the projections up to date with the store")
    p.add_argument("--batch", type=int, default=None,
                   help=f"events per projection transaction (default: {DEFAULT_BATCH:,})")
    p.add_argument("--source", choices=("store", "kafka"), default="store",
                   help="store: follow the event store (embedded); kafka: consume journey.events "
                        "into one DuckDB file per partition (distributed)")
    p.add_argument("--bootstrap", help="Kafka bootstrap servers (env KAFKA_BOOTSTRAP)")
    p.add_argument("--topic", help="events topic (env JOURNEY_EVENTS_TOPIC)")
    p.add_argument("--group", default="journey-projections", help="consumer group")
    p.add_argument("--once", action="store_true", help="kafka: stop when caught up")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("status", help="positions and row counts")
    p.add_argument("--json", action="store_true")

    commands["project"] = cmd_project
    commands["status"] = cmd_status


def _fault_pause() -> Callable[[], None] | None:
    """Crash tests: JOURNEY_FAULT_PAUSE_BEFORE_COMMIT=N stalls batch N mid-transaction."""
    return pause_at_batch("JOURNEY_FAULT_PAUSE_BEFORE_COMMIT", "paused before commit of batch")


def cmd_project(args: argparse.Namespace, journey: Journey) -> int:
    if args.source == "kafka":
        return _project_from_kafka(args, journey)
    if args.batch is not None and args.batch < 1:
        print("journey project: --batch must be at least 1", file=sys.stderr)
        return 2
    started = time.monotonic()
    count = journey.project(on_progress=project_progress(Ticker("project")), batch=args.batch,
                            before_commit=_fault_pause())
    seconds = time.monotonic() - started
    position = journey.projections.position()
    if args.json:
        dump({"projected": count, "position": position, "seconds": round(seconds, 3)})
    else:
        print(f"projected {count} events, now at position {position} ({seconds:.1f} s)")
    return 0


def _project_from_kafka(args: argparse.Namespace, journey: Journey) -> int:
    from consumers.kafka_projector import ProjectorStats
    from journey.analytics.snapshots import analytics_dir, dataset_dir
    from journey.signals import stop_flag
    from journey.usecases.streams import project_from_kafka

    settings = journey.settings
    stop = stop_flag()
    ticker = Ticker("project")

    def show(stats: ProjectorStats) -> None:
        ticker(f"{stats.records:,} records, {stats.applied:,} applied ({stats.rate:,.0f}/s)")

    stats = project_from_kafka(journey, stop, bootstrap=args.bootstrap, topic=args.topic,
                               group=args.group, once=args.once, on_progress=show,
                               before_commit=_fault_pause())
    if args.json:
        dump({"records": stats.records, "applied": stats.applied, "stopped": stop.is_set()})
    else:
        print(f"consumed {stats.records} records, applied {stats.applied} events "
              f"into {settings.partitions_dir} (the analysts' dataset: "
              f"{dataset_dir(analytics_dir(settings))}, `journey sql --partitions`)")
    return 0


def cmd_status(args: argparse.Namespace, journey: Journey) -> int:
    doc = status(journey)
    if args.json:
        dump(doc)
        return 0
    for k, v in doc.items():
        if k not in ("quarantined", "quarantine_latest"):
            print(f"{k:<22} {v}")
    print(f"{'quarantined':<22} {doc['quarantined']}")
    for e in doc["quarantine_latest"]:  # the newest; `journey quarantine` lists them all
        print(f"  position {e['position']} ({e['reader']}): {e['reason']}")
    return 0
