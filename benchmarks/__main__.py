"""``python -m benchmarks``: the run behind ``journey bench`` (docs/performance.md).

The product does not import its benchmark: ``journey bench`` starts this in a process of its
own with the arguments it checked, and passes on its output and exit code. The scratch work
goes in a ``bench-*`` directory inside ``--data-dir`` (removed afterwards); the ledger there
is never touched. ``--growth 10000,100000`` runs the table once per size, each in its own
``python -m benchmarks.bench`` process (so each peak RSS is that size's). Progress goes to
stderr, the table (or --json) to stdout.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

import orjson

from benchmarks.bench import (
    document,
    growth,
    growth_table,
    postgres_arguments,
    postgres_options,
    run,
    svg_plot,
)
from benchmarks.rows import table
from journey.runtime import tune_gc


def _sizes(text: str) -> list[int]:
    return [int(part) for part in text.split(",")]


def main(argv: list[str] | None = None) -> int:
    tune_gc()
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True,
                        help="the scratch directory is made inside it and removed afterwards")
    parser.add_argument("--events", type=int, default=100_000, help="touchpoints in the workload")
    parser.add_argument("--bootstrap", help="an existing Kafka broker (default: start a throwaway one)")
    parser.add_argument("--no-kafka", action="store_true", help="skip the Kafka paths")
    postgres_options(parser)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--growth", type=_sizes, metavar="SIZES",
                        help="run the table at each size (e.g. 10000,100000), one fresh process each")
    parser.add_argument("--plot", type=Path, metavar="FILE.svg",
                        help="with --growth: write an SVG plot of events/s per path")
    args = parser.parse_args(argv)
    # kafka-python reports every failed reconnect; the bench says once whether a broker was had.
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    args.data_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-", dir=args.data_dir) as scratch:
        if args.growth:
            docs = growth(args.growth, Path(scratch), kafka_bootstrap=args.bootstrap,
                          with_kafka=not args.no_kafka, **postgres_arguments(args))
        else:
            rows = run(args.events, kafka_bootstrap=args.bootstrap, with_kafka=not args.no_kafka,
                       workdir=Path(scratch), **postgres_arguments(args))
    if args.growth:
        if args.plot:
            args.plot.write_text(svg_plot(docs), encoding="utf-8")
        if args.json:
            sys.stdout.write(orjson.dumps({"growth": docs}, option=orjson.OPT_INDENT_2).decode() + "\n")
        else:
            print(growth_table(docs))
            print("(each size ran in its own process: the peak RSS is that size's alone)")
    elif args.json:
        sys.stdout.write(orjson.dumps(document(args.events, rows), option=orjson.OPT_INDENT_2).decode()
                         + "\n")
    else:
        print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
