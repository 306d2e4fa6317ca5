"""The customer-views change feed wired to a ledger: its broker, its topic, the server's duty.

consumers/view_feed.py knows what to publish and how, given a sink and the projections. Which
broker and topic (the settings, unless a command says otherwise), how long the server may wait
for the broker, and which feed a running server keeps between ticks are decided here, where the
:class:`~journey.system.System` and its settings are known.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from consumers.view_feed import (
    DEFAULT_CHUNK,
    TICK_ADMIN_CONFIG,
    TICK_CLOSE_TIMEOUT,
    TICK_PRODUCER_CONFIG,
    KafkaSink,
    ViewFeed,
    ensure_topic,
    tick,
)
from journey.config import Settings
from journey.system import System


def enabled(settings: Settings) -> bool:
    """The server's feed is opt-in (``JOURNEY_VIEW_FEED=1``): publishing needs a broker, and a
    ledger without one must not wait for it. ``journey feed`` always publishes."""
    return settings.view_feed


def kafka_feed(journey: System, bootstrap: str | None = None, topic: str | None = None,
               chunk: int = DEFAULT_CHUNK, producer_config: dict[str, Any] | None = None,
               admin_config: dict[str, Any] | None = None,
               after_flush: Callable[[int], None] | None = None, close_timeout: float = 30.0) -> ViewFeed:
    """The feed of ``journey``'s projections to its Kafka broker (settings unless given)."""
    settings = journey.settings
    servers = bootstrap or settings.kafka_bootstrap
    name = topic or settings.views_topic
    sink = KafkaSink(servers, name, dict(producer_config or {}), close_timeout=close_timeout)
    return ViewFeed(store=lambda: journey.projections, sink=sink, topic=name, chunk=chunk,
                    prepare=lambda: ensure_topic(servers, name, settings.partitions,
                                                 admin_config=admin_config),
                    after_flush=after_flush)


class ViewFeedDuty:
    """A duty of ``journey serve`` (journey/api/duties.py): publish what changed, if enabled.

    A no-op unless the settings enable the feed; otherwise :func:`consumers.view_feed.tick`
    on the feed this duty keeps for the System it serves (its producer and the attempt in
    flight live from one tick to the next). Given another System (the server opened the
    ledger again), it closes the old feed and starts one for the new System. :meth:`close`
    lets the producer go (the server's shutdown)."""

    def __init__(self) -> None:
        self._journey: System | None = None
        self._feed: ViewFeed | None = None

    def __call__(self, journey: System) -> None:
        if not enabled(journey.settings):
            return
        tick(self._feed_for(journey))

    def _feed_for(self, journey: System) -> ViewFeed:
        if self._feed is None or self._journey is not journey:
            self.close()
            self._feed = kafka_feed(journey, producer_config=TICK_PRODUCER_CONFIG,
                                    admin_config=TICK_ADMIN_CONFIG, close_timeout=TICK_CLOSE_TIMEOUT)
            self._journey = journey
        return self._feed

    def close(self) -> None:
        feed, self._feed, self._journey = self._feed, None, None
        if feed is not None:
            feed.close()

    def __repr__(self) -> str:  # how the server's log names a duty that failed
        return "publish_view_changes"
