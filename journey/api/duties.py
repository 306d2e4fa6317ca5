"""Work the server does on its own, every few seconds, between requests.

Each duty is ``tick(journey) -> None``, called by one background thread of ``journey serve``
under the same lock as the requests (DuckDB connections are not thread-safe, and the server's
process is the only one that may hold the projections file). A duty must be quick (it delays
the requests waiting behind it) and must not raise to stop the others: an exception is logged
on ``journey.api.duties`` and the next tick calls the duty again.

Other modules add theirs here (Parquet snapshots for analysts, the change feed to Kafka).
"""

from __future__ import annotations

from collections.abc import Callable

from journey.analytics.snapshots import duty as export_snapshot
from journey.bootstrap import Journey
from journey.usecases.feed import ViewFeedDuty

DUTIES: list[Callable[[Journey], None]] = [export_snapshot, ViewFeedDuty()]
