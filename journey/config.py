"""Configuration: flags first, then environment, then the embedded defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_HOME = ".journey"


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    #: "sqlite" (embedded default, a file in data_dir) or "postgres" (JOURNEY_POSTGRES_URL).
    store: str = "sqlite"
    postgres_url: str | None = None
    kafka_bootstrap: str = "127.0.0.1:9092"
    #: Every recorded event, key = customer id (the relay's output).
    events_topic: str = "journey.events"
    #: Raw facts from channels that speak Kafka (the ingest consumer's input).
    touchpoints_topic: str = "journey.touchpoints"
    dlq_topic: str = "journey.touchpoints.dlq"
    partitions: int = 4
    #: The customer-views change feed (consumers/view_feed.py): compacted, key = customer id.
    views_topic: str = "journey.customer-views"
    #: Publish it from `journey serve` too (env JOURNEY_VIEW_FEED=1); `journey feed` always does.
    view_feed: bool = False

    @classmethod
    def load(cls, data_dir: str | None = None) -> Settings:
        env = os.environ
        home = Path(data_dir or env.get("JOURNEY_HOME") or DEFAULT_HOME)
        return cls(
            data_dir=home,
            store=env.get("JOURNEY_STORE", "sqlite"),
            postgres_url=env.get("JOURNEY_POSTGRES_URL"),
            kafka_bootstrap=env.get("KAFKA_BOOTSTRAP", cls.kafka_bootstrap),
            events_topic=env.get("JOURNEY_EVENTS_TOPIC", cls.events_topic),
            touchpoints_topic=env.get("JOURNEY_TOUCHPOINTS_TOPIC", cls.touchpoints_topic),
            dlq_topic=env.get("JOURNEY_DLQ_TOPIC", cls.dlq_topic),
            partitions=int(env.get("JOURNEY_PARTITIONS", cls.partitions)),
            views_topic=env.get("JOURNEY_VIEWS_TOPIC", cls.views_topic),
            view_feed=env.get("JOURNEY_VIEW_FEED", "").strip().lower() in {"1", "true", "yes", "on"},
        )

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "ledger.sqlite"

    @property
    def duckdb_path(self) -> Path:
        return self.data_dir / "projections.duckdb"

    @property
    def partitions_dir(self) -> Path:
        """Projections fed from Kafka: one DuckDB file per partition of the events topic."""
        return self.data_dir / "partitions"

    @property
    def rejects_dir(self) -> Path:
        return self.data_dir / "rejects"
