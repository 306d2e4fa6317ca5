"""``python -m benchmarks.profiling --events 100000``: where append and the projection spend their time.

Writes the bench workload (``benchmarks.rows.workload``) as JSON Lines, then runs under cProfile
(1) the append (``ingest`` into a fresh SQLite store, 2,000 per transaction, what
``journey append`` does) and (2) the embedded projection of that ledger (``Journey.project``,
what ``journey project`` does), and prints the top functions of each by cumulative time.
``--out DIR`` keeps the ``.prof`` files (for snakeviz or pstats).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import tempfile
from contextlib import ExitStack
from pathlib import Path

from benchmarks.bench import SQLITE_BATCH, _journey
from benchmarks.rows import workload
from consumers.jsonl_ingest import IngestSummary, ingest
from journey import demo_data
from journey.bootstrap import Journey


def _top(profile: cProfile.Profile, limit: int) -> str:
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.strip_dirs().sort_stats("cumulative").print_stats(limit)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profiling", description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--out", type=Path, help="keep append.prof and project.prof here")
    args = parser.parse_args(argv)
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="profile-")))
        source = work / "workload.jsonl"
        demo_data.write_jsonl(source, workload(args.events))
        journey = _journey(work / "ledger")
        stack.callback(journey.close)
        for name, step in (("append", lambda: _append(journey, source)), ("project", journey.project)):
            profile = cProfile.Profile()
            profile.runcall(step)
            if args.out:
                args.out.mkdir(parents=True, exist_ok=True)
                profile.dump_stats(str(args.out / f"{name}.prof"))
            print(f"==== {name} ({args.events:,} events)")
            print(_top(profile, args.top))
    return 0


def _append(journey: Journey, source: Path) -> IngestSummary:
    with open(source, "rb") as lines:
        return ingest(journey.ledger, lines, batch_size=SQLITE_BATCH)


if __name__ == "__main__":
    raise SystemExit(main())
