"""What the customer-views feed publishes, without Kafka: a list stands in for the topic.

The rule checked everywhere: folding everything published (last value per key, a tombstone
deletes the key) gives exactly the live, not-forgotten customer views, whatever happened in
between (new facts, merges, unmerges, erasure, crashes between flush and commit).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest

from consumers.view_feed import (
    Change,
    DeliveryFailed,
    ViewFeed,
    cursor_name,
    document,
    next_attempt,
    published_position,
)
from domain import identity
from journey.bootstrap import Journey
from journey.references import reference_key
from tests.ledgers import open_journey, record

# -- facts -------------------------------------------------------------------------------------


def reg(number: str, name: str, phone: str, **data: Any) -> dict[str, Any]:
    return {"type": "customer.registered", "id": f"reg-{number}", "source": "crm",
            "customer": {"customer_id": number}, "occurred_at": "2026-01-01T10:00:00+01:00",
            "data": {"name": name, "phone": phone, **data}}


def call(n: int, ref: dict[str, str], day: int = 1) -> dict[str, Any]:
    return {"type": "call.inbound", "id": f"call-{n}", "source": "cc", "customer": ref,
            "occurred_at": f"2026-02-{day:02d}T10:00:00+01:00", "department": "sales",
            "data": {"reason": f"call {n}"}}


def merge(n: int, survivor: str, other: str, kind: str = "customer.merged") -> dict[str, Any]:
    return {"type": kind, "id": f"m-{n}", "source": "crm", "customer": {"customer_id": survivor},
            "occurred_at": f"2026-03-{n:02d}T10:00:00+01:00", "department": "crm",
            "data": {"from": {"customer_id": other}, "reason": "test"}}


def uid(number: str) -> str:
    return str(identity.customer_uuid(number))


# -- the stand-in topic --------------------------------------------------------------------------


class ListSink:
    """Messages "on the topic" once confirmed; ``fail`` makes the next confirm fail."""

    def __init__(self) -> None:
        self.topic: list[Change] = []
        self.queued: list[Change] = []
        self.fail = 0

    def send(self, changes: Sequence[Change]) -> None:
        self.queued.extend(changes)

    def confirm(self, timeout: float) -> bool:
        if self.fail:
            self.fail -= 1
            raise DeliveryFailed("broker said no")
        self.topic.extend(self.queued)
        self.queued = []
        return True

    def reset(self) -> None:
        self.queued = []

    def close(self) -> None:
        pass


def fold(messages: Iterable[tuple[str, bytes | None]]) -> dict[str, dict[str, Any]]:
    """What a downstream copy holds after reading the topic: last value per key."""
    copy: dict[str, dict[str, Any]] = {}
    for key, value in messages:
        if value is None:
            copy.pop(key, None)
        else:
            copy[key] = orjson.loads(value)
    return copy


def without_position(docs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {k: {f: v for f, v in d.items() if f != "as_of_position"} for k, d in docs.items()}


def current_views(journey: Journey) -> dict[str, dict[str, Any]]:
    """The live views the feed must converge to: every view row except forgotten ones."""
    store = journey.projections
    ids = [r[0] for r in store.con.execute("SELECT customer_id FROM customer_views").fetchall()]
    return without_position({cid: orjson.loads(orjson.dumps(document(v, 0)))
                             for cid, v in store.load_views(ids).items() if not v.get("forgotten")})


def feed_for(journey: Journey, sink: ListSink, chunk: int = 1000) -> ViewFeed:
    return ViewFeed(store=lambda: journey.projections, sink=sink, topic="views", chunk=chunk)


def publish(feed: ViewFeed) -> list[Change]:
    """Run the feed until up to date; returns what this run put on the topic."""
    sink = feed.sink
    assert isinstance(sink, ListSink)
    before = len(sink.topic)
    assert feed.run(follow=False).unconfirmed == 0
    return sink.topic[before:]


def on_topic(sink: ListSink) -> dict[str, dict[str, Any]]:
    return without_position(fold((c.customer_id, c.value) for c in sink.topic))


@pytest.fixture
def journey(tmp_path: Path) -> Any:
    j = open_journey(tmp_path / "ledger")
    yield j
    j.close()


# -- tests ----------------------------------------------------------------------------------------


def test_first_run_publishes_every_view_then_only_changed_ones(journey: Journey) -> None:
    record(journey, reg("C-1", "Ana", "+34600000001"), reg("C-2", "Bea", "+34600000002"),
           call(1, {"phone": "+34600000003"}))  # a prospect
    journey.project()
    sink = ListSink()
    feed = feed_for(journey, sink)
    first = publish(feed)
    assert {c.customer_id for c in first} == set(current_views(journey))
    assert len(first) == 3 and all(c.reason == "view" and c.key == c.customer_id.encode() for c in first)
    assert on_topic(sink) == current_views(journey)
    assert published_position(journey.projections, "views") == journey.projections.position()
    doc = orjson.loads(next(c.value for c in first if c.customer_id == uid("C-1")) or b"")
    assert doc["name"] == "Ana" and doc["customer_number"] == "C-1" and "timeline" not in doc
    assert doc["as_of_position"] == journey.projections.position()

    # Nothing changed: nothing is selected, nothing sent.
    assert next_attempt(journey.projections, "views") is None
    assert publish(feed) == []

    record(journey, call(2, {"phone": "+34600000002"}))
    journey.project()
    second = publish(feed)
    assert [c.customer_id for c in second] == [uid("C-2")]
    assert on_topic(sink) == current_views(journey)


def test_merge_tombstones_the_alias_and_unmerge_publishes_it_again(journey: Journey) -> None:
    record(journey, reg("C-1", "Ana", "+34600000001"), reg("C-2", "Ana M.", "+34600000002"),
           call(1, {"phone": "+34600000002"}))
    journey.project()
    sink = ListSink()
    feed = feed_for(journey, sink)
    publish(feed)

    record(journey, merge(1, "C-1", "C-2"))
    journey.project()
    merged = publish(feed)
    by_key = {c.customer_id: c for c in merged}
    assert set(by_key) == {uid("C-1"), uid("C-2")}
    assert by_key[uid("C-2")].value is None and by_key[uid("C-2")].reason == "merged"
    assert dict(by_key[uid("C-2")].headers)["journey.merged_into"] == uid("C-1").encode()
    survivor = orjson.loads(by_key[uid("C-1")].value or b"")
    assert survivor["merged_from"] == [uid("C-2")] and survivor["counts"]["by_type"]["call.inbound"] == 1
    assert on_topic(sink) == current_views(journey) and uid("C-2") not in on_topic(sink)
    assert publish(feed) == []  # the tombstone is not sent again

    # The restored record's view is as old as its own facts: it is found by the alias diff.
    record(journey, merge(2, "C-1", "C-2", "customer.unmerged"))
    journey.project()
    restored_position = journey.projections.load_views([uid("C-2")])[uid("C-2")]["position"]
    assert restored_position < published_position(journey.projections, "views")
    split = publish(feed)
    assert {c.customer_id for c in split} == {uid("C-1"), uid("C-2")}
    assert all(c.value is not None for c in split)
    assert on_topic(sink) == current_views(journey) and uid("C-2") in on_topic(sink)
    assert publish(feed) == []

    # Merged and split again between two runs: the latest state wins, nothing is lost.
    record(journey, merge(3, "C-1", "C-2"), merge(4, "C-1", "C-2", "customer.unmerged"),
           merge(5, "C-2", "C-1"))
    journey.project()
    publish(feed)
    assert on_topic(sink) == current_views(journey)
    assert set(on_topic(sink)) == {uid("C-2")}


def test_forgotten_customer_becomes_a_tombstone(journey: Journey) -> None:
    record(journey, reg("C-1", "Zuriñe Etxeberria", "+34611222333"), reg("C-2", "Bea", "+34600000002"),
           call(1, {"phone": "+34611222333"}))
    journey.project()
    sink = ListSink()
    feed = feed_for(journey, sink)
    publish(feed)
    assert journey.ledger.forget(reference_key("C-1"), "asked") is not None
    journey.project()
    forgotten = publish(feed)
    assert [(c.customer_id, c.value, c.reason) for c in forgotten] == [(uid("C-1"), None, "forgotten")]
    assert set(on_topic(sink)) == {uid("C-2")}
    assert on_topic(sink) == current_views(journey)


def test_records_merged_into_a_forgotten_customer_stay_tombstoned(journey: Journey) -> None:
    record(journey, reg("C-1", "Ana", "+34600000001"), reg("C-2", "Ana M.", "+34600000002"))
    journey.project()
    sink = ListSink()
    feed = feed_for(journey, sink)
    publish(feed)
    record(journey, merge(1, "C-1", "C-2"))
    journey.ledger.forget(reference_key("C-1"), "asked")
    journey.project()
    publish(feed)
    assert on_topic(sink) == {}
    last = {c.customer_id: c for c in sink.topic}
    assert last[uid("C-1")].reason == "forgotten" and last[uid("C-2")].reason == "merged"


def test_chunks_move_the_cursor_and_a_failed_attempt_commits_nothing(journey: Journey) -> None:
    record(journey, *(reg(f"C-{n}", f"P{n}", f"+346000000{n:02d}") for n in range(1, 8)))
    journey.project()
    sink = ListSink()
    feed = feed_for(journey, sink, chunk=3)
    assert feed.step(budget=1.0) == "done"
    first_cursor = published_position(journey.projections, "views")
    assert len(sink.topic) == 3 and 0 < first_cursor < journey.projections.position()

    sink.fail = 1
    assert feed.step(budget=1.0) == "backoff"
    assert published_position(journey.projections, "views") == first_cursor  # nothing committed
    assert feed.step(budget=1.0) == "backoff"  # still backing off: nothing is sent
    feed._retry_at = 0.0
    publish(feed)
    assert published_position(journey.projections, "views") == journey.projections.position()
    assert on_topic(sink) == current_views(journey) and len(on_topic(sink)) == 7
    assert feed.failures == 1


def test_a_crash_between_flush_and_commit_publishes_the_same_changes_again(journey: Journey) -> None:
    record(journey, *(reg(f"C-{n}", f"P{n}", f"+346000000{n:02d}") for n in range(1, 6)))
    journey.project()
    sink = ListSink()

    class Crash(Exception):
        pass

    def die(attempt: int) -> None:
        if attempt == 2:
            raise Crash

    feed = feed_for(journey, sink, chunk=2)
    feed.after_flush = die
    with pytest.raises(Crash):
        feed.run(follow=False)
    assert len(sink.topic) == 4  # two attempts flushed, the second not committed
    cursor = journey.projections.position(cursor_name("views"))

    restarted = feed_for(journey, sink, chunk=2)
    again = publish(restarted)
    assert [c.customer_id for c in again[:2]] == [c.customer_id for c in sink.topic[2:4]]
    assert [c.value for c in again[:2]] == [c.value for c in sink.topic[2:4]]
    assert cursor < published_position(journey.projections, "views")
    assert on_topic(sink) == current_views(journey) and len(on_topic(sink)) == 5
