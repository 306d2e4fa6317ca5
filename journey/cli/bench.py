"""``journey bench``: every path of the ledger next to the raw limit underneath (docs/performance.md).

The product does not import its benchmark: the command checks its arguments and runs
``python -m benchmarks`` (benchmarks/__main__.py) in a process of its own, with the same
interpreter and the code this ``journey`` runs, passing on its output as it comes and its exit
code. The work happens in a scratch directory inside the data directory (removed afterwards);
the ledger in the data directory itself is never touched. ``--growth 10000,100000`` runs the
table once per size, each in its own process (so each peak RSS is that size's). Progress goes
to stderr, the table (or --json) to stdout.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from journey.bootstrap import Journey
from journey.cli.kinds import Command

#: The directory that holds the ``journey`` package and, beside it, ``benchmarks``.
ROOT = Path(__file__).resolve().parents[2]


def _sizes(text: str) -> list[int] | None:
    try:
        sizes = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError:
        return None
    return sizes if sizes and all(n >= 1 for n in sizes) else None


def cmd_bench(args: argparse.Namespace, journey: Journey) -> int:
    if args.events < 1:
        print("journey bench: --events must be at least 1", file=sys.stderr)
        return 2
    argv = ["--data-dir", str(journey.settings.data_dir)]
    if args.growth:
        sizes = _sizes(args.growth)
        if sizes is None:
            print("journey bench: --growth takes sizes like 10000,100000", file=sys.stderr)
            return 2
        argv += ["--growth", ",".join(map(str, sizes))]
        if args.plot:
            argv += ["--plot", args.plot]
    elif args.plot:
        print("journey bench: --plot goes with --growth", file=sys.stderr)
        return 2
    else:
        argv += ["--events", str(args.events)]
    if args.bootstrap:
        argv += ["--bootstrap", args.bootstrap]
    if args.no_kafka:
        argv.append("--no-kafka")
    if args.no_postgres:
        argv.append("--no-postgres")
    elif args.postgres:
        argv += ["--postgres", args.postgres]
    if args.pg_events is not None:
        if args.pg_events < 1:
            print("journey bench: --pg-events must be at least 1", file=sys.stderr)
            return 2
        argv += ["--pg-events", str(args.pg_events)]
    if args.json:
        argv.append("--json")
    return _run_benchmark(argv)


def _run_benchmark(argv: list[str]) -> int:
    """``python -m benchmarks ARGV`` with this interpreter and this code first on its path;
    its standard output is written here line by line (so a caller that captured ours has it),
    its standard error goes straight to ours."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env["PYTHONIOENCODING"] = "utf-8"  # what this side reads it as, whatever the locale
    with subprocess.Popen([sys.executable, "-m", "benchmarks", *argv], stdout=subprocess.PIPE,
                          env=env, text=True, encoding="utf-8") as child:
        assert child.stdout is not None
        for line in child.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
    return child.returncode


def register(subparsers: Any, commands: dict[str, Command]) -> None:
    p = subparsers.add_parser(
        "bench", help="time every path next to the raw limit of the part underneath")
    p.add_argument("--events", type=int, default=100_000, help="touchpoints in the workload")
    p.add_argument("--bootstrap", help="an existing Kafka broker (default: start a throwaway one)")
    p.add_argument("--no-kafka", action="store_true", help="skip the Kafka paths")
    p.add_argument("--postgres", metavar="URL",
                   help="an existing PostgreSQL server the bench may create and drop databases on "
                        "(default: start a throwaway one)")
    p.add_argument("--no-postgres", action="store_true", help="skip the PostgreSQL paths")
    p.add_argument("--pg-events", type=int, metavar="N",
                   help="facts in the PostgreSQL paths' workload (default: --events, at most 100,000)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--growth", metavar="SIZES",
                   help="run the table at each size (e.g. 10000,100000,1000000), one fresh process "
                        "and directory per size, and print events/s, latencies and peak RSS per size")
    p.add_argument("--plot", metavar="FILE.svg", help="with --growth: write an SVG plot of events/s per path")
    commands["bench"] = cmd_bench
