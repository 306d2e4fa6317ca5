"""The customer-views change feed: every change of a customer view, on a compacted Kafka topic.

A downstream service (a CRM mirror, a marketing tool, a store's tills) wants its own copy of
the customer views without querying the ledger. The relay's ``journey.events`` would make it
re-implement the view's rules; this feed publishes the rendered views instead, to ``journey.customer-views``
(``JOURNEY_VIEWS_TOPIC``), one message per change of one customer:

* key: the customer (ledger) id, UTF-8; value: the rendered view as JSON (:func:`document`);
* a tombstone (value None) when the key no longer names a live view: the customer was
  forgotten (GDPR erasure: the last value must hold nothing personal), or the record was merged
  into another (the survivor's view now holds its history);
* after an unmerge, the split-off record's view is published again.

The topic is compacted, so reading it from the beginning and keeping the last value per key
(dropping keys whose last value is a tombstone) gives the current views. See docs/kafka.md.

Why the position lives in DuckDB and not in the event store or Kafka: what is published is the
content of ``projections.duckdb`` (``customer_views``), so "published up to P" has to commit
with, and be lost with, that file. The cursor is the ``projection_position`` row
``view-feed:<topic>``; it holds the projection position (the main cursor) the feed has
published up to. A view changed after that has ``customer_views.position`` above it, because
a customer's position is the highest store position among their rows and the embedded
projection applies facts in notification order. One change does not move a view's position past the
cursor: an unmerge restores the split-off record as it was (its own, older, facts). So the feed
also keeps the set of alias tombstones it published (table ``view_feed_tombstones``) and diffs
it against ``customer_aliases`` on every pass: an alias it tombstoned that is no longer an
alias was split off, and its view is published again. Both are written in one DuckDB
transaction, only after the producer's flush confirmed every message (``acks=all``), so the
feed is at least once and never loses a change: a crash between the flush and the commit
publishes the same changes again on restart, which a compacted topic absorbs (same key, the
same or a newer view).

DuckDB lets one process hold the file open for writing, so the feed runs inside the process
that owns the projections: ``journey feed`` (which projects too) or the HTTP server's duties
(:func:`tick`). This module is what to publish and how, given a sink and the projections;
which broker, topic and settings, and which feed a running server keeps, are the composition
root's business (journey/usecases/feed.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from consumers.broker_outage import is_transient
from consumers.relay import PRODUCER_CONFIG as RELAY_PRODUCER_CONFIG
from projections.customer_view import View, render
from projections.duckdb_store import ProjectionStore
from projections.rules import DEFAULT_RULES, Rules

log = logging.getLogger(__name__)

#: Views per flush-and-commit cycle: the redelivery window after a crash, and the memory bound.
DEFAULT_CHUNK = 2000
#: Seconds between passes in follow mode when nothing changed.
POLL_INTERVAL = 1.0
#: Seconds between progress lines.
PROGRESS_EVERY = 5.0
#: A duty of the HTTP server runs under the server's lock: it never waits longer than this for
#: the broker in one call; what is unconfirmed is waited for again on the next call.
TICK_BUDGET_S = 0.5

TOMBSTONE_TABLE = "view_feed_tombstones"
_TOMBSTONE_DDL = (f"CREATE TABLE IF NOT EXISTS {TOMBSTONE_TABLE} (topic VARCHAR NOT NULL, "
                  "customer_id VARCHAR NOT NULL, merged_into VARCHAR)")

#: Topic settings. Compaction keeps the last value per key; a tombstone removes the key.
#: - segment.ms: the active segment is never compacted; rolling it hourly lets the cleaner reach
#:   recent changes (the default, 7 days, would keep every superseded view that long).
#: - min.compaction.lag.ms=0: only the latest view of a customer means anything; keeping
#:   superseded ones longer would only keep personal data longer.
#: - max.compaction.lag.ms (1 day): the longest a superseded value stays readable, whatever the
#:   dirty ratio, so a forgotten customer's last view is gone from the log within about a day.
#: - delete.retention.ms (7 days): how long a tombstone itself stays readable. A consumer
#:   that is offline longer may miss a deletion and must rebuild its copy from the beginning.
TOPIC_CONFIG: dict[str, str] = {
    "cleanup.policy": "compact",
    "segment.ms": str(60 * 60 * 1000),
    "min.compaction.lag.ms": "0",
    "max.compaction.lag.ms": str(24 * 60 * 60 * 1000),
    "delete.retention.ms": str(7 * 24 * 60 * 60 * 1000),
}

#: The relay's producer settings (acks=all, idempotence, ordered retries, long delivery timeout).
PRODUCER_CONFIG: dict[str, Any] = {**RELAY_PRODUCER_CONFIG}
#: Inside the HTTP server a call must not block the lock for the client's usual 30 s when the
#: broker is away: connecting and queueing give up after a second and are retried next tick.
TICK_PRODUCER_CONFIG: dict[str, Any] = {"bootstrap_timeout_ms": 1000, "max_block_ms": 1000}
#: The same for the admin client that creates or checks the topic from the server.
TICK_ADMIN_CONFIG: dict[str, Any] = {"bootstrap_timeout_ms": 1000, "request_timeout_ms": 5000}
#: How long the server's feed waits for in-flight messages when its producer is reset.
TICK_CLOSE_TIMEOUT = 2.0

class ViewFeedTopicError(RuntimeError):
    """The topic exists with settings that would lose views (not compacted, or also deleted)."""


class DeliveryFailed(RuntimeError):
    """The broker refused or expired a message: the whole attempt is sent again."""


def cursor_name(topic: str) -> str:
    """The ``projection_position`` row holding the feed's published position for ``topic``."""
    return f"view-feed:{topic}"


def document(view: View, as_of_position: int, rules: Rules = DEFAULT_RULES) -> dict[str, Any]:
    """The published value: ``journey customer REF --json`` without the timeline.

    Rendered without a clock, and without the ``overdue`` flags of cases and promises: those
    change with time alone, with no event, and a change feed only carries what events change
    (a consumer derives them from ``answer_due_by`` / ``due_at``). ``as_of_position`` is the
    projection position the document reflects, as in ``journey customer --json``; per key it
    never decreases. ``rules``: the ledger's (the projection store's), as every reader of the
    view sees them."""
    rendered = render(view, now=None, rules=rules)
    for group in ("cases", "promises"):
        rendered[group] = [{k: v for k, v in item.items() if k != "overdue"} for item in rendered[group]]
    return {**rendered, "as_of_position": as_of_position}


@dataclass(frozen=True, slots=True)
class Change:
    """One message: a customer's current view, or a tombstone with why."""

    customer_id: str
    value: bytes | None
    #: "view", "forgotten" or "merged" (header ``journey.change``).
    reason: str
    #: The survivor of a merged record (header ``journey.merged_into``).
    merged_into: str | None = None

    @property
    def key(self) -> bytes:
        return self.customer_id.encode()

    @property
    def headers(self) -> list[tuple[str, bytes]]:
        headers = [("journey.change", self.reason.encode())]
        if self.merged_into is not None:
            headers.append(("journey.merged_into", self.merged_into.encode()))
        return headers


def change_of(customer_id: str, view: View, as_of_position: int, rules: Rules = DEFAULT_RULES) -> Change:
    if view.get("forgotten"):
        return Change(customer_id, None, "forgotten")
    return Change(customer_id, orjson.dumps(document(view, as_of_position, rules)), "view")


@dataclass(slots=True)
class Attempt:
    """Changes sent together, and what to commit once the broker confirmed all of them."""

    changes: list[Change]
    #: The feed cursor after this attempt.
    cursor_to: int
    #: Alias tombstones published: (alias, survivor).
    tombstoned: list[tuple[str, str]] = field(default_factory=list)
    #: Former aliases whose tombstone no longer holds (published again, or nothing to publish).
    restored: list[str] = field(default_factory=list)


def published_position(store: ProjectionStore, topic: str) -> int:
    """The projection position the feed has published up to for ``topic`` (0: nothing yet)."""
    return max(store.position(cursor_name(topic)), 0)


def next_attempt(store: ProjectionStore, topic: str, chunk: int = DEFAULT_CHUNK) -> Attempt | None:
    """What to publish next, or None when the topic is up to date with the projections.

    Cheap when nothing changed (two cursor reads). Otherwise: the alias diff (merges and
    unmerges since the last pass) and up to ``chunk`` changed views, in position order; the
    chunk never splits views sharing a position, so the cursor can stop between chunks."""
    con = store.con
    done = published_position(store, topic)
    head = store.position()
    if head <= done:
        return None
    con.execute(_TOMBSTONE_DDL)
    changes: dict[str, Change] = {}
    tombstoned: list[tuple[str, str]] = []
    for alias, survivor in con.execute(
            f"SELECT a.alias, max(a.customer_id) FROM customer_aliases a LEFT JOIN {TOMBSTONE_TABLE} t "
            "ON t.topic = ? AND t.customer_id = a.alias GROUP BY a.alias "
            "HAVING count(t.customer_id) = 0 OR max(a.customer_id) IS DISTINCT FROM max(t.merged_into) "
            "ORDER BY a.alias", [topic]).fetchall():
        tombstoned.append((str(alias), str(survivor)))
        changes[alias] = Change(str(alias), None, "merged", str(survivor))
    restored = [str(cid) for (cid,) in con.execute(
        f"SELECT DISTINCT customer_id FROM {TOMBSTONE_TABLE} WHERE topic = ? AND customer_id NOT IN "
        "(SELECT alias FROM customer_aliases) ORDER BY customer_id", [topic]).fetchall()]
    for cid, view in store.load_views(restored).items():
        changes[cid] = change_of(cid, view, head, store.rules)
    bound = con.execute(
        "SELECT max(position), count(*) FROM (SELECT position FROM customer_views WHERE position > ? "
        "ORDER BY position LIMIT ?)", [done, chunk]).fetchall()
    last, count = bound[0]
    cursor_to = head
    if count:
        ids = [str(cid) for (cid,) in con.execute(
            "SELECT customer_id FROM customer_views WHERE position > ? AND position <= ? "
            "ORDER BY position, customer_id", [done, last]).fetchall()]
        views = store.load_views(ids)  # built from the customers' rows (projections/view_rows.py)
        for cid in ids:
            changes[cid] = change_of(cid, views[cid], head, store.rules)
        if count == chunk:  # maybe more above ``last``: the next attempt goes on from there
            cursor_to = min(int(last), head)
    return Attempt(list(changes.values()), cursor_to, tombstoned, restored)


def commit(store: ProjectionStore, topic: str, attempt: Attempt) -> None:
    """Record a confirmed attempt: cursor and tombstone set in one DuckDB transaction."""
    con = store.con
    con.execute(_TOMBSTONE_DDL)
    cursor = cursor_name(topic)
    con.begin()
    try:
        con.execute("DELETE FROM projection_position WHERE name = ?", [cursor])
        con.execute("INSERT INTO projection_position VALUES (?, ?, now())", [cursor, attempt.cursor_to])
        gone = [*attempt.restored, *(alias for alias, _ in attempt.tombstoned)]
        if gone:
            con.execute(f"DELETE FROM {TOMBSTONE_TABLE} WHERE topic = ? AND customer_id IN "
                        "(SELECT unnest(?::VARCHAR[]))", [topic, gone])
        for alias, survivor in attempt.tombstoned:
            con.execute(f"INSERT INTO {TOMBSTONE_TABLE} VALUES (?, ?, ?)", [topic, alias, survivor])
    except BaseException:
        con.rollback()
        raise
    con.commit()


# ---------------------------------------------------------------------------------- the sink


class Sink(Protocol):
    """Where changes go. The Kafka one below; tests use a list."""

    def send(self, changes: Sequence[Change]) -> None:
        """Queue every change, in order; raises if the broker cannot take them now."""

    def confirm(self, timeout: float) -> bool:
        """True once everything queued is acknowledged; False if still unconfirmed after
        ``timeout`` seconds; raises :class:`DeliveryFailed` if a message failed."""

    def reset(self) -> None:
        """After a failure: forget what was queued (the feed sends the attempt again)."""

    def close(self) -> None: ...


@dataclass
class KafkaSink:
    bootstrap: str
    topic: str
    producer_config: dict[str, Any] = field(default_factory=dict)
    #: How long a reset waits for the old producer's in-flight messages: none of them may land
    #: after the re-sent ones (the relay's reasoning, consumers/relay.py).
    close_timeout: float = 30.0
    _producer: Any = field(default=None, init=False, repr=False)
    _errors: list[BaseException] = field(default_factory=list, init=False, repr=False)

    def _new_producer(self) -> Any:
        from kafka import KafkaProducer

        return KafkaProducer(bootstrap_servers=self.bootstrap, client_id="journey-view-feed",
                             **{**PRODUCER_CONFIG, **self.producer_config})

    def send(self, changes: Sequence[Change]) -> None:
        if self._producer is None:
            self._producer = self._new_producer()
        producer, errors = self._producer, self._errors
        for change in changes:
            future = producer.send(self.topic, key=change.key, value=change.value, headers=change.headers)
            future.add_errback(errors.append)

    def confirm(self, timeout: float) -> bool:
        from kafka.errors import KafkaTimeoutError

        if self._producer is None:
            return not self._errors
        try:
            self._producer.flush(timeout=timeout)
        except KafkaTimeoutError:
            if not self._errors:
                return False
        if self._errors:
            first, count = self._errors[0], len(self._errors)
            raise DeliveryFailed(f"{count} messages failed, first: {first!r}") from first
        return True

    def reset(self) -> None:
        producer, self._producer = self._producer, None
        self._errors = []
        if producer is not None:
            try:
                producer.close(timeout=self.close_timeout)
            except Exception as error:
                log.warning("closing the view-feed producer failed: %r", error)

    def close(self) -> None:
        self.reset()


def ensure_topic(bootstrap: str, topic: str, partitions: int, replication_factor: int = -1,
                 admin_config: dict[str, Any] | None = None) -> bool:
    """Create the compacted topic unless it exists; check an existing one is compacted.

    Returns True if it was created. Raises :class:`ViewFeedTopicError` when the topic exists
    with a cleanup policy other than ``compact`` (``delete`` or ``compact,delete`` would drop
    the views of customers who did not change for a while). Broker errors propagate."""
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource, ConfigResourceType
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="journey-view-feed-admin",
                             **{"request_timeout_ms": 15_000, **(admin_config or {})})
    try:
        try:
            admin.create_topics({topic: {"num_partitions": partitions,
                                         "replication_factor": replication_factor,
                                         "configs": dict(TOPIC_CONFIG)}}, wait_for_metadata=True)
            log.info("created compacted topic %s with %d partitions", topic, partitions)
            return True
        except TopicAlreadyExistsError:
            pass
        described = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, {"cleanup.policy": None})], config_filter="all")
        entry = described.get("topic", {}).get(topic, {}).get("cleanup.policy") or {}
        policy = str(entry.get("value") or "")
        if sorted(p.strip() for p in policy.split(",")) != ["compact"]:
            raise ViewFeedTopicError(
                f"topic {topic} exists with cleanup.policy={policy or '(unknown)'}; the customer-views "
                f"feed needs cleanup.policy=compact (a delete policy drops the views of customers who "
                f"have not changed for a while). Fix it with: kafka-configs.sh --bootstrap-server "
                f"{bootstrap} --alter --entity-type topics --entity-name {topic} --add-config "
                f"cleanup.policy=compact, or use another topic (--topic / JOURNEY_VIEWS_TOPIC)")
        try:
            count = len(admin.describe_topics([topic])[0]["partitions"])
        except Exception as error:  # a diagnostic only
            log.warning("topic %s exists; could not read its partition count (%r)", topic, error)
        else:
            if count != partitions:
                log.warning("topic %s exists with %d partitions, not %d: left as it is", topic, count,
                            partitions)
        return False
    finally:
        admin.close()


# ---------------------------------------------------------------------------------- the feed


@dataclass(slots=True)
class FeedProgress:
    views: int  # view messages confirmed in this run (republished ones included)
    tombstones: int
    attempts: int
    position: int  # the committed feed position
    head: int  # the projection position when last looked at
    elapsed: float
    waiting: bool = False


@dataclass(slots=True)
class FeedSummary:
    topic: str
    views: int
    tombstones: int
    attempts: int
    start_position: int
    position: int
    head: int
    seconds: float
    failures: int
    #: Changes sent but not confirmed when the run stopped (sent again on the next start).
    unconfirmed: int = 0
    stopped: bool = False


@dataclass
class ViewFeed:
    """Publishes the projections' changed views to the topic; see the module docstring.

    :meth:`step` does one bounded piece of work and returns, so the same object serves the CLI
    loop (:meth:`run`) and the HTTP server's duty (:func:`tick`), which must not hold its lock
    while the broker is away."""

    store: Callable[[], ProjectionStore]
    sink: Sink
    topic: str
    chunk: int = DEFAULT_CHUNK
    #: Creates/checks the topic before the first send (None: a test sink, nothing to create).
    prepare: Callable[[], object] | None = None
    #: Test hook: called with the attempt number after the confirm, before the commit.
    after_flush: Callable[[int], None] | None = None
    views: int = 0
    tombstones: int = 0
    attempts: int = 0
    failures: int = 0
    _prepared: bool = field(default=False, init=False)
    _inflight: Attempt | None = field(default=None, init=False, repr=False)
    _retry_at: float = field(default=0.0, init=False, repr=False)
    _outage_since: float | None = field(default=None, init=False, repr=False)
    _pause: float = field(default=0.5, init=False, repr=False)

    @property
    def position(self) -> int:
        return published_position(self.store(), self.topic)

    @property
    def unconfirmed(self) -> int:
        return len(self._inflight.changes) if self._inflight is not None else 0

    def step(self, budget: float) -> str:
        """One unit of work. Returns "idle" (up to date), "done" (an attempt committed),
        "waiting" (sent, not confirmed within ``budget``: call again) or "backoff" (the broker
        failed; nothing is retried before the backoff ends)."""
        if time.monotonic() < self._retry_at:
            return "backoff"
        try:
            if self._inflight is None:
                if not self._prepared and self.prepare is not None:
                    self.prepare()
                self._prepared = True
                attempt = next_attempt(self.store(), self.topic, self.chunk)
                if attempt is None:
                    return "idle"
                if attempt.changes:
                    self._inflight = attempt
                    self.sink.send(attempt.changes)
                else:
                    self._commit(attempt)
                    return "done"
            if not self.sink.confirm(budget):
                self._waiting()
                return "waiting"
        except ViewFeedTopicError:
            raise
        except Exception as error:
            self._failed(error)
            return "backoff"
        attempt, self._inflight = self._inflight, None
        assert attempt is not None
        self.attempts += 1
        if self.after_flush is not None:
            self.after_flush(self.attempts)
        self._commit(attempt)
        self._recovered()
        return "done"

    def _commit(self, attempt: Attempt) -> None:
        commit(self.store(), self.topic, attempt)
        gone = sum(1 for c in attempt.changes if c.value is None)
        self.tombstones += gone
        self.views += len(attempt.changes) - gone

    def _waiting(self) -> None:
        now = time.monotonic()
        if self._outage_since is None:
            self._outage_since = now
        elif now - self._outage_since >= PROGRESS_EVERY and int(now - self._outage_since) % 10 == 0:
            log.warning("%s: the broker has not confirmed %d changes for %.0f s; the producer keeps "
                        "retrying", self.topic, self.unconfirmed, now - self._outage_since)

    def _failed(self, error: BaseException) -> None:
        """Nothing is committed: the next attempt is selected afresh (the current views) and
        sent with a new producer after a backoff. Like the relay, it never gives up."""
        self.failures += 1
        kind = "broker unreachable" if is_transient(error) else "publishing failed"
        log.warning("%s: %s (%s: %s); trying again in %.1f s", self.topic, kind, type(error).__name__,
                    error, self._pause)
        self._inflight = None
        self.sink.reset()
        self._retry_at = time.monotonic() + self._pause
        self._pause = min(self._pause * 2, 30.0)
        if self._outage_since is None:
            self._outage_since = time.monotonic()

    def _recovered(self) -> None:
        if self._outage_since is not None and self.failures:
            log.warning("%s: publishing again after %.0f s", self.topic,
                        time.monotonic() - self._outage_since)
        self._outage_since = None
        self._pause = 0.5

    def run(self, *, follow: bool = False, stop: threading.Event | None = None,
            before_pass: Callable[[], object] | None = None, poll_interval: float = POLL_INTERVAL,
            stop_grace: float = 10.0, progress_every: float = PROGRESS_EVERY,
            on_progress: Callable[[FeedProgress], None] | None = None) -> FeedSummary:
        """Publish until up to date (``follow=False``) or until ``stop`` (``follow=True``).

        ``before_pass`` (the CLI: ``journey.project()``) runs before each pass, so what the
        store recorded is projected and then published. On stop, the attempt in hand is waited
        for up to ``stop_grace`` seconds, then left uncommitted (sent again on the next start)."""
        stop = stop or threading.Event()
        started = last_report = time.monotonic()
        start_position = self.position
        views0, tombstones0 = self.views, self.tombstones

        def progress(force: bool = False, waiting: bool = False) -> None:
            nonlocal last_report
            now = time.monotonic()
            if not force and now - last_report < progress_every:
                return
            last_report = now
            p = FeedProgress(self.views - views0, self.tombstones - tombstones0, self.attempts,
                             self.position, self.store().position(), now - started, waiting)
            log.info("published %d views and %d tombstones, position %d of %d%s", p.views, p.tombstones,
                     p.position, p.head, " (waiting for the broker)" if waiting else "")
            if on_progress is not None:
                on_progress(p)

        stopping_since: float | None = None
        while True:
            if stop.is_set():
                if self._inflight is None:
                    break
                stopping_since = stopping_since or time.monotonic()
                if time.monotonic() - stopping_since >= stop_grace:
                    log.warning("%s: stopped before the broker confirmed %d changes; they are sent "
                                "again on the next start", self.topic, self.unconfirmed)
                    break
            if self._inflight is None and before_pass is not None and not stop.is_set():
                before_pass()
            state = self.step(budget=1.0)
            if state == "idle":
                progress()
                if not follow:
                    break
                stop.wait(poll_interval)
            elif state == "backoff":
                if stop.is_set() and self._inflight is None:
                    break
                progress(waiting=True)
                stop.wait(max(0.0, min(self._retry_at - time.monotonic(), 1.0)))
            elif state == "waiting":
                progress(waiting=True)
            else:
                progress()
        unconfirmed = self.unconfirmed
        progress(force=True)
        return FeedSummary(self.topic, self.views - views0, self.tombstones - tombstones0, self.attempts,
                           start_position, self.position, self.store().position(),
                           time.monotonic() - started, self.failures, unconfirmed, stop.is_set())

    def close(self) -> None:
        self.sink.close()


def tick(feed: ViewFeed, budget: float = TICK_BUDGET_S) -> None:
    """One call of a server's duty (journey/usecases/feed.py): publish what changed, within ``budget``.

    Two cursor reads when nothing changed. It never blocks the server's lock for much longer
    than ``budget`` per attempt: unconfirmed sends are waited for on the next call, and a
    broker failure backs off without moving the position. A topic with the wrong cleanup
    policy is logged (every backoff) rather than raised into the server."""
    deadline = time.monotonic() + budget
    try:
        while time.monotonic() < deadline:
            if feed.step(budget=max(0.05, deadline - time.monotonic())) != "done":
                return
    except ViewFeedTopicError as error:
        log.error("%s", error)
        feed._retry_at = time.monotonic() + 30.0
