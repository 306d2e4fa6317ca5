"""``python -m benchmarks.contact_policy``: decide() for one customer with a long history.

Builds a history of N facts (mostly calls, e-mails and SMS across departments and campaigns,
with consents, withdrawals, objections and contracts among them), indexes it once
(:class:`ContactHistory`) and times ``--calls`` decisions at instants spread over the history.
Prints the index build time and the decision median and p99.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from domain.contact_policy import ContactHistory, Exclusion, decide, identity_hash, public_holiday
from journey.policy import load_policy

CONTACTS = (("call.outbound", 6), ("email.sent", 2), ("sms.sent", 2), ("letter.sent", 1))
OTHER = ("consent.given", "consent.withdrawn", "objection.recorded", "contract.started",
         "contract.ended", "call.inbound", "store.visit", "case.note", "identity.linked")


def history(n: int, seed: int = 1) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    start = datetime(2016, 1, 4, tzinfo=UTC)
    facts: list[dict[str, Any]] = [{
        "type": "customer.registered", "event_id": "reg", "occurred_at": start.isoformat(),
        "department": "sales", "data": {"name": "x", "phone": "+34600000001",
                                        "email": "x@example.com", "timezone": "Europe/Madrid",
                                        "address": {"street": "Gran Vía", "number": "1",
                                                    "postal_code": "28013", "city": "Madrid"}}}]
    kinds = [k for k, w in CONTACTS for _ in range(w)]
    span = 10 * 365 * 24 * 3600
    for i in range(1, n):
        when = (start + timedelta(seconds=rng.randrange(span))).astimezone(
            datetime.fromisoformat("2026-01-01T00:00+01:00").tzinfo).isoformat()
        dept = rng.choice(("sales", "customer_care", "outsourced_callcenter", "billing"))
        if rng.random() < 0.9:
            kind = rng.choice(kinds)
            data: dict[str, Any] = {"purpose": rng.choice(("commercial", "commercial", "service")),
                                    "campaign": rng.choice(("fibra", "movil", "tv", "hogar")),
                                    "outcome": rng.choice(("no_answer", "not_interested", "answered",
                                                           "knows_offers", "hung_up"))}
        else:
            kind = rng.choice(OTHER)
            data = {"channel": rng.choice(("phone", "sms", "email", "any")),
                    "channels": rng.choice(("all", ["phone"], ["email", "sms"])),
                    "purpose": rng.choice(("commercial", "service")), "text": "t",
                    "contract_id": f"C{rng.randrange(5)}", "service": "s",
                    "kind": "phone", "value": f"+3460000{rng.randrange(10000):04d}"}
        facts.append({"type": kind, "event_id": f"e{i}", "occurred_at": when, "department": dept,
                      "position": i, "data": data})
    rng.shuffle(facts)
    return facts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--facts", type=int, default=10_000)
    parser.add_argument("--calls", type=int, default=1000)
    args = parser.parse_args()
    policy = load_policy()
    facts = history(args.facts)
    exclusions = [Exclusion(identity_hash("phone", "+34600000001"), datetime(2030, 1, 1).date(), "x")]
    started = time.perf_counter()
    index = ContactHistory(facts)
    build = time.perf_counter() - started
    rng = random.Random(2)
    start = datetime(2016, 1, 4, tzinfo=UTC)
    # The regional holiday calendars are built once per (community, year) in a process: build
    # the ten years asked about first, so the figures are those of a running server.
    for year in range(start.year, start.year + 11):
        public_holiday(datetime(year, 1, 1).date(), "MD")
        public_holiday(datetime(year, 1, 1).date())
    samples = []
    for _ in range(args.calls):
        at = start + timedelta(seconds=rng.randrange(10 * 365 * 24 * 3600))
        channel = rng.choice(("phone", "email", "sms"))
        purpose = rng.choice(("commercial", "service"))
        t0 = time.perf_counter()
        decide(index, channel=channel, purpose=purpose, at=at, campaign=rng.choice(("fibra", "tv")),
               policy=policy, exclusions=exclusions, position=10, head=10)
        samples.append(time.perf_counter() - t0)
    samples.sort()
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    started = time.perf_counter()
    decide(facts, channel="phone", purpose="commercial", at=start + timedelta(days=1800),
           policy=policy)
    unindexed = time.perf_counter() - started
    print(f"{args.facts:,} facts: index built once in {build * 1000:.1f} ms; "
          f"{args.calls:,} decisions: median {statistics.median(samples) * 1000:.3f} ms, "
          f"p99 {p99 * 1000:.3f} ms, max {samples[-1] * 1000:.3f} ms; "
          f"one decision from raw facts (index + decide): {unindexed * 1000:.1f} ms")


if __name__ == "__main__":
    main()
