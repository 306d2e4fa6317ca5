"""JSON Lines -> ledger: parse, validate, record in batches; a bad line never takes its neighbours.

Every line is judged alone. A line that is not JSON, or breaks the contract, or is refused by
the ledger's state, is reported with its line number and a reason a person understands; all
the others are recorded. The input can be re-run whole after fixing it: recorded facts come
back as duplicates (their ``(source, id)`` is the idempotency key) and nothing doubles.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import orjson

from domain import catalogue
from domain.errors import InvalidFact
from ledger.writer import BatchResult, Ledger, Rejection

#: Facts per store transaction. One save per event runs at ~1-2k/s; thousands per save are
#: an order of magnitude faster, and a batch is small enough to redo after a conflict.
DEFAULT_BATCH = 2000


@dataclass(slots=True)
class RejectedLine:
    line: int
    reason: str
    text: str


@dataclass(slots=True)
class IngestSummary:
    lines: int = 0
    recorded: int = 0
    duplicates: int = 0
    derived: int = 0
    rejected: list[RejectedLine] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.lines / self.seconds if self.seconds > 0 else 0.0


def parse_line(raw: bytes | str) -> catalogue.Fact:
    """One line of input as a validated fact; raises InvalidFact with a readable reason."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise InvalidFact(f"not valid JSON ({error})") from None
    return catalogue.validate(value)


def ingest(
    ledger: Ledger,
    lines: Iterable[bytes | str],
    batch_size: int = DEFAULT_BATCH,
    on_progress: Callable[[IngestSummary], None] | None = None,
) -> IngestSummary:
    summary = IngestSummary()
    started = time.monotonic()
    texts: dict[int, str] = {}
    batch: list[tuple[int, catalogue.Fact]] = []

    def flush() -> None:
        result = ledger.append(batch)
        _account(summary, result, texts)
        batch.clear()
        texts.clear()
        summary.seconds = time.monotonic() - started
        if on_progress is not None:
            on_progress(summary)

    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        summary.lines += 1
        try:
            batch.append((number, parse_line(raw)))
            texts[number] = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        except InvalidFact as error:
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
            summary.rejected.append(RejectedLine(number, str(error), text.rstrip("\r\n")))
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    summary.rejected.sort(key=lambda r: r.line)
    summary.seconds = time.monotonic() - started
    return summary


def _account(summary: IngestSummary, result: BatchResult, texts: dict[int, str]) -> None:
    summary.recorded += result.recorded
    summary.duplicates += result.duplicates
    summary.derived += result.derived
    for rejection in result.rejected:
        summary.rejected.append(_rejected(rejection, texts))


def _rejected(rejection: Rejection, texts: dict[int, str]) -> RejectedLine:
    return RejectedLine(rejection.line, rejection.reason, texts.get(rejection.line, "").rstrip("\r\n"))
