"""``journey append FILE``: record the facts of a JSON Lines file (or standard input).

Exit codes: 0 every line recorded (or a duplicate); 1 some lines rejected (the reasons are in
the rejects file and the first ten on stderr); 2 no such file.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from journey.bootstrap import Journey
from journey.cli.output import Ticker, dump, ingest_progress, project_progress
from journey.cli.textview import printable
from journey.usecases import recording
from journey.usecases.recording import AfterRecording, Recorded


def register(sub: Any, commands: dict[str, Callable[[argparse.Namespace, Journey], int]]) -> None:
    p = sub.add_parser("append", help="record facts from a JSON Lines file (or - for stdin)")
    p.add_argument("file")
    p.add_argument("--rejects", help="where to write rejected lines (default: DATA_DIR/rejects/...)")
    p.add_argument("--batch", type=int, default=recording.BATCH, help="facts per store transaction")
    p.add_argument("--no-project", action="store_true", help="only record; project later")
    p.add_argument("--json", action="store_true")
    commands["append"] = cmd_append


def cmd_append(args: argparse.Namespace, journey: Journey) -> int:
    if args.file != "-" and not Path(args.file).is_file():
        print(f"journey append: no such file: {args.file}", file=sys.stderr)
        return 2
    done = recording.record_file(journey, args.file, Path(args.rejects) if args.rejects else None,
                                 batch=args.batch, on_progress=ingest_progress(Ticker("append")))
    after = AfterRecording(False, None)
    try:
        if not args.no_project:
            # A running server follows the store and holds the projections: it projects these.
            after = recording.after_recording(journey, project_progress(Ticker("project")))
            if after.busy is not None:
                print(f"{after.busy}\njourney append: the facts are recorded but not projected yet; "
                      "the next command that reads the projections catches up", file=sys.stderr)
    finally:  # what was recorded is always said, whatever happened to the projecting
        _summary(args, done, after)
    return 1 if done.summary.rejected else 0


def _summary(args: argparse.Namespace, done: Recorded, after: AfterRecording) -> None:
    summary, path, server = done.summary, done.rejects_file, after.server
    if args.json:
        dump({"recorded": summary.recorded, "duplicates": summary.duplicates,
              "rejected": len(summary.rejected), "derived": summary.derived,
              "rejects_file": str(path) if path else None, "lines": summary.lines,
              "seconds": round(summary.seconds, 3), "lines_per_second": round(summary.rate),
              "projected": after.projected, "projected_by": server.url if server else None})
        return
    line = (f"recorded {summary.recorded}, duplicates {summary.duplicates}, "
            f"rejected {len(summary.rejected)}")
    if path is not None:
        line += f" -> {path}"
    if server is not None:
        line += f"; {server.describe()} projects them"
    print(line, flush=True)
    for r in summary.rejected[:10]:
        print(f"  line {r.line}: {printable(r.reason)}", file=sys.stderr)
    if len(summary.rejected) > 10:
        print(f"  ... {len(summary.rejected) - 10} more in {path}", file=sys.stderr)
