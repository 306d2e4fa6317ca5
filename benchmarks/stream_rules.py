"""``python -m benchmarks.stream_rules --events 100000``: the streams' rules on eventsourcing
aggregate objects vs as plain functions over the writer's per-stream state.

The write path checks two rules per stream (a person is registered once; a case is opened once,
for one customer) and writes the rows the ``Customer``/``Case`` aggregates would store. It can do
that two ways, both measured here on the bench workload (``benchmarks.rows.workload``):

- ``functions``: what ``ledger/writer.py`` does: the rules are plain functions
  (domain/registration.py, domain/case_rules.py) over the version, marker and owner it keeps
  per stream, and the row's state is built as a dict (ledger/streams.py);
- ``aggregates``: the same writer, but each stream is an aggregate object kept between batches
  (built by its ``start``, or rebuilt from the writer's stream state when this process did not
  write it), each fact goes through the aggregate's ``accept`` (rules, then a decorated event
  method that creates the domain event and applies it), and the row's state is the collected
  event's attributes. The aggregates are the ones the domain defined before their rules became
  functions (:class:`Customer`, :class:`Case` below, method for method).

Two measurements: ``micro`` runs only the per-fact stream step (the rule and the row's state
for the customer streams of the workload, no store), best of a few rounds; ``append`` runs the
whole append (``ingest`` into a fresh SQLite store, 2,000 facts per transaction, what ``journey
append`` does) once per way, each in a fresh spawned interpreter (benchmarks/workers.py), in
alternation for ``--rounds`` rounds, and prints facts/s and CPU seconds of each run. ``--calls``
also counts the Python function calls of one append each way: a measure that a busy machine
does not disturb.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, datetime_now_with_tzinfo, event

from benchmarks import workers
from domain import identity, registration
from domain.errors import FactRejected
from ledger import streams as st
from ledger import writer as ledger_writer
from ledger.index import CustomerRecord

Fact = dict[str, Any]


class Customer(Aggregate):
    """The customer aggregate as it was, with its rule as a method."""

    class Started(Aggregate.Created):
        fact: dict[str, Any]
        kind: str
        customer_number: str | None

    def __init__(self, fact: Fact, kind: str, customer_number: str | None) -> None:
        self.kind = kind
        self.customer_number = customer_number
        self.registered_by: str | None = None
        self.facts = 0
        self._apply(fact)

    @classmethod
    def start(cls, customer_id: UUID, fact: Fact, kind: str, customer_number: str | None) -> Customer:
        return cls._create(cls.Started, id=customer_id, fact=fact, kind=kind,
                           customer_number=customer_number)

    def accept(self, fact: Fact) -> None:
        self.check_not_registered_twice(fact)
        self.record(fact)

    @event("Recorded")
    def record(self, fact: Fact) -> None:
        self._apply(fact)

    def _apply(self, fact: Fact) -> None:
        self.facts += 1
        if fact["type"] == "customer.registered":
            self.kind = "customer"
            self.registered_by = fact["event_id"]

    def check_not_registered_twice(self, fact: Fact) -> None:
        if fact["type"] == "customer.registered" and self.registered_by is not None:
            raise FactRejected(
                f"customer is already registered (event {self.registered_by}); "
                "send address.changed or identity.linked to change their details"
            )


class Case(Aggregate):
    """The case aggregate as it was, with its rules as methods."""

    class Started(Aggregate.Created):
        fact: dict[str, Any]
        case_id: str
        customer_id: str

    def __init__(self, fact: Fact, case_id: str, customer_id: str) -> None:
        self.case_id = case_id
        self.customer_id = customer_id
        self.opened_by: str | None = None
        self._apply(fact)

    @classmethod
    def start(cls, case_uuid: UUID, fact: Fact, customer_id: UUID) -> Case:
        return cls._create(cls.Started, id=case_uuid, fact=fact, case_id=fact["data"]["case_id"],
                           customer_id=str(customer_id))

    def accept(self, fact: Fact, customer_id: UUID, owner: UUID) -> None:
        self.check_same_customer(customer_id, owner)
        self.check_opened_once(fact)
        self.record(fact)

    @event("Recorded")
    def record(self, fact: Fact) -> None:
        self._apply(fact)

    def _apply(self, fact: Fact) -> None:
        if fact["type"] == "case.opened":
            self.opened_by = fact["event_id"]

    def check_same_customer(self, customer_id: UUID, owner: UUID) -> None:
        if customer_id != owner:
            raise FactRejected(
                f"case {self.case_id!r} belongs to another customer ({owner}); "
                "a case is never moved between customers by a touchpoint"
            )

    def check_opened_once(self, fact: Fact) -> None:
        if fact["type"] == "case.opened" and self.opened_by is not None:
            raise FactRejected(f"case {self.case_id!r} was already opened (event {self.opened_by})")


def _rebuilt(cls: type[Aggregate], stream_id: UUID, version: int, **state: Any) -> Any:
    """An aggregate for a stream this process did not write, from the writer's stream state
    (the cheapest way back to an object: no replay of the stream's events)."""
    aggregate = object.__new__(cls)
    now = datetime_now_with_tzinfo()
    aggregate.__dict__.update(_id=stream_id, _version=version, _created_on=now, _modified_on=now,
                              _pending_events=[], **state)
    return aggregate


#: The aggregates kept between batches (as the writer keeps its stream states).
_AGGREGATES: dict[UUID, Any] = {}


def forget_aggregates() -> None:
    """Drop the kept aggregates (before writing another store with the same stream ids)."""
    _AGGREGATES.clear()


class AggregateWriter(ledger_writer._BatchWriter):
    """The writer's batch, with each stream's rules and event run through its aggregate."""

    def _aggregate(self, stream_id: UUID, version: int) -> Any:
        aggregate = _AGGREGATES.get(stream_id)
        return aggregate if aggregate is not None and aggregate.version == version else None

    def _row(self, stream_id: UUID, aggregate: Any, fact: Fact, customer_id: UUID) -> None:
        _AGGREGATES[stream_id] = aggregate
        (domain_event,) = aggregate.collect_events()
        state = dict(vars(domain_event))
        del state["originator_id"]
        version = state.pop("originator_version")
        if "originator_topic" in state:  # this module's classes stand in for the domain's
            state["originator_topic"] = _TOPICS[type(aggregate)]
        self.streams[stream_id].version = version
        self._add(stream_id, version, _TOPICS[type(domain_event)], state, fact, customer_id)

    def _append_to_customer(self, customer_id: UUID, fact: Fact, record: CustomerRecord) -> None:
        stream = self._stream(customer_id)
        if not stream.version:
            customer = Customer.start(customer_id, fact, record.kind, record.customer_number)
        else:
            customer = self._aggregate(customer_id, stream.version)
            if customer is None:
                marker = self._marker(customer_id, stream, st.CUSTOMER_MARKER)
                customer = _rebuilt(Customer, customer_id, stream.version, kind=record.kind,
                                    customer_number=record.customer_number, registered_by=marker,
                                    facts=stream.version)
            customer.accept(fact)
        stream.marker = customer.registered_by
        self._row(customer_id, customer, fact, customer_id)

    def _append_to_case(self, fact: Fact, customer_id: UUID) -> None:
        case_key = fact["data"]["case_id"]
        case_id = identity.case_uuid(case_key)
        stream = self._stream(case_id)
        if not stream.version:
            case = Case.start(case_id, fact, customer_id)
        else:
            case = self._aggregate(case_id, stream.version)
            if case is None:
                if stream.owner is None:
                    stream.owner = self._decode(self.index.first_states([case_id])[case_id])["customer_id"]
                marker = self._marker(case_id, stream, st.CASE_MARKER)
                case = _rebuilt(Case, case_id, stream.version, case_id=case_key,
                                customer_id=stream.owner, opened_by=marker)
            case.accept(fact, customer_id, self._survivor(UUID(case.customer_id)))
        stream.owner, stream.marker = case.customer_id, case.opened_by
        self._row(case_id, case, fact, customer_id)


#: The domain's topics for this module's classes (a store written either way reads the same).
_TOPICS: dict[type, str] = {
    Customer: st.CUSTOMER_TOPIC, Customer.Started: st.CUSTOMER_STARTED,
    Customer.Recorded: st.CUSTOMER_RECORDED,  # type: ignore[attr-defined]
    Case: st.CASE_TOPIC, Case.Started: st.CASE_STARTED, Case.Recorded: st.CASE_RECORDED,  # type: ignore[attr-defined]
}


# ------------------------------------------------------------------------------- micro


def _customer_streams(facts: list[Fact]) -> list[tuple[UUID, Fact]]:
    """The workload's customer-stream facts with the record each names (no store, no merges)."""
    out = []
    for fact in facts:
        if "case_id" in fact["data"] and fact["type"].startswith("case."):
            continue
        ref = fact["customer"]
        if "customer_id" in ref:
            stream_id = identity.customer_uuid(ref["customer_id"])
        else:
            stream_id = identity.prospect_uuid(identity.reference_keys(ref)[0])
        out.append((stream_id, {**fact, "event_id": ledger_writer.event_id(fact["source"], fact["id"])}))
    return out


def _micro_functions(facts: list[tuple[UUID, Fact]]) -> int:
    streams: dict[UUID, st.Stream] = {}
    rows = 0
    for stream_id, fact in facts:
        stream = streams.get(stream_id)
        if stream is None:
            stream = streams[stream_id] = st.Stream(0)
        registers = fact["type"] == st.CUSTOMER_MARKER
        if stream.version and registers:
            try:
                registration.check_registered_once(fact, stream.marker)  # type: ignore[arg-type]
            except FactRejected:
                continue
        if registers:
            stream.marker = fact["event_id"]
        first = not stream.version
        stream.version += 1
        st.customer_state(datetime_now_with_tzinfo(), fact, first, "customer", None)
        rows += 1
    return rows


def _micro_aggregates(facts: list[tuple[UUID, Fact]]) -> int:
    aggregates: dict[UUID, Customer] = {}
    rows = 0
    for stream_id, fact in facts:
        customer = aggregates.get(stream_id)
        if customer is None:
            customer = aggregates[stream_id] = Customer.start(stream_id, fact, "customer", None)
        else:
            try:
                customer.accept(fact)
            except FactRejected:
                continue
        (domain_event,) = customer.collect_events()
        state = dict(vars(domain_event))
        del state["originator_id"], state["originator_version"]
        rows += 1
    return rows


def micro(facts: list[Fact], rounds: int) -> dict[str, float]:
    """Microseconds per customer-stream fact of each way (best of ``rounds``)."""
    prepared = _customer_streams(facts)
    best: dict[str, float] = {}
    rows: dict[str, int] = {}
    for _ in range(rounds):
        for name, step in (("functions", _micro_functions), ("aggregates", _micro_aggregates)):
            started = time.perf_counter()
            rows[name] = step(prepared)
            seconds = time.perf_counter() - started
            best[name] = min(best.get(name, seconds), seconds)
    if rows["functions"] != rows["aggregates"]:
        raise AssertionError(f"the two ways accepted different facts: {rows}")
    return {name: seconds / len(prepared) * 1e6 for name, seconds in best.items()}


# ------------------------------------------------------------------------------ append


def append_with(way: str, directory: Path, source: Path, batch: int, count_calls: bool = False
                ) -> dict[str, Any]:
    """``workers.append`` with the writer's batch run the given way (in a spawned worker).
    ``count_calls``: under cProfile, counting the Python function calls (the same count on a
    busy machine as on an idle one; the times are not the append's then)."""
    if way == "aggregates":
        ledger_writer._BatchWriter = AggregateWriter  # type: ignore[misc]
    if count_calls:
        profile = cProfile.Profile()
        summary: dict[str, Any] = profile.runcall(workers.append, directory, source, batch)
        return {**summary, "calls": pstats.Stats(profile).total_calls}  # type: ignore[attr-defined]
    started = time.process_time()
    summary = workers.append(directory, source, batch)
    # The CPU seconds too: the wall clock of a shared machine varies more than the work does.
    return {**summary, "cpu_seconds": time.process_time() - started}


def main(argv: list[str] | None = None) -> int:
    from benchmarks.bench import SQLITE_BATCH
    from benchmarks.rows import workload
    from journey import demo_data

    parser = argparse.ArgumentParser(prog="python -m benchmarks.stream_rules", description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-append", action="store_true", help="only the micro-benchmark")
    parser.add_argument("--calls", action="store_true",
                        help="also count the Python function calls of one append each way")
    args = parser.parse_args(argv)
    facts = workload(args.events)
    per_fact = micro(facts, args.rounds)
    print(f"micro ({len(facts):,} workload facts, customer streams): "
          + ", ".join(f"{name} {us:.2f} us/fact" for name, us in per_fact.items()))
    if args.no_append:
        return 0
    if args.calls:
        with tempfile.TemporaryDirectory(prefix="stream-rules-") as work:
            source = Path(work) / "workload.jsonl"
            demo_data.write_jsonl(source, facts)
            for way in ("functions", "aggregates"):
                counted = workers.in_worker(append_with, way, Path(work) / way, source, SQLITE_BATCH, True)
                lines, calls = counted.result["lines"], counted.result["calls"]
                print(f"calls {way}: {calls:,} Python function calls for {lines:,} facts = "
                      f"{calls / lines:.1f} per fact", flush=True)
    rates: dict[str, list[float]] = {"functions": [], "aggregates": []}
    cpu: dict[str, list[float]] = {"functions": [], "aggregates": []}
    with tempfile.TemporaryDirectory(prefix="stream-rules-") as work:
        source = Path(work) / "workload.jsonl"
        demo_data.write_jsonl(source, facts)
        for i in range(args.rounds):
            for way in (("functions", "aggregates") if i % 2 == 0 else ("aggregates", "functions")):
                measured = workers.in_worker(append_with, way, Path(work) / f"{way}-{i}", source,
                                             SQLITE_BATCH)
                summary = measured.result
                rate = summary["lines"] / measured.seconds
                rates[way].append(rate)
                cpu[way].append(summary["cpu_seconds"])
                print(f"append {way}: {summary['lines']:,} lines, {summary['recorded']:,} recorded, "
                      f"{summary['rejected']} rejected in {measured.seconds:.2f} s = {rate:,.0f} facts/s "
                      f"({summary['cpu_seconds']:.2f} CPU s), peak {measured.peak_rss_mib:,.0f} MiB",
                      flush=True)
    for way, got in rates.items():
        print(f"append {way}: median {statistics.median(got):,.0f} facts/s, best {max(got):,.0f} "
              f"over {len(got)} run(s); CPU median {statistics.median(cpu[way]):.2f} s, "
              f"least {min(cpu[way]):.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
