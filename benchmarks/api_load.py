"""Load on ``journey serve``: GET /api/customers/{ref} for the demo's references, over loopback.

    python -m benchmarks.api_load --url http://127.0.0.1:8000 --token T --seconds 30 --concurrency 8

Each of ``--concurrency`` workers keeps one HTTP/1.1 connection open and asks for one customer
after another (phones, e-mails, handles and customer numbers as the demo's facts name them, in
a shuffled order), so the figures are what a department's tools would see: latency measured by
the client (queueing in the server included), and requests per second. The references come
from ``DATA_DIR/demo.jsonl`` (``--data-dir``), else from the demo generator itself (same seed,
same people). Run it on the machine of the server: over a network it measures the network.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson

#: Reference kinds a fact's ``customer`` may carry, and how a person types them.
_KINDS = ("customer_id", "phone", "email", "twitter")


def refs_from_facts(facts: Iterable[dict[str, Any]]) -> list[str]:
    """Every distinct reference the facts name a customer by (sorted, for a stable sample)."""
    seen: set[str] = set()
    for fact in facts:
        ref = fact.get("customer")
        if not isinstance(ref, dict):
            continue
        for kind in _KINDS:
            value = ref.get(kind)
            if isinstance(value, str) and value:
                seen.add(value)
    return sorted(seen)


def demo_refs(data_dir: str | None, customers: int, seed: int) -> list[str]:
    if data_dir:
        path = Path(data_dir) / "demo.jsonl"
        facts = []
        with open(path, "rb") as handle:
            for line in handle:
                try:
                    value = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue  # the demo carries deliberately broken lines
                if isinstance(value, dict):
                    facts.append(value)
        return refs_from_facts(facts)
    from journey import demo_data

    return refs_from_facts(demo_data.generate(customers, seed=seed))


@dataclass
class Results:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _worker(url: str, token: str, refs: Sequence[str], deadline: float, offset: int,
            results: Results) -> None:
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    with httpx.Client(base_url=url, headers=headers, timeout=30.0) as client:
        i = offset
        while time.monotonic() < deadline:
            ref = refs[i % len(refs)]
            i += 1
            started = time.perf_counter()
            try:
                response = client.get(f"/api/customers/{quote(ref, safe='+@')}")
                response.read()
            except httpx.HTTPError as error:
                errors[type(error).__name__] += 1
                continue
            latencies.append(time.perf_counter() - started)
            statuses[response.status_code] += 1
    with results.lock:
        results.latencies.extend(latencies)
        results.statuses.update(statuses)
        results.errors.update(errors)


def _quantile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def run(url: str, token: str, refs: Sequence[str], seconds: float, concurrency: int,
        seed: int = 7) -> dict[str, Any]:
    order = list(refs)
    random.Random(seed).shuffle(order)
    results = Results()
    # One request first: the server opens its projections on the first read, which is not
    # what a running server's latency is about.
    httpx.get(f"{url}/api/customers/{quote(order[0], safe='+@')}",
              headers={"Authorization": f"Bearer {token}"}, timeout=120.0)
    started = time.monotonic()
    deadline = started + seconds
    step = max(1, len(order) // max(1, concurrency))
    threads = [threading.Thread(target=_worker, args=(url, token, order, deadline, n * step, results),
                                daemon=True) for n in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    ordered = sorted(results.latencies)
    done = len(ordered)
    return {
        "url": url, "endpoint": "GET /api/customers/{ref}", "seconds": round(elapsed, 2),
        "concurrency": concurrency, "refs": len(order), "requests": done,
        "requests_per_second": round(done / elapsed, 1) if elapsed else 0.0,
        "median_ms": round(statistics.median(ordered) * 1000, 2) if ordered else None,
        "p90_ms": round(_quantile(ordered, 0.90) * 1000, 2) if ordered else None,
        "p99_ms": round(_quantile(ordered, 0.99) * 1000, 2) if ordered else None,
        "max_ms": round(ordered[-1] * 1000, 2) if ordered else None,
        "statuses": {str(k): v for k, v in sorted(results.statuses.items())},
        "errors": dict(results.errors),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.api_load", description=__doc__.splitlines()[0]
                                     if __doc__ else None)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--token", required=True, help="an API token allowed to read customers")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--data-dir", help="read the references from DATA_DIR/demo.jsonl")
    parser.add_argument("--customers", type=int, default=3000,
                        help="without --data-dir: the demo's size (journey demo --customers)")
    parser.add_argument("--seed", type=int, default=7, help="the demo's seed (journey demo --seed)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    refs = demo_refs(args.data_dir, args.customers, args.seed)
    if not refs:
        print("api_load: no customer references found", file=sys.stderr)
        return 2
    try:
        report = run(args.url.rstrip("/"), args.token, refs, args.seconds, args.concurrency, args.seed)
    except httpx.HTTPError as error:
        print(f"api_load: {args.url}: {error}", file=sys.stderr)
        return 2
    if args.json:
        sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print(f"{report['endpoint']} over {report['refs']:,} demo references, "
              f"{report['concurrency']} connections, {report['seconds']} s: "
              f"{report['requests']:,} requests, {report['requests_per_second']:,} req/s; "
              f"median {report['median_ms']} ms, p90 {report['p90_ms']} ms, "
              f"p99 {report['p99_ms']} ms, max {report['max_ms']} ms; "
              f"statuses {report['statuses']}" + (f"; errors {report['errors']}" if report["errors"] else ""))
    ok = sum(v for k, v in report["statuses"].items() if k in ("200", "404"))
    return 0 if ok == report["requests"] and not report["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
