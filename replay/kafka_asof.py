"""A customer as of an instant, read from Kafka instead of the event store.

The relay stamps each message of ``journey.events`` with the event's ``recorded_at``
(consumers/relay.py), so ``offsets_for_times(T + 1 ms)`` gives, per partition, the first offset
recorded after T: everything before it is what the ledger knew at T. Those messages are read
once (all partitions: a record merged into the customer may be keyed to another partition),
opened with the store's keys (personal fields travel encrypted) and handed to the same
``gather``/``fold`` as the store path, so both paths give the same view.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

from consumers.wire import decode_event
from ledger.application import JourneyApplication, StoredFact, open_fact
from projections import quarantine, readable
from projections.rules import DEFAULT_RULES, Rules
from replay.asof import AsOf, Axis, gather, occurred_at


def history_until(app: JourneyApplication, bootstrap: str, topic: str,
                  until: datetime | None) -> Callable[[str], list[StoredFact]]:
    """Every customer's facts on the topic recorded at or before ``until`` (None: all)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             client_id="journey-asof", max_partition_fetch_bytes=16 * 1024 * 1024)
    facts: dict[int, StoredFact] = {}
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise LookupError(f"topic {topic} not found on {bootstrap}")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        ends = consumer.end_offsets(tps)
        stops = dict(ends)
        if until is not None:
            millis = int(until.timestamp() * 1000) + 1
            for tp, found in consumer.offsets_for_times({tp: millis for tp in tps}).items():
                if found is not None:  # None: nothing recorded after ``until`` in that partition
                    stops[tp] = found.offset
        consumer.seek_to_beginning(*tps)
        todo = {tp for tp in tps if stops[tp] > 0}
        while todo:
            for tp, messages in consumer.poll(timeout_ms=500, max_records=20_000).items():
                for m in messages:
                    if m.offset < stops[tp]:
                        try:
                            sf = decode_event(m.value)
                        except (ValueError, TypeError, KeyError):
                            continue  # not a message the relay wrote: nothing says which fact
                        facts[sf.position] = sf  # a redelivery carries the same position
            for tp in list(todo):
                if consumer.position(tp) >= stops[tp]:
                    todo.discard(tp)
                    consumer.pause(tp)
    finally:
        consumer.close(autocommit=False)
    by_customer: dict[str, list[StoredFact]] = defaultdict(list)
    for position in sorted(facts):
        sf = _opened(app, facts[position])
        record = sf.fact.get("customer_uuid") if isinstance(sf.fact, dict) else None
        if isinstance(record, str):
            by_customer[record].append(sf)
    return lambda customer_id: by_customer.get(customer_id, [])


def _opened(app: JourneyApplication, sf: StoredFact) -> StoredFact:
    """Opened with the store's keys; one that cannot be is left for ``gather`` to set aside."""
    try:
        return open_fact(app, sf)
    except quarantine.FACT_ERRORS as error:
        reason = f"cannot be opened with the store's keys: {quarantine.failure(error)}"
        stand_in = readable.undecodable(sf.position, sf.stream_id, sf.stream_version, reason)
        record = sf.fact.get("customer_uuid") if isinstance(sf.fact, dict) else None
        return replace(stand_in, fact={**stand_in.fact, "customer_uuid": record,
                                       "type": readable.UNDECODABLE})


def as_of_kafka(app: JourneyApplication, customer_id: str, at: datetime, axis: Axis,
                bootstrap: str, topic: str, rules: Rules = DEFAULT_RULES) -> AsOf:
    """The same as ``replay.asof.as_of``, from the topic: ``recorded`` seeks by time."""
    at = at.astimezone(UTC)
    skipped: set[int] = set()
    if axis == "recorded":
        history = history_until(app, bootstrap, topic, at)
        return AsOf(customer_id, "recorded", at,
                    gather(app, customer_id, lambda sf: sf.recorded_at <= at, history, skipped),
                    quarantined=sorted(skipped), rules=rules)
    history = history_until(app, bootstrap, topic, None)
    facts = gather(app, customer_id, lambda sf: occurred_at(sf) <= at, history, skipped)
    return AsOf(customer_id, "occurred", at, facts, late=[sf for sf in facts if sf.recorded_at > at],
                quarantined=sorted(skipped), rules=rules)
