"""``python -m benchmarks.schema_floor DATA_DIR --batch 2000 --cache-mib 64``: the append's raw
SQLite floor over an existing ledger's rows, with a chosen transaction size and page cache.

The bench's ``schema_limit`` row uses the append's own batch (2,000) and SQLite's default
cache. This asks what the store's schema would allow with other settings: every row of the
ledger in ``DATA_DIR`` (the events, ``journey_log``: one row per event with its fact index
entry and hash link, and the per-record tables: identities, customers, keys, chain heads) is
inserted into a fresh file with the same schema, ``--batch`` events per transaction
(docs/performance.md). The schema is read from the live store, so a ledger of the older
schema (``journey_facts`` and ``journey_chain``) is measured as the current one: opening it
moves its rows into ``journey_log`` first, as any open does; keep a copy to compare.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from benchmarks.bench import SQLITE_BATCH, _journey, schema_limit


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.schema_floor", description=__doc__)
    parser.add_argument("data_dir", type=Path, help="a ledger's data directory (its rows are read)")
    parser.add_argument("--batch", type=int, default=SQLITE_BATCH, help="events per transaction")
    parser.add_argument("--cache-mib", type=int, default=0, help="page cache (0: SQLite's default)")
    args = parser.parse_args(argv)
    if args.batch < 1 or args.cache_mib < 0:
        parser.error("--batch must be at least 1 and --cache-mib at least 0")
    if not (args.data_dir / "ledger.sqlite").exists():
        parser.error(f"no ledger.sqlite in {args.data_dir}")
    journey = _journey(args.data_dir)
    try:
        with tempfile.TemporaryDirectory(prefix="schema-floor-") as scratch:
            events, seconds = schema_limit(journey, Path(scratch) / "floor.sqlite", args.batch,
                                           args.cache_mib * 1024 or None)
    finally:
        journey.close()
    print(f"{events:,} events, {args.batch:,} per transaction, cache "
          f"{args.cache_mib or 'default'} MiB: {seconds:.1f} s, {events / seconds:,.0f} events/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
