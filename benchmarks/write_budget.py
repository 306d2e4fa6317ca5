"""``python -m benchmarks.write_budget --events 100000``: the append's CPU per fact, step by step.

A profiler's shares say where the time goes but not whether a target is within reach: the
append's target is a rate, and a rate is a budget of CPU microseconds per fact on the cores
the machine has. This measures the steps of ``journey append`` on the bench workload, each
in CPU microseconds per fact (``time.process_time`` around the writer's own steps, in a fresh
SQLite store, 10,000 facts per transaction):

* the door: judging a line (``fact_parser``) and the bytes its digest is taken of
  (``fact_digest.content_bytes``): what the parse process does on the other core;
* the writer: the duplicate check, the bulk reads (``_prefetch``), resolution and the streams'
  rules, sealing and encoding the events, the recorder (SQL inserts of every row, the hash
  chain, COMMIT), and the rest of a batch's bookkeeping.

It then prints the ceilings these figures allow: one process doing everything, and the
writer's process alone (the door on the other core). The wrappers cost a little themselves
(two clock reads per step call); the totals are the process's own CPU time.
"""

from __future__ import annotations

import argparse
import collections
import functools
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from benchmarks.bench import SQLITE_BATCH, _journey
from benchmarks.rows import workload
from consumers.jsonl_ingest import fact_parser
from journey.runtime import tune_gc
from ledger import fact_digest, writer

#: The writer's steps: (class, method, label). Steps nest (the recorder runs inside sealing
#: and storing); the report subtracts the inner ones from the outer.
STEPS: list[tuple[type[Any], str, str]] = [
    (writer._BatchWriter, "_drop_duplicates", "duplicate check"),
    (writer._BatchWriter, "_prefetch", "bulk reads of the index"),
    (writer._BatchWriter, "_record", "resolution and the streams' rules"),
    (writer._BatchWriter, "_put", "sealing and encoding"),
]


def _wrap(spent: collections.defaultdict[str, float], owner: Any, name: str,
          label: str) -> Callable[[], None]:
    original = getattr(owner, name)

    @functools.wraps(original)
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.process_time()
        try:
            return original(*args, **kwargs)
        finally:
            spent[label] += time.process_time() - started

    setattr(owner, name, timed)
    return lambda: setattr(owner, name, original)


def measure(events: int, directory: Path) -> dict[str, float]:
    """CPU microseconds per fact of each step (and ``facts``: how many were appended)."""
    parse = fact_parser()
    lines = [orjson.dumps(fact) for fact in workload(events)]
    started = time.process_time()
    facts = [parse(line) for line in lines]
    judged = time.process_time() - started
    started = time.process_time()
    contents = [fact_digest.content_bytes(fact) for fact in facts]
    digested = time.process_time() - started
    spent: collections.defaultdict[str, float] = collections.defaultdict(float)
    journey = _journey(directory)
    undo = [_wrap(spent, owner, name, label) for owner, name, label in STEPS]
    undo.append(_wrap(spent, type(journey.app.recorder), "insert_events", "recorder"))
    try:
        started = time.process_time()
        for start in range(0, len(facts), SQLITE_BATCH):
            journey.ledger.append(list(enumerate(facts[start:start + SQLITE_BATCH], start=1 + start)),
                                  contents=contents[start:start + SQLITE_BATCH])
        total = time.process_time() - started
    finally:
        for restore in undo:
            restore()
        journey.close()
    n = len(facts)
    spent["sealing and encoding"] -= spent["recorder"]
    per = {label: seconds / n * 1e6 for label, seconds in spent.items()}
    per["the rest of a batch"] = (total - sum(spent.values())) / n * 1e6
    return {"facts": n, "judging a line": judged / n * 1e6, "content bytes": digested / n * 1e6,
            **per, "writer": total / n * 1e6}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.write_budget", description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    tune_gc()  # as journey append runs
    with tempfile.TemporaryDirectory(prefix="write-budget-") as work:
        figures = measure(args.events, Path(work) / "ledger")
    if args.json:
        print(orjson.dumps(figures, option=orjson.OPT_INDENT_2).decode())
        return 0
    door = figures["judging a line"] + figures["content bytes"]
    print(f"CPU per fact, {figures['facts']:,.0f} facts ({args.events:,} workload events):")
    for label, value in figures.items():
        if label not in ("facts", "writer"):
            print(f"  {label:36} {value:6.1f} µs")
    print(f"  {'the writer in all':36} {figures['writer']:6.1f} µs")
    print(f"one process for all of it: at most {1e6 / (door + figures['writer']):,.0f} facts/s; "
          f"the writer's process alone (the door on another core): {1e6 / figures['writer']:,.0f}/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
