"""The distributed pipeline end to end, next to the raw limits of Kafka, in one run.

    python -m benchmarks.pipeline --events 100000 [--bootstrap HOST:PORT] [--postgres URL] [--json]

Steps, each timed: raw kafka-python produce of the facts' bytes (the limit of any producer),
raw consume of them (the limit of any consumer), then the ledger's own path on the same
payloads: produce to journey.touchpoints, ingest (-> store), raw produce of the relay's own
messages (the relay's limit: the same bytes, headers and producer settings), relay (store ->
journey.events), projection from Kafka (-> one DuckDB file per partition). Without --bootstrap a throwaway
broker is started from the test harness (Kafka jars from Maven Central).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from benchmarks import workers
from journey import demo_data
from journey.bootstrap import Journey, bootstrap
from journey.config import Settings
from journey.runtime import tune_gc

PARTITIONS = 4
#: The producer settings the ledger's own producers use, so the raw limit is comparable.
PRODUCER = {"acks": "all", "linger_ms": 20, "batch_size": 256 * 1024, "compression_type": None}


@dataclass
class Step:
    name: str
    events: int
    seconds: float
    #: The worker process's own peak resident set, MiB (steps run by benchmarks/workers.py).
    peak_rss_mib: float | None = None
    #: The largest peak of the processes the worker started (decode workers, the relay's
    #: read-ahead process), MiB.
    helpers_peak_rss_mib: float | None = None

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


def timed(name: str, events: int, steps: list[Step], fn: Callable[[], Any]) -> Any:
    started = time.perf_counter()
    result = fn()
    steps.append(Step(name, events, time.perf_counter() - started))
    print(f"  {name:<34} {steps[-1].seconds:8.2f} s  {steps[-1].rate:10,.0f}/s", file=sys.stderr)
    return result


def timed_worker(name: str, events: int, steps: list[Step], fn: Callable[..., Any], *args: Any) -> Any:
    """A ledger worker in a process of its own (its seconds exclude the interpreter's start)."""
    measured = workers.in_worker(fn, *args)
    steps.append(Step(name, events, measured.seconds, measured.peak_rss_mib,
                      measured.helpers_peak_rss_mib))
    helpers = measured.helpers_peak_rss_mib
    print(f"  {name:<34} {measured.seconds:8.2f} s  {steps[-1].rate:10,.0f}/s  "
          f"peak {measured.peak_rss_mib:,.0f} MiB"
          + (f" (its child processes: {helpers:,.0f} MiB at most)" if helpers else ""), file=sys.stderr)
    return measured.result


def create_topics(bootstrap_servers: str, *topics: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers)
    try:
        admin.create_topics([NewTopic(t, PARTITIONS, 1) for t in topics])
    finally:
        admin.close()


def produce(bootstrap_servers: str, topic: str, payloads: list[tuple[bytes, bytes]]) -> int:
    producer = KafkaProducer(bootstrap_servers=bootstrap_servers, **PRODUCER)
    for key, value in payloads:
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()
    return len(payloads)


def consume_all(bootstrap_servers: str, topic: str, expected: int) -> int:
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap_servers, auto_offset_reset="earliest",
                             enable_auto_commit=False, group_id=None, max_poll_records=5000)
    seen = 0
    deadline = time.monotonic() + 300
    while seen < expected and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500, max_records=5000).values():
            seen += len(records)
    consumer.close()
    return seen


def touchpoint_key(fact: dict[str, Any]) -> bytes:
    """Channels key touchpoints by the person as they know them (one person, one partition)."""
    ref = fact["customer"]
    return str(ref.get("customer_id") or next(iter(ref.values()))).encode()


def run_pipeline(events: int, bootstrap_servers: str, workdir: Path, postgres_url: str | None = None,
                 seed: int = 3) -> dict[str, Any]:
    """Run every step once; returns the steps and the end-state counts for checking."""
    customers = max(1, events // 12)
    facts = list(demo_data.generate(customers, seed=seed))[:events]
    payloads = [(touchpoint_key(f), orjson.dumps(f)) for f in facts]
    run = uuid.uuid4().hex[:8]
    raw, touchpoints, events_topic = (f"bench-{run}-raw", f"bench-{run}-touchpoints",
                                      f"bench-{run}-events")
    raw_events = f"bench-{run}-raw-events"
    create_topics(bootstrap_servers, raw, touchpoints, events_topic, raw_events)
    steps: list[Step] = []
    n = len(payloads)
    print(f"pipeline: {n:,} touchpoints, {PARTITIONS} partitions, store "
          f"{'postgres' if postgres_url else 'sqlite'}", file=sys.stderr)
    timed("raw produce (limit)", n, steps, lambda: produce(bootstrap_servers, raw, payloads))
    consumed = timed("raw consume (limit)", n, steps, lambda: consume_all(bootstrap_servers, raw, n))
    assert consumed == n, f"raw consume saw {consumed} of {n}"
    timed("produce to touchpoints", n, steps, lambda: produce(bootstrap_servers, touchpoints, payloads))
    settings = Settings(data_dir=workdir, store="postgres" if postgres_url else "sqlite",
                        postgres_url=postgres_url, kafka_bootstrap=bootstrap_servers,
                        events_topic=events_topic, touchpoints_topic=touchpoints,
                        dlq_topic=f"bench-{run}-dlq", partitions=PARTITIONS)
    # Each ledger worker runs in a process of its own, as its command does (journey ingest,
    # journey relay, journey project --source kafka), so its peak memory is its own.
    journey: Journey = bootstrap(settings)
    try:
        stats = timed_worker("ingest (touchpoints -> store)", n, steps, workers.kafka_ingest,
                             settings, f"bench-{run}-ingest")
        head = journey.app.recorder.max_notification_id() or 0
        raw_relay = workers.in_worker(workers.raw_produce_relay_messages, settings, raw_events).result
        steps.append(Step("raw produce of the relay's messages (limit)", raw_relay["messages"],
                          raw_relay["seconds"]))
        print(f"  {steps[-1].name:<34} {steps[-1].seconds:8.2f} s  {steps[-1].rate:10,.0f}/s",
              file=sys.stderr)
        timed_worker("relay (store -> journey.events)", head, steps, workers.relay, settings)
        projected = timed_worker("projection (journey.events -> DuckDB)", head, steps,
                                 workers.kafka_project, settings, f"bench-{run}-projector")
        total = sum(s.seconds for s in steps if not s.name.endswith("(limit)"))
        steps.append(Step("end to end (produce..projection)", n, total))
        return {"touchpoints": n, "stored_events": head, "recorded": stats["recorded"],
                "dead_lettered": stats["dead_lettered"], "projected": projected["applied"],
                "topics": {"touchpoints": touchpoints, "events": events_topic},
                "settings": settings,
                "steps": [{"step": s.name, "events": s.events, "seconds": round(s.seconds, 3),
                           "per_second": round(s.rate), "peak_rss_mib": s.peak_rss_mib,
                           "helpers_peak_rss_mib": s.helpers_peak_rss_mib}
                          for s in steps]}
    finally:
        journey.close()


@contextmanager
def broker(bootstrap_servers: str | None) -> Iterator[str]:
    if bootstrap_servers:
        yield bootstrap_servers
        return
    from tests.harness.kafka import KafkaBroker  # the test harness: Maven-fetched jars

    with KafkaBroker() as owned:
        yield owned.bootstrap


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pipeline", description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--bootstrap", help="an existing broker; default: start a throwaway one")
    parser.add_argument("--postgres", help="a PostgreSQL URL for the event store (default SQLite)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    tune_gc()  # as the workers and the CLI do
    with broker(args.bootstrap) as servers, tempfile.TemporaryDirectory() as tmp:
        result = run_pipeline(args.events, servers, Path(tmp), args.postgres)
    result.pop("settings")
    if args.json:
        print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    else:
        print(f"{'step':<36} {'events':>9} {'seconds':>9} {'events/s':>10}")
        for s in result["steps"]:
            print(f"{s['step']:<36} {s['events']:>9,} {s['seconds']:>9.2f} {s['per_second']:>10,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
