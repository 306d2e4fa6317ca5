"""``journey export``, ``journey sql`` and ``journey plot``: analysts' commands (docs/analytics.md).

None of them needs ``projections.duckdb`` while another process holds it: ``sql`` and ``plot``
read the Parquet snapshot, and ``export`` asks the holder (``journey serve``) to publish one
when it cannot open the file itself.

Exit codes: 0 done; 1 export asked for but not done (timeout, or the exporter failed); 2 bad
usage, bad SQL or no snapshot yet; 3 the customer asked for is not known.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import duckdb

from journey.analytics import sandbox
from journey.analytics.snapshots import (
    INTERVAL_ENV,
    NOT_EXPORTED,
    Dataset,
    Export,
    ExportFailed,
    NoSnapshot,
    analytics_dir,
)
from journey.bootstrap import Journey
from journey.cli.kinds import Command
from journey.cli.output import dump
from journey.cli.tables import FORMATS, render
from journey.config import Settings
from journey.usecases import analytics


def no_snapshot(command: str, settings: Settings) -> int:
    """The answer of ``sql`` and ``plot`` when there is no analyst snapshot to read."""
    return _no_snapshot(command, analytics_dir(settings))


def _no_snapshot(command: str, directory: Path, partitioned: bool = False) -> int:
    if partitioned:
        print(f"journey {command}: no partition snapshot in {directory} yet: the Kafka projectors "
              f"(`journey project --source kafka`) export every {INTERVAL_ENV} seconds; "
              "`journey export --partitions` exports the partition files no projector holds",
              file=sys.stderr)
        return 2
    print(f"journey {command}: no analyst snapshot in {directory} yet: run `journey export` "
          f"(a running `journey serve` also exports every {INTERVAL_ENV} seconds)", file=sys.stderr)
    return 2


# --------------------------------------------------------------------------- export

def _report(done: Export, as_json: bool, via: str, waited: float = 0.0) -> None:
    if as_json:
        dump({**done.manifest(), "directory": str(done.directory), "via": via,
               "waited_seconds": round(waited, 3)})
        return
    total = sum(done.rows.values())
    how = "" if via == "direct" else f", by the process holding the projections (waited {waited:.1f} s)"
    print(f"exported {len(done.rows)} tables, {total:,} rows at position {done.position:,} "
          f"in {done.seconds:.2f} s{how} -> {done.directory}")
    width = max(map(len, done.rows), default=0)
    for table, count in done.rows.items():
        left_out = done.dropped.get(table) or []
        note = f"  (left out: {', '.join(left_out)})" if left_out else ""
        print(f"  {table:<{width}}  {count:>10,}{note}")
    print(f"  not exported: {', '.join(NOT_EXPORTED)}")


def _export_partitions(args: argparse.Namespace, journey: Journey) -> int:
    try:
        exported = analytics.export_partitions(journey)
    except analytics.NoPartitions as error:
        print(f"journey export: {error}", file=sys.stderr)
        return 2
    if args.json:
        dump({"directory": str(exported.directory), "held": exported.held,
              "partitions": {done.directory.name: {**done.manifest(), "directory": str(done.directory)}
                             for done in exported.done}})
        return 0
    for done in exported.done:
        print(f"exported {done.directory.name}: {len(done.rows)} tables, {sum(done.rows.values()):,} rows "
              f"at offset {done.position:,} in {done.seconds:.2f} s")
    for name in exported.held:
        print(f"{name}: held by a running projector, which exports it itself "
              f"(every {INTERVAL_ENV} seconds)")
    print(f"-> {exported.directory}")
    return 0


def cmd_export(args: argparse.Namespace, journey: Journey) -> int:
    if args.partitions:
        return _export_partitions(args, journey)
    try:
        done = analytics.export_here(journey)
    except analytics.Held:
        return _export_by_request(args, journey)
    _report(done, args.json, "direct")
    return 0


def _export_by_request(args: argparse.Namespace, journey: Journey) -> int:
    """Another process holds projections.duckdb: leave it a request and wait for its export."""
    directory = analytics.snapshot_dir(journey)
    asked = analytics.ask_for_export(journey)
    if args.no_wait:
        print(f"journey export: asked the process holding the projections to export "
              f"({directory / 'export.request'})", file=sys.stderr)
        return 0

    def waiting(waited: float) -> None:
        print(f"export: projections.duckdb is held by another process; waiting for it to export "
              f"({waited:.0f} s of {args.timeout:g} s)", file=sys.stderr, flush=True)

    try:
        exported = analytics.wait_for_export(journey, asked, args.timeout, on_wait=waiting)
    except ExportFailed as error:
        print(f"journey export: the process holding the projections failed to export: {error}",
              file=sys.stderr)
        return 1
    except analytics.ExportTimedOut:
        print(f"journey export: projections.duckdb is held by another process, and it did not "
              f"export within {args.timeout:g} s of the request ({directory / 'export.request'}); "
              "is it a `journey serve` (which exports on request), or a long `journey project`?",
              file=sys.stderr)
        return 1
    _report(exported.done, args.json, "request", exported.waited)
    return 0


# --------------------------------------------------------------------------- sql

def _read_query(args: argparse.Namespace) -> str:
    if args.file:
        return Path(args.file).read_text()
    if args.query == "-":
        return sys.stdin.read()
    return str(args.query)


def cmd_sql(args: argparse.Namespace, journey: Journey) -> int:
    fmt = "json" if args.json else args.format
    if args.query is None and not args.file:
        print('journey sql: give a query ("SELECT ..."), - for stdin, or --file F', file=sys.stderr)
        return 2
    try:
        query = _read_query(args)
    except OSError as error:
        print(f"journey sql: cannot read the query: {error}", file=sys.stderr)
        return 2
    partitioned = bool(args.partitions)
    try:
        answer = analytics.query(journey, query, partitioned)
    except NoSnapshot:
        return _no_snapshot("sql", analytics.snapshot_dir(journey, partitioned), partitioned)
    except sandbox.Refused as error:
        print(f"journey sql: {error}", file=sys.stderr)
        return 2
    except duckdb.Error as error:
        message = str(error).strip()
        hint = ""
        if isinstance(error, duckdb.CatalogException):
            hint = f"\n(the analyst views: {', '.join(analytics.analyst_views(journey, partitioned))})"
        elif isinstance(error, duckdb.PermissionException):
            hint = f"\n(the analyst sandbox runs {sandbox.ALLOWS})"
        print(f"journey sql: {message}{hint}", file=sys.stderr)
        return 2
    sys.stdout.write(render(answer.columns, answer.rows, fmt))
    if fmt == "table":
        print(_read_from(answer.snapshot), file=sys.stderr)
    return 0


def _read_from(snapshot: Export | Dataset) -> str:
    """What a table answer was read from, under the table."""
    if isinstance(snapshot, Dataset):
        ages = [time.time() - part.exported_at for part in snapshot.parts.values()]
        return (f"({len(ages)} partition snapshots, exported {min(ages):,.0f} to {max(ages):,.0f} s ago; "
                "`SELECT * FROM snapshot` for each one's offset)")
    age = time.time() - snapshot.exported_at
    return f"(snapshot at position {snapshot.position:,}, exported {age:,.0f} s ago)"


# --------------------------------------------------------------------------- plot

def _write_plot(out: str, svg: str) -> None:
    if out == "-":
        sys.stdout.write(svg)
    else:
        Path(out).write_text(svg)
        print(f"wrote {out}", file=sys.stderr)


def _check_out(out: str) -> bool:
    if out != "-" and not out.lower().endswith(".svg"):
        print(f"journey plot: --out {out}: only SVG is written (name it .svg, or - for stdout)",
              file=sys.stderr)
        return False
    return True


def cmd_plot(args: argparse.Namespace, journey: Journey) -> int:
    if not _check_out(args.out):
        return 2
    partitioned = bool(args.partitions)
    try:
        if args.what == "customer":
            svg = analytics.customer_plot(journey, args.ref, partitioned)
        else:
            svg = analytics.base_plot(journey, args.days, args.until, partitioned)
    except analytics.BadReference as error:
        print(f"journey plot: {error}", file=sys.stderr)
        return 2
    except analytics.Unknown:
        print(f"journey plot: nobody known as {args.ref!r}", file=sys.stderr)
        return 3
    except NoSnapshot:
        return _no_snapshot("plot", analytics.snapshot_dir(journey, partitioned), partitioned)
    except analytics.NotInSnapshot as missing:
        at = "" if missing.position is None else f" (position {missing.position:,})"
        newer = ("the projectors export a newer one every " + INTERVAL_ENV + " seconds" if partitioned
                 else "run `journey export` for a newer one")
        print(f"journey plot: {args.ref} ({missing.customer_id}) has no facts in the snapshot{at}; {newer}",
              file=sys.stderr)
        return 3
    except analytics.TooFewDays:
        print("journey plot: --days must be at least 1", file=sys.stderr)
        return 2
    _write_plot(args.out, svg)
    return 0


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


PARTITIONS_HELP = ("read the Kafka projectors' partitioned dataset (DATA_DIR/analytics/partitions, "
                   "every partition as one) instead of the embedded snapshot")
PARTITIONS_EXPORT_HELP = ("export the Kafka partition files (DATA_DIR/partitions) that no projector "
                          "holds into the partitioned dataset")


def register(sub: Any, commands: dict[str, Command]) -> None:
    p = sub.add_parser("export", help="publish the analyst snapshot (Parquet) now, "
                                      "also while journey serve holds the projections")
    p.add_argument("--timeout", type=float, default=120.0,
                   help="seconds to wait for a running journey serve to export (default 120)")
    p.add_argument("--no-wait", action="store_true",
                   help="when another process holds the projections: ask it, do not wait")
    p.add_argument("--partitions", action="store_true", help=PARTITIONS_EXPORT_HELP)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("sql", help="run SQL against the analyst snapshot (never the live file)")
    p.add_argument("query", nargs="?", help='"SELECT ...", or - to read it from stdin')
    p.add_argument("--file", help="read the query from this file")
    p.add_argument("--format", choices=FORMATS, default="table")
    p.add_argument("--json", action="store_true", help="the same as --format json")
    p.add_argument("--partitions", action="store_true", help=PARTITIONS_HELP)

    p = sub.add_parser("plot", help="pictures from the analyst snapshot (SVG)")
    what = p.add_subparsers(dest="what", required=True)
    c = what.add_parser("customer", help="one customer's journey as a timeline")
    c.add_argument("ref", help="+34..., @handle, e-mail, customer number or ledger id")
    c.add_argument("--out", required=True, help="F.svg, or - for stdout")
    c.add_argument("--partitions", action="store_true", help=PARTITIONS_HELP)
    b = what.add_parser("base", help="contacts per day per department, the whole base")
    b.add_argument("--out", required=True, help="F.svg, or - for stdout")
    b.add_argument("--days", type=int, default=90, help="days to show (default 90)")
    b.add_argument("--until", type=_day,
                   help="last day shown (default: the snapshot's last day with contacts)")
    b.add_argument("--partitions", action="store_true", help=PARTITIONS_HELP)

    commands["export"] = cmd_export
    commands["sql"] = cmd_sql
    commands["plot"] = cmd_plot


__all__ = ["cmd_export", "cmd_plot", "cmd_sql", "no_snapshot", "register"]
