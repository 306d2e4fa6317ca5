"""``journey bench``: every path of the ledger next to the raw limit underneath (benchmarks/bench.py).

Works in a scratch directory inside the data directory (removed afterwards); the ledger in
the data directory itself is never touched. ``--growth 10000,100000`` runs the table once per
size, each in its own ``python -m benchmarks.bench`` process (so each peak RSS is that size's).
Progress goes to stderr, the table (or --json) to stdout.
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


def _sizes(text: str) -> list[int] | None:
    try:
        sizes = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError:
        return None
    return sizes if sizes and all(n >= 1 for n in sizes) else None


def cmd_growth(args: argparse.Namespace, journey: Journey) -> int:
    from benchmarks.bench import growth, growth_table, svg_plot

    sizes = _sizes(args.growth)
    if sizes is None:
        print("journey bench: --growth takes sizes like 10000,100000", file=sys.stderr)
        return 2
    data_dir = journey.settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-", dir=data_dir) as scratch:
        docs = growth(sizes, Path(scratch), kafka_bootstrap=args.bootstrap, with_kafka=not args.no_kafka)
    if args.plot:
        Path(args.plot).write_text(svg_plot(docs), encoding="utf-8")
    if args.json:
        sys.stdout.write(orjson.dumps({"growth": docs}, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print(growth_table(docs))
        print("(each size ran in its own process: the peak RSS is that size's alone)")
    return 0


def cmd_bench(args: argparse.Namespace, journey: Journey) -> int:
    from benchmarks.bench import document, run, table

    if args.events < 1:
        print("journey bench: --events must be at least 1", file=sys.stderr)
        return 2
    # kafka-python reports every failed reconnect; the bench says once whether a broker was had.
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    if args.growth:
        return cmd_growth(args, journey)
    if args.plot:
        print("journey bench: --plot goes with --growth", file=sys.stderr)
        return 2
    data_dir = journey.settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-", dir=data_dir) as scratch:
        rows = run(args.events, kafka_bootstrap=args.bootstrap, with_kafka=not args.no_kafka,
                   workdir=Path(scratch))
    if args.json:
        doc = document(args.events, rows)
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
    p.add_argument("--growth", metavar="SIZES",
                   help="run the table at each size (e.g. 10000,100000,1000000), one fresh process "
                        "and directory per size, and print events/s, latencies and peak RSS per size")
    p.add_argument("--plot", metavar="FILE.svg", help="with --growth: write an SVG plot of events/s per path")
    commands["bench"] = cmd_bench
