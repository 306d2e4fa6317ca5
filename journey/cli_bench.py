"""``journey bench``: every path of the ledger next to the raw limit underneath (benchmarks/bench.py).

Works in a scratch directory inside the data directory (removed afterwards); the ledger in
the data directory itself is never touched. Progress goes to stderr, the table (or --json)
to stdout.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from journey.bootstrap import Journey


def cmd_bench(args: argparse.Namespace, journey: Journey) -> int:
    from benchmarks.bench import run, table

    if args.events < 1:
        print("journey bench: --events must be at least 1", file=sys.stderr)
        return 2
    # kafka-python reports every failed reconnect; the bench says once whether a broker was had.
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    data_dir = journey.settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-", dir=data_dir) as scratch:
        rows = run(args.events, kafka_bootstrap=args.bootstrap, with_kafka=not args.no_kafka,
                   workdir=Path(scratch))
    if args.json:
        doc = {"events": args.events, "rows": [r.to_json() for r in rows]}
        sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print(table(rows))
    return 0


def register(subparsers: Any, commands: dict[str, Callable[[argparse.Namespace, Journey], int]]) -> None:
    p = subparsers.add_parser(
        "bench", help="time every path next to the raw limit of the part underneath")
    p.add_argument("--events", type=int, default=100_000, help="touchpoints in the workload")
    p.add_argument("--bootstrap", help="an existing Kafka broker (default: start a throwaway one)")
    p.add_argument("--no-kafka", action="store_true", help="skip the Kafka paths")
    p.add_argument("--json", action="store_true")
    commands["bench"] = cmd_bench
