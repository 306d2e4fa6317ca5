"""What a bench row is, how rows are printed, and the workload and broker every part shares.

benchmarks/bench.py runs the paths and benchmarks/postgres_rows.py the PostgreSQL ones; both
build these rows, so they live beneath both.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from journey import demo_data

SEED = 3
#: The ingest workers of one consumer group the PostgreSQL ingest rows run, one row each.
INGEST_WORKERS = (1, 2, 4)


def ingest_path(workers: int) -> str:
    return f"ingest (Kafka -> PostgreSQL), {workers} worker{'' if workers == 1 else 's'}"


PG_APPEND = "append (JSONL -> PostgreSQL)"
PG_RELAY = "relay (PostgreSQL -> Kafka)"
#: The PostgreSQL rows (benchmarks/postgres_rows.py): "skipped" without a server, and the relay
#: and ingest rows also without a broker.
PG_PATHS = (PG_APPEND, PG_RELAY, *(ingest_path(n) for n in INGEST_WORKERS))

@dataclass
class Row:
    path: str
    events: int = 0
    seconds: float | None = None
    limit_seconds: float | None = None
    #: How many items the limit moved (stored rows, events rows, records).
    limit_events: int = 0
    note: str = ""
    status: str = "ok"
    #: Latencies and the like, for --json and the growth table (e.g. median_ms, p99_ms).
    detail: dict[str, float] = field(default_factory=dict)
    #: A worker's own peak resident set, MiB, when the path ran in a process of its own
    #: (benchmarks/workers.py).
    peak_rss_mib: float | None = None
    #: Checked on the result: every input fact stored (or published) exactly once; None where
    #: the row does not check it.
    exactly_once: bool | None = None

    @property
    def rate(self) -> float | None:
        return self.events / self.seconds if self.seconds else None

    @property
    def limit_rate(self) -> float | None:
        return self.limit_events / self.limit_seconds if self.limit_seconds else None

    @property
    def ratio(self) -> float | None:
        rate, limit = self.rate, self.limit_rate
        return rate / limit if rate and limit else None

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc.update(events_per_second=_round(self.rate), limit_events_per_second=_round(self.limit_rate),
                   ratio=None if self.ratio is None else round(self.ratio, 3))
        for key in ("seconds", "limit_seconds"):
            if doc[key] is not None:
                doc[key] = round(doc[key], 4)
        return doc


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _say(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def workload(events: int, seed: int = SEED) -> list[dict[str, Any]]:
    """The same facts run_pipeline sends (same customers, seed and cut)."""
    return list(demo_data.generate(max(1, events // 12), seed=seed))[:events]



# ------------------------------------------------------------------------- Kafka


def _harness_importable() -> None:
    """pipeline.broker(None) starts its broker from tests/harness, which is not an installed
    package: the ``journey`` script cannot import it unless run from the checkout. When this
    is a checkout (an editable install), put its root on sys.path so the harness is found."""
    root = Path(__file__).resolve().parent.parent
    if (root / "tests" / "harness" / "kafka.py").is_file() and str(root) not in sys.path:
        sys.path.append(str(root))


def kafka_broker(stack: ExitStack, bootstrap_servers: str | None) -> tuple[str | None, str]:
    """The broker for every Kafka row (``bootstrap_servers``, or a throwaway one from the test
    harness, stopped when ``stack`` closes): (its bootstrap, "") or (None, why there is none)."""
    from benchmarks.pipeline import broker

    if bootstrap_servers is None:
        _harness_importable()
    try:
        servers = stack.enter_context(broker(bootstrap_servers))
    except Exception as error:  # no java, no jars, a broker that would not start
        text = str(error).strip()
        reason = text.splitlines()[0] if text else type(error).__name__
        _say(f"kafka paths skipped: {reason}")
        return None, reason
    _say(f"kafka paths through {servers}")
    return servers, ""



# ------------------------------------------------------------------------- output


def _num(value: float | None, fmt: str) -> str:
    width = int(fmt.split(",")[0].split(".")[0])
    return f"{'-':>{width}}" if value is None else format(value, fmt)


def table(rows: list[Row]) -> str:
    lines = [f"{'path':<40} {'events':>9} {'seconds':>9} {'events/s':>11} {'limit ev/s':>11} "
             f"{'ratio':>6} {'RSS MiB':>7}  note"]
    for r in rows:
        if r.status != "ok":
            lines.append(f"{r.path:<40} {r.status}" + (f" ({r.note})" if r.note else ""))
            continue
        lines.append(f"{r.path:<40} {r.events:>9,} {_num(r.seconds, '9.3f')} "
                     f"{_num(r.rate, '11,.0f')} {_num(r.limit_rate, '11,.0f')} "
                     f"{_num(r.ratio, '6.2f')} {_num(r.peak_rss_mib, '7,.0f')}  {r.note}")
    lines.append("RSS MiB: the peak resident set of the worker process that ran the path alone "
                 "(benchmarks/workers.py)")
    return "\n".join(lines)
