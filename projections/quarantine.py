"""Facts a reader set aside because it cannot handle them, so that it can go on with the rest.

One stored fact the readers cannot decode or fold must not stop every reader at its position
for good. The projection writes each such fact's entry (its position, event id, stream, the
reader and a reason a person understands) into its ``quarantine`` table in the same DuckDB
transaction as the position that moves past it: a crash neither loses an entry nor writes one
twice, and a restart resumes after it without meeting the fact again. The customer's view is
built without the fact and lists its position under ``quarantined``; ``journey quarantine
retry`` folds it in once the code or an upcaster can read it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import duckdb
import orjson
from eventsourcing.persistence import Notification

from ledger.application import JourneyApplication, StoredFact, decode_notifications
from projections import readable

#: The reader of the embedded projection (``projections.duckdb``).
PROJECTION = "projection"

SCHEMA = """CREATE TABLE IF NOT EXISTS quarantine (
    position BIGINT PRIMARY KEY, reader VARCHAR NOT NULL, event_id VARCHAR, originator VARCHAR,
    customer_id VARCHAR, type VARCHAR, reason VARCHAR NOT NULL, quarantined_at TIMESTAMPTZ)"""

#: What a fact can make the fold, the rendering or the writing of rows raise. Anything else
#: (the disk is full, the process runs out of memory, an interrupt) is no fact's fault and
#: stops the reader, which then resumes where it was.
FACT_ERRORS: tuple[type[BaseException], ...] = (
    ValueError, TypeError, KeyError, IndexError, AttributeError, ArithmeticError, RecursionError,
    duckdb.DataError, duckdb.InvalidInputException, duckdb.ConversionException,
)


@dataclass(frozen=True, slots=True)
class Entry:
    position: int
    reader: str
    event_id: str | None
    originator: str | None
    customer_id: str | None
    type: str | None
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"position": self.position, "reader": self.reader, "event_id": self.event_id,
                "originator": self.originator, "customer_id": self.customer_id,
                "type": self.type, "reason": self.reason}


def entry_of(sf: StoredFact, reader: str, reason: str, customer_id: str | None) -> Entry:
    fact = sf.fact if isinstance(sf.fact, dict) else {}
    event_id, kind = fact.get("event_id"), fact.get("type")
    return Entry(position=sf.position, reader=reader,
                 event_id=event_id if isinstance(event_id, str) else None,
                 originator=str(sf.stream_id) if sf.stream_id is not None else None,
                 customer_id=customer_id, type=kind if isinstance(kind, str) else None,
                 reason=reason)


def failure(error: BaseException) -> str:
    """A reason for a fact whose fold raised: what raised, in one line."""
    text = str(error).splitlines()[0] if str(error) else ""
    return f"applying it failed: {type(error).__name__}{': ' + text[:200] if text else ''}"


def decode(app: JourneyApplication, notifications: Sequence[Notification]) -> list[StoredFact]:
    """The entries as facts, as ``decode_notifications`` gives them, with a stand-in
    (:func:`readable.undecodable`) for each one that cannot be decoded or is too big to try:
    the batch keeps every position, and the reader quarantines the stand-ins."""
    if not any(len(n.state) > readable.MAX_FACT_BYTES * 2 for n in notifications):
        try:
            return decode_notifications(app, notifications)
        except Exception:  # any entry's fault: found one by one below
            pass
    return [_decode_one(app, n) for n in notifications]


def _decode_one(app: JourneyApplication, n: Notification) -> StoredFact:
    size = len(n.state)
    if size > readable.MAX_FACT_BYTES * 2:  # encrypted and encoded: at most about twice the fact
        return readable.undecodable(n.id, n.originator_id, n.originator_version,
                                    f"{size:,} bytes stored, over the "
                                    f"{readable.MAX_FACT_BYTES:,} a reader accepts")
    try:
        [sf] = decode_notifications(app, [n])
    except orjson.JSONDecodeError as error:
        reason = f"cannot be decoded: the stored state is not JSON ({error})"
    except KeyError as error:
        reason = f"cannot be decoded: the stored state has no {error}"
    except Exception as error:  # whatever the stored bytes make the decoder raise
        reason = f"cannot be decoded: {type(error).__name__}: {str(error)[:200]}"
    else:
        return sf
    return readable.undecodable(n.id, n.originator_id, n.originator_version, reason)


def readable_history_of(app: JourneyApplication) -> Callable[[str], list[StoredFact]]:
    """One customer's facts from the event store, in log order, without those the readers
    cannot handle: what a projection folds when it rebuilds a record (an unmerge, a merge
    whose other half lives elsewhere). The log itself quarantines them where they stand."""
    def history(customer_id: str) -> list[StoredFact]:
        facts = decode(app, app.index.facts_of(UUID(customer_id)))
        return [sf for sf in facts if readable.problem(sf) is None]
    return history


def load(con: duckdb.DuckDBPyConnection, limit: int | None = None,
         newest_first: bool = False) -> list[Entry]:
    sql = ("SELECT position, reader, event_id, originator, customer_id, type, reason FROM quarantine "
           f"ORDER BY position {'DESC' if newest_first else 'ASC'}")
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return [Entry(*row) for row in con.execute(sql).fetchall()]


def count(con: duckdb.DuckDBPyConnection) -> int:
    return int(con.execute("SELECT count(*) FROM quarantine").fetchall()[0][0])


#: Entries ``journey status`` shows (the newest); ``journey quarantine`` lists them all.
LATEST_SHOWN = 5


def status(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """The quarantine's part of a status: how many facts, and the newest entries."""
    return {"quarantined": count(con),
            "quarantine_latest": [e.to_json() for e in load(con, LATEST_SHOWN, newest_first=True)]}
