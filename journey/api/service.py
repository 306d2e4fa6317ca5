"""The server's one Journey, the lock around it, and the documents the endpoints return.

One process holds the projections (DuckDB admits a single process per file) and DuckDB
connections are not thread-safe, so every use of the Journey, by a request or by a duty, goes
through :meth:`Desk.use`: one lock, held for the few milliseconds a document takes. Reads
stay fresh because every document is built after bringing the projections up to the store's
head, which costs one ``max(id)`` on the store when nothing new was recorded.

The documents are built by the use cases (journey/usecases/), the CLI's too; the
:class:`ReadCache` keeps what customer reads share, in front of journey/usecases/customers.py.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from fastapi import Request

from consumers.jsonl_ingest import may_repeat_keys, repeated_reason
from domain.contact_policy import public_holiday
from domain.limits import DEFAULT_LIMITS
from journey.bootstrap import Journey, bootstrap
from journey.config import Settings
from journey.usecases import customers
from projections.customer_view import View

log = logging.getLogger("journey.api.duties")
warm_log = logging.getLogger("journey.api.cache")

#: Customers whose timelines and views a server keeps between appends (a few KB each in
#: the demo; about 60 MB for its 3,000 customers).
TIMELINE_CACHE = 10_000
#: Ledgers with at most this many customers have every view read at start (one scan), and
#: their timelines read in the background.
WARM_VIEWS = 10_000


class Desk:
    """Owns the Journey of a running server: lazy opening, the lock, the duty thread."""

    def __init__(self, settings: Settings, journey: Journey | None = None,
                 duties: Sequence[Callable[[Journey], None]] | None = None,
                 tick_seconds: float = 1.0) -> None:
        self.settings = settings
        self._journey = journey
        #: Close the Journey on shutdown only when this desk opened it.
        self._owned = journey is None
        self.lock = threading.RLock()
        self._duties = duties
        self.tick_seconds = tick_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: The store position the projections were last brought up to: the next read projects
        #: again only when the store's head has moved past it.
        self._projected = -1
        self.reads = ReadCache()

    @contextmanager
    def use(self) -> Iterator[Journey]:
        with self.lock:
            if self._journey is None:
                self._journey = bootstrap(self.settings)
                self._owned = True
                self._projected = -1
                self.reads.reset(-1)
            yield self._journey

    @contextmanager
    def fresh(self) -> Iterator[Journey]:
        """The Journey with its projections at the store's head (everything recorded is read)."""
        with self.use() as journey:
            head = int(journey.app.recorder.max_notification_id() or 0)
            if head != self._projected:
                journey.project()
                self._projected = head
                self.reads.advance(journey, journey.projections.position())
            yield journey

    # ---------------------------------------------------------------- duties

    def duties(self) -> Sequence[Callable[[Journey], None]]:
        if self._duties is not None:
            return self._duties
        from journey.api.duties import DUTIES

        return DUTIES

    def tick(self) -> None:
        """Run every duty once, under the lock; one failing duty does not stop the others."""
        duties = list(self.duties())
        if not duties:
            return
        with self.use() as journey:
            for duty in duties:
                try:
                    duty(journey)
                except Exception:
                    log.exception("duty %s failed", getattr(duty, "__qualname__", duty))
            if self._projected >= 0 and journey.projections.position() != self.reads.position:
                self._projected = -1  # a duty projected: what was read before is stale

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="journey-duties", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:  # open, project and read the views before the first request needs them
            with self.fresh():
                pass
            # Loading the holiday calendars takes a few tenths of a second, once per process:
            # paid here rather than by the first contact decision asked for.
            public_holiday(datetime.now(UTC).date())
        except Exception:
            log.exception("warming up failed (the first request will try again)")
        warming = threading.Thread(target=self._warm_timelines, name="journey-warm", daemon=True)
        warming.start()
        while not self._stop.wait(self.tick_seconds):
            self.tick()
        warming.join(timeout=30)

    def _warm_timelines(self, batch: int = 8) -> None:
        """Read the timelines of the customers whose views were read at start, a few at a time.

        The lock is let go between batches, so requests wait at most one batch (about 20 ms);
        a freshly started server answers from memory within seconds instead of paying a
        DuckDB query on each customer's first read.
        """
        started = time.monotonic()
        with self.lock:  # requests take views out of ``raw`` meanwhile
            customers = list(self.reads.raw)[:self.reads.size]
        done = 0
        for first in range(0, len(customers), batch):
            if self._stop.is_set():
                return
            try:
                with self.fresh() as journey:
                    for customer_id in customers[first:first + batch]:
                        if customer_id not in self.reads.timelines:
                            self.reads.timeline(journey, customer_id)
                            done += 1
            except Exception:
                log.exception("warming up timelines failed; they are read when asked for")
                return
            time.sleep(0.001)  # let a waiting request take the lock
        if customers:
            warm_log.info("read cache warm: %d views, %d timelines in %.1f s", len(customers), done,
                          time.monotonic() - started)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def close(self) -> None:
        self.stop()
        with self.lock:
            if self._journey is not None and self._owned:
                self._journey.close()
                self._journey = None


# -------------------------------------------------------------------- documents


class ReadCache:
    """What customer reads share between appends: identity key -> customer, views, timelines.

    Reading one stored view from DuckDB costs milliseconds (its column is compressed in blocks
    of thousands of rows, and a point read decompresses a block); a timeline is a query and a
    JSON parse per event. Both change only when facts of that customer are projected, so they
    are kept until then: after each projection the customers whose events came in are dropped
    (everything is, after a merge, an unmerge or an erasure, which move or blank other
    customers' rows). Identity lookups are dropped at every change (cheap, and a new identity
    or a merge may move any of them). Documents that depend on the clock are never kept.

    On start the views of a ledger with at most ``warm`` customers are built from their rows
    in bulk (projections/view_rows.py; about a second for ten thousand customers), and kept
    until first asked for.
    """

    #: Facts that change other customers' rows or views than their own.
    RESHAPING = ("customer.merged", "customer.unmerged", "customer.forgotten")

    def __init__(self, size: int = TIMELINE_CACHE, warm: int = WARM_VIEWS) -> None:
        self.size = size
        self.warm = warm
        self.position = -1
        self.customers: dict[str, str] = {}
        self.timelines: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
        self.views: OrderedDict[str, View] = OrderedDict()
        self.raw: dict[str, View] = {}

    def reset(self, position: int) -> None:
        self.position = position
        self.customers.clear()
        self.timelines.clear()
        self.views.clear()
        self.raw.clear()

    def advance(self, journey: Journey, position: int) -> None:
        """The projections moved to ``position``: forget what changed since the last one."""
        if position == self.position:
            return
        con = journey.projections.con
        if self.position < 0 or position < self.position:
            self.reset(position)
            self._warm(journey)
            return
        rows = con.execute(
            "SELECT customer_id, bool_or(list_contains(?::VARCHAR[], type)) FROM events "
            "WHERE position > ? AND position <= ? GROUP BY customer_id",
            [list(self.RESHAPING), self.position, position]).fetchall()
        if any(reshaped for _, reshaped in rows):
            self.reset(position)
            self._warm(journey)
            return
        self.position = position
        self.customers.clear()
        for customer_id, _ in rows:
            self.timelines.pop(customer_id, None)
            self.views.pop(customer_id, None)
            self.raw.pop(customer_id, None)

    def _warm(self, journey: Journey) -> None:
        con = journey.projections.con
        [(count,)] = con.execute("SELECT count(*) FROM customer_views").fetchall()
        if 0 < count <= self.warm:
            ids = [str(cid) for (cid,) in con.execute("SELECT customer_id FROM customer_views").fetchall()]
            self.raw = journey.projections.load_views(ids)

    def resolve(self, journey: Journey, key: str) -> str | None:
        found = self.customers.get(key)
        if found is None:
            found = customers.resolve_key(journey, key)
            if found is not None and len(self.customers) < self.size * 4:
                self.customers[key] = found
        return found

    def view(self, journey: Journey, customer_id: str) -> View:
        """The customer's view state (built from their rows, not rendered); shared, read-only."""
        view = self.views.get(customer_id)
        if view is not None:
            self.views.move_to_end(customer_id)
            return view
        view = self.raw.pop(customer_id, None)
        if view is None:
            view = customers.stored_view(journey, customer_id)
        self.views[customer_id] = view
        if len(self.views) > self.size:
            self.views.popitem(last=False)
        return view

    def timeline(self, journey: Journey, customer_id: str) -> list[dict[str, Any]]:
        """The customer's whole timeline, oldest first; shared: callers must not change it."""
        events = self.timelines.get(customer_id)
        if events is None:
            events = customers.timeline(journey, customer_id)
            self.timelines[customer_id] = events
            if len(self.timelines) > self.size:
                self.timelines.popitem(last=False)
        else:
            self.timelines.move_to_end(customer_id)
        return events


class RequestTooLarge(ValueError):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"the request has {size:,} bytes or more; at most {limit:,} "
                         f"({limit // (1024 * 1024)} MiB) are read (use journey append for files)")
        self.size = size
        self.limit = limit


async def read_body(request: Request, limit: int = DEFAULT_LIMITS.max_request_bytes) -> bytes:
    """The request's body, refused (:class:`RequestTooLarge`) as soon as it passes ``limit``.

    A declared ``Content-Length`` over the limit is refused before reading anything; a body
    sent in chunks is read only up to the limit, so no request can fill the server's memory.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise RequestTooLarge(int(declared), limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestTooLarge(size, limit)
        chunks.append(chunk)
    return b"".join(chunks)


class _RepeatedKeys(dict[str, Any]):
    """An object of a request body in which ``key`` was written more than once."""

    key = ""


def _mark_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    marked = _RepeatedKeys(obj)
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            marked.key = key
            break
        seen.add(key)
    return marked


def repeated_keys(body: bytes, items: Sequence[Any]) -> dict[int, str]:
    """Facts of a request (``items``, parsed from ``body``) that write a key twice in one object.

    orjson keeps the last of repeated keys; which value the sender meant is unknown, so such a
    fact is rejected naming the key (as ``journey append`` rejects such a line). The body is
    parsed a second time only when a count over its text says a key may repeat.
    """
    if not may_repeat_keys(body, _count_keys(items)):
        return {}
    try:
        again = json.loads(body, object_pairs_hook=_mark_repeats)
    except (ValueError, RecursionError):
        # Readable by orjson (1,024 levels) but not here (about 1,000): every fact of such a
        # body is judged without this check, and the deep one is refused by the limits.
        return {}
    found: dict[int, str] = {}
    for index, item in enumerate(again if isinstance(again, list) else [again]):
        key = _first_repeat(item)
        if key is not None:
            found[index] = repeated_reason(key)
    return found


def _count_keys(value: Any) -> int:
    count = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            count += len(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return count


def _first_repeat(value: Any) -> str | None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, _RepeatedKeys):
            return item.key
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None
