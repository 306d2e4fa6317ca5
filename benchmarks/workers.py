"""Each worker of the ledger timed in a fresh interpreter, so that its peak memory is its own.

Issue 8 asks for the peak memory of each worker at 1M events. ``ru_maxrss`` is a per-process
high-water mark: measured inside the bench process it would be the bench's (the workload, the
limit runs' rows, the pipeline's topic reads), not the worker's. So the append, the
projection, the rebuild and the three Kafka workers (ingest, relay, projector) each run in a
``spawn``-ed child: a new interpreter that imports only what the worker imports, opens the
store itself as its CLI command would, runs, and reports its own seconds and peak RSS. A
``fork``-ed child would inherit the bench's pages and count them.

The seconds are measured inside the child around the work alone: the interpreter's start-up
and imports are not part of a path's rate (a long-running worker pays them once).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import resource
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Measured:
    result: Any
    seconds: float
    #: The worker process's peak resident set, MiB (start-up and imports included).
    peak_rss_mib: float
    #: The largest peak of the processes it started (a catch-up's decode workers), MiB; None
    #: when it started none.
    helpers_peak_rss_mib: float | None = None


def peak_rss_mib() -> float:
    """This process's peak resident set, MiB.

    On Linux it is ``VmHWM`` of /proc/self/status, the high-water mark of this process's own
    memory map. ``ru_maxrss`` is no good for a spawned worker there: exec() folds the
    forking parent's high-water mark into it, so every worker reported the bench's size.
    Elsewhere ``ru_maxrss`` (bytes on macOS)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _vm_hwm_mib(pid: int | str) -> float | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


class _Helpers:
    """The peak resident sets of this process's children, sampled while it works: a catch-up's
    decode workers (projections/preparing.py) are processes of their own, each with its own
    peak, and exit before the work returns."""

    def __init__(self) -> None:
        import threading

        self.me = str(os.getpid())
        self.peaks: dict[str, float] = {}
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        while not self.done.wait(0.2):
            try:
                pids = [p for p in os.listdir("/proc") if p.isdigit()]
            except OSError:
                return
            for pid in pids:
                try:
                    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
                        parent = stat.read().rsplit(")", 1)[1].split()[1]
                except (OSError, IndexError):
                    continue
                if parent == self.me and (peak := _vm_hwm_mib(pid)) is not None:
                    self.peaks[pid] = max(peak, self.peaks.get(pid, 0.0))

    def stop(self) -> float | None:
        self.done.set()
        self.thread.join()
        return round(max(self.peaks.values()), 1) if self.peaks else None


def in_worker(fn: Callable[..., Any], *args: Any) -> Measured:
    """Run ``fn(*args)`` (a module-level function of this module) in a fresh interpreter."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        measured: Measured = pool.submit(_measure, fn, args).result()
    return measured


def _measure(fn: Callable[..., Any], args: tuple[Any, ...]) -> Measured:
    import logging

    from journey.runtime import tune_gc

    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    tune_gc()  # as the CLI entry point does
    helpers = _Helpers()
    started = time.perf_counter()
    result = fn(*args)
    seconds = time.perf_counter() - started
    return Measured(result, seconds, round(peak_rss_mib(), 1), helpers.stop())


# ------------------------------------------------------------------ the embedded workers


def _open(directory: Path, settings: Any = None) -> Any:
    """The ledger as a command opens it: ``settings`` when given (a PostgreSQL store), else the
    embedded SQLite store in ``directory``."""
    from journey.bootstrap import bootstrap
    from journey.config import Settings

    return bootstrap(settings if settings is not None else Settings(data_dir=directory))


def append(directory: Path, source: Path, batch: int, settings: Any = None) -> dict[str, Any]:
    """``journey append FILE``: the workload into the store (``settings``: another store than
    the SQLite file in ``directory``, e.g. PostgreSQL)."""
    from consumers.jsonl_ingest import ingest

    journey = _open(directory, settings)
    try:
        with open(source, "rb") as lines:
            summary = ingest(journey.ledger, lines, batch_size=batch)
    finally:
        journey.close()
    return {"lines": summary.lines, "recorded": summary.recorded,
            "rejected": len(summary.rejected), "duplicates": summary.duplicates}


def project(directory: Path) -> int:
    """``journey project``: the embedded projections up to the store's head."""
    journey = _open(directory)
    try:
        projected: int = journey.project()
    finally:
        journey.close()
    return projected


def rebuild(directory: Path, target: Path) -> dict[str, Any]:
    """``journey replay rebuild``: every projection from the store into a fresh directory."""
    from replay import rebuild as rebuilding

    journey = _open(directory)
    try:
        result = rebuilding.from_store(journey.app, target)
    finally:
        journey.close()
    return {"events": result.events, "position": result.position, "seconds": result.seconds}


# ------------------------------------------------------------------ the Kafka workers


def raw_produce_relay_messages(settings: Any, topic: str) -> dict[str, Any]:
    """The relay's limit: kafka-python sending the very messages the relay sends (the same
    keys, values, headers and timestamps, built by the relay's own code before the clock
    starts) with the relay's producer settings, as a plain ``send()`` loop and one flush."""
    from kafka import KafkaProducer

    from consumers.relay import PRODUCER_CONFIG, Relay
    from journey.bootstrap import bootstrap

    journey = bootstrap(settings)
    try:
        relay = Relay(app=journey.app, bootstrap=settings.kafka_bootstrap, topic=topic,
                      batch_size=1 << 62)
        messages = [item.message for item in relay._outgoing(relay._read(0, None))]
    finally:
        journey.close()
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, **PRODUCER_CONFIG)
    try:
        started = time.perf_counter()
        for key, value, headers, timestamp_ms in messages:
            producer.send(topic, key=key, value=value, headers=headers, timestamp_ms=timestamp_ms)
        producer.flush()
        seconds = time.perf_counter() - started
    finally:
        producer.close()
    return {"messages": len(messages), "seconds": seconds,
            "bytes": sum(len(m[1]) for m in messages)}


def kafka_ingest(settings: Any, group: str) -> dict[str, Any]:
    """``journey ingest``: journey.touchpoints into the store, until caught up."""
    from consumers.kafka_ingest import KafkaIngest
    from journey.bootstrap import bootstrap

    journey = bootstrap(settings)
    try:
        ingest = KafkaIngest(journey.ledger, bootstrap=settings.kafka_bootstrap,
                             topic=settings.touchpoints_topic, dlq_topic=settings.dlq_topic,
                             group=group, max_records=5000)
        stats = ingest.run(once=True)
    finally:
        journey.close()
    return {"recorded": stats.recorded, "dead_lettered": stats.dead_lettered}


def relay(settings: Any) -> dict[str, Any]:
    """``journey relay``: the store's log onto journey.events, until caught up."""
    from consumers.relay import Relay
    from journey.bootstrap import bootstrap

    journey = bootstrap(settings)
    try:
        summary = Relay(app=journey.app, bootstrap=settings.kafka_bootstrap,
                        topic=settings.events_topic, partitions=settings.partitions).run(follow=False)
    finally:
        journey.close()
    return {"published": summary.published}


def kafka_project(settings: Any, group: str) -> dict[str, Any]:
    """``journey project --source kafka --once``: journey.events into one DuckDB file per partition."""
    from consumers.kafka_projector import run_projector
    from journey.bootstrap import bootstrap

    journey = bootstrap(settings)
    try:
        stats = run_projector(journey.app, bootstrap=settings.kafka_bootstrap,
                              topic=settings.events_topic, directory=settings.partitions_dir,
                              group=group, once=True)
    finally:
        journey.close()
    return {"applied": stats.applied}


# ------------------------------------------------------------------ several ingest workers at once

#: The writer's warning when a batch met another writer's changes and is redone.
CONFLICT_TEXT = "met another writer's changes"
#: The writer's warning when a batch met them SPLIT_AFTER times in a row and is split in two.
SPLIT_TEXT = "met other writers' changes"


class WriterConflicts(logging.Handler):
    """Counts the writer's (ledger/writer.py, logger ``journey.writer``) conflict warnings:
    each is one batch redone because another writer changed what it read."""

    def __init__(self, examples: int = 3) -> None:
        super().__init__(logging.WARNING)
        self.conflicts = 0
        self.splits = 0
        #: What the first few conflicts met (the store's error: which constraint), distinct.
        self.examples: list[str] = []
        self.keep = examples

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if CONFLICT_TEXT in text:
            self.conflicts += 1
            args = record.args if isinstance(record.args, tuple) else ()
            met = " ".join(str(args[1]).split())[:200] if len(args) > 1 else text[:200]
            if len(self.examples) < self.keep and met not in self.examples:
                self.examples.append(met)
        elif SPLIT_TEXT in text:
            self.splits += 1


def ingest_member(settings: Any, topic: str, group: str, ready: Any, go: Any, results: Any) -> None:
    """One of N ``journey ingest`` processes of one consumer group (run as a spawned
    ``multiprocessing.Process``): open the store, say ``ready``, wait for ``go``, then the
    ingest use case until every partition of ``topic`` is recorded (``--once``), and put its
    counts, the writer's conflicts and its own peak memory on ``results``. A process that
    dies puts nothing: the bench counts it lost."""
    import logging as logs
    import threading

    from journey.bootstrap import bootstrap
    from journey.runtime import tune_gc
    from journey.usecases.streams import ingest

    logs.getLogger("kafka").setLevel(logs.CRITICAL)
    tune_gc()  # as the CLI entry point does
    counter = WriterConflicts()
    logs.getLogger("journey.writer").addHandler(counter)
    journey = bootstrap(settings)
    try:
        ready.put(os.getpid())
        go.wait()
        started = time.perf_counter()
        done = ingest(journey, threading.Event(), topic=topic, group=group, once=True)
        seconds = time.perf_counter() - started
    finally:
        journey.close()
    stats = done.stats
    results.put({"pid": os.getpid(), "recorded": stats.recorded, "duplicates": stats.duplicates,
                 "dead_lettered": stats.dead_lettered, "messages": stats.messages,
                 "batches": stats.batches, "conflicts": counter.conflicts, "splits": counter.splits,
                 "conflicts_met": counter.examples,
                 "seconds": seconds, "peak_rss_mib": round(peak_rss_mib(), 1)})
