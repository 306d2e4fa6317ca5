"""JSON Lines -> ledger: parse, validate, record in batches; a bad line never takes its neighbours.

Every line is judged alone. A line that is not JSON, or breaks the contract or its limits
(domain/limits.py), or is refused by the ledger's state, is reported with its line number and
a reason a person understands; all the others are recorded. The input can be re-run whole
after fixing it: recorded facts come back as duplicates (their ``(source, id)`` is the
idempotency key) and nothing doubles.

Files are read as spreadsheets and old systems write them: a UTF-8 byte order mark at the start
of a line (of the first, usually) is ignored, and a line ends at ``\\r\\n``, ``\\n`` or a lone
``\\r``.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import chain, islice
from typing import IO, Any

import orjson

from consumers import parse_pool
from consumers.parse_pool import ParseStageFailed
from domain import catalogue, schemas
from domain.errors import InvalidFact
from domain.limits import DEFAULT_LIMITS, Limits, check_tree, limits_from
from ledger.writer import BatchResult, Ledger, RecordingClock, Rejection

log = logging.getLogger(__name__)

#: Facts per store transaction. One save per event runs at ~1-2k/s; thousands per save are
#: an order of magnitude faster. 10,000 rather than 2,000: each transaction reads the index
#: rows of its facts in a few bulk queries and dirties each page of the random-keyed index
#: B-trees once for several inserts, so a 200k append took a quarter to a third less CPU and
#: wall clock (docs/decisions.md); a batch is still small enough to redo after a conflict
#: (about a second of work, and one that keeps conflicting is recorded in halves).
DEFAULT_BATCH = 10_000

#: Bytes of an over-long line kept in the rejects file: enough to find it in the source.
REJECT_TEXT_BYTES = 1024
#: Bytes read at a time by :func:`read_lines`.
READ_CHUNK = 1 << 20

BOM = b"\xef\xbb\xbf"

Line = bytes | str


@dataclass(frozen=True, slots=True)
class OverlongLine:
    """A line longer than any fact may be: only its first bytes were kept, and its length."""

    head: bytes
    size: int


@dataclass(frozen=True, slots=True)
class RefusedFact:
    """A fact handed over as a Python value that could not even be written as a JSON line
    (nested past the store encoder's depth, an integer beyond 64 bits): a rejected fact."""

    reason: str


def as_line(item: object) -> bytes | RefusedFact:
    """A fact given as a Python value (the API's, ``Journey.record``'s) as the JSON line
    ``journey append`` would read, or why it cannot be one."""
    try:
        # Before encoding, not only when encoding fails: orjson writes a NaN or an infinity as
        # null without a word, and the line read back would no longer say what was sent.
        check_tree(item)
        return orjson.dumps(item)
    except InvalidFact as error:
        return RefusedFact(str(error))
    except (TypeError, ValueError, RecursionError) as error:  # whatever the bounds missed
        return RefusedFact(f"cannot be written as JSON ({error})")


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


# ---------------------------------------------------------------------------- configuration


def configured_limits(earliest: str | None = None, latest: str | None = None) -> Limits:
    """The contract's limits with the instant range the ledger is configured with: ``earliest``
    and ``latest`` as written in its settings (``JOURNEY_EARLIEST`` / ``JOURNEY_LATEST``, read by
    journey/config.py), None for the contract's own bound.

    A setting that cannot be read raises :class:`InvalidFact` naming it, which
    :func:`fact_parser` gives as every fact's reason: the ledger accepts nothing rather than
    facts judged against bounds nobody meant.
    """
    return _limits(earliest, latest)


@lru_cache(maxsize=8)
def _limits(earliest: str | None, latest: str | None) -> Limits:
    if earliest is None and latest is None:
        return DEFAULT_LIMITS
    try:
        return limits_from(earliest, latest)
    except ValueError as error:
        raise InvalidFact(f"the ledger's configuration JOURNEY_EARLIEST/JOURNEY_LATEST: {error}; "
                          "no fact is accepted until it is fixed") from None


# ---------------------------------------------------------------------------- lines


def read_lines(handle: IO[bytes], limit: int | None = None) -> Iterator[bytes | OverlongLine]:
    """The lines of a binary file, without their line ends, read in chunks.

    A line ends at ``\\r\\n``, ``\\n`` or a lone ``\\r`` (universal newlines). A line longer
    than ``limit`` bytes (default: the largest fact) is not held in memory: it comes as an
    :class:`OverlongLine` with its first bytes, so a file that is one huge line is refused
    instead of exhausting memory.
    """
    limit = DEFAULT_LIMITS.max_fact_bytes if limit is None else limit
    pending = b""
    overlong: OverlongLine | None = None
    skip_lf = False
    while chunk := handle.read(READ_CHUNK):
        if skip_lf and chunk.startswith(b"\n"):
            chunk = chunk[1:]  # the \n of a \r\n cut in two by the reads
        buffer = pending + chunk
        skip_lf = False
        if b"\r" in buffer:
            skip_lf = buffer.endswith(b"\r")
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        parts = buffer.split(b"\n")
        pending = parts.pop()
        if overlong is not None:
            if not parts:
                overlong = OverlongLine(overlong.head, overlong.size + len(pending))
                pending = b""
                continue
            yield OverlongLine(overlong.head, overlong.size + len(parts[0]))
            overlong = None
            parts = parts[1:]
        for part in parts:
            yield part if len(part) <= limit else OverlongLine(part[:REJECT_TEXT_BYTES], len(part))
        if len(pending) > limit:
            overlong = OverlongLine(pending[:REJECT_TEXT_BYTES], len(pending))
            pending = b""
    if overlong is not None:
        yield overlong
    elif pending:
        yield pending


def split_lines(lines: Iterable[Line | OverlongLine | RefusedFact]
                ) -> Iterator[Line | OverlongLine | RefusedFact]:
    """The logical lines of ``lines`` as a file object or a list gives them.

    A file object iterated in binary mode splits at ``\\n`` only; here a line's own ``\\r\\n``
    or ``\\n`` is dropped and a lone ``\\r`` inside it ends a line too, so a file written
    with CR-only line ends reads as the lines a spreadsheet shows.
    """
    for raw in lines:
        if isinstance(raw, OverlongLine | RefusedFact):
            yield raw
            continue
        if isinstance(raw, bytes):
            if raw.endswith(b"\n"):
                raw = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1]
            if b"\r" in raw:
                yield from raw.removesuffix(b"\r").split(b"\r")
                continue
        else:
            if raw.endswith("\n"):
                raw = raw[:-2] if raw.endswith("\r\n") else raw[:-1]
            if "\r" in raw:
                yield from raw.removesuffix("\r").split("\r")
                continue
        yield raw


# ---------------------------------------------------------------------------- one fact


def parse_line(raw: Line, limits: Limits = DEFAULT_LIMITS) -> catalogue.Fact:
    """One line of input as a validated fact; raises InvalidFact with a readable reason.

    Nothing else escapes: whatever a hostile line makes the parser or the checks raise is
    reported as that line's reason, so one line can never take its neighbours with it.
    """
    try:
        return _parse(raw, limits)
    except InvalidFact:
        raise
    except Exception as error:  # a check that broke: the line is refused, never the batch
        raise InvalidFact(f"could not be checked ({type(error).__name__}: {str(error)[:200]})") from None


#: What every door (``journey append``, ``Journey.record``, the API, the Kafka ingest, a
#: dead-letter replay) judges a line with: :func:`fact_parser` for the ledger's settings.
FactParser = Callable[[Line], catalogue.Fact]


def fact_parser(earliest: str | None = None, latest: str | None = None) -> FactParser:
    """:func:`parse_line` with the limits of :func:`configured_limits`, worked out once.

    The composition root builds it from the settings and hands it to every door, so each judges
    facts by the same bounds. When the settings cannot be read, every line is rejected with
    the reason.
    """
    return ConfiguredParser(earliest, latest)


class ConfiguredParser:
    """The parser :func:`fact_parser` gives: a function of the line, built once from the
    settings' instant range, and pickled as that range, so the parse process of a long append
    (consumers/parse_pool.py) builds the very same parser on its side."""

    __slots__ = ("_parse", "earliest", "latest")

    def __init__(self, earliest: str | None = None, latest: str | None = None) -> None:
        self.earliest = earliest
        self.latest = latest
        self._parse = _configured(earliest, latest)

    def __call__(self, raw: Line) -> catalogue.Fact:
        return self._parse(raw)

    def __reduce__(self) -> tuple[type[ConfiguredParser], tuple[str | None, str | None]]:
        return ConfiguredParser, (self.earliest, self.latest)


def _configured(earliest: str | None, latest: str | None) -> FactParser:
    try:
        limits = configured_limits(earliest, latest)
    except InvalidFact as misconfigured:
        reason = str(misconfigured)

        def refuse(raw: Line) -> catalogue.Fact:
            raise InvalidFact(reason)
        return refuse
    judge = schemas.compiled(limits).judge
    most = limits.max_fact_bytes

    def parse(raw: Line) -> catalogue.Fact:
        # The common line (bytes, within the size bound, no byte order mark) goes straight to
        # the fast path: each call in between costs a tenth of a microsecond.
        if type(raw) is bytes and len(raw) <= most and not raw.startswith(BOM):
            try:
                return judge(raw, may_repeat_keys)
            except Exception:  # refused or unsure: the Python validator says why, or accepts it
                pass
        return parse_line(raw, limits)
    return parse


def strip_bom(raw: Line) -> Line:
    """``raw`` without a leading UTF-8 byte order mark (spreadsheets and Windows tools write one)."""
    if isinstance(raw, bytes):
        return raw[3:] if raw.startswith(BOM) else raw
    return raw[1:] if raw.startswith("\ufeff") else raw


def _parse(raw: Line, limits: Limits) -> catalogue.Fact:
    size = len(raw) if isinstance(raw, bytes) else len(raw.encode("utf-8", "surrogatepass"))
    if size > limits.max_fact_bytes:
        raise InvalidFact(too_long(size, limits))
    raw = strip_bom(raw)
    fast = _fast(raw, limits)
    return fast if fast is not None else validate_text(raw, limits)


def validate_text(raw: Line, limits: Limits = DEFAULT_LIMITS) -> catalogue.Fact:
    """One line (within the size bound, without a byte order mark) judged by the Python
    validator alone: the reference whose facts and reasons the fast path must agree with."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise InvalidFact(_not_json(raw, error)) from None
    keys = check_tree(value, limits)
    if may_repeat_keys(raw, keys):
        repeated = repeated_key(raw)
        if repeated is not None:
            raise InvalidFact(repeated_reason(repeated))
    return catalogue.validate_checked(value, limits)


def _fast(raw: Line, limits: Limits) -> catalogue.Fact | None:
    """The fact as the compiled fast path (domain/schemas.py) judges it, or None when the
    Python validator must judge the line: the fast path gives no reasons, so a line it
    refuses or doubts (any exception, a key the text may write twice) is judged again there,
    and its reason is the one it always was."""
    try:
        return schemas.compiled(limits).judge(raw, may_repeat_keys)
    except Exception:  # refused or unsure: the Python validator says why, or accepts it
        return None


def _not_json(raw: Line, error: orjson.JSONDecodeError) -> str:
    if isinstance(raw, bytes):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as bad:
            return (f"not UTF-8 text (byte 0x{raw[bad.start]:02x} at byte {bad.start + 1}); "
                    "facts are JSON in UTF-8: save the file as UTF-8")
    return f"not valid JSON ({error})"


def repeated_reason(key: str) -> str:
    shown = key if len(key) <= 80 else f"{key[:80]}..."
    return f"{shown}: the key appears more than once in one object (which value is meant?)"


def too_long(size: int, limits: Limits) -> str:
    return (f"{size:,} bytes; a fact is at most {limits.max_fact_bytes:,} bytes "
            f"({limits.max_fact_bytes // 1024} KiB), so it was not read")


def may_repeat_keys(raw: Line, keys: int) -> bool:
    """False only when the text certainly writes each of its ``keys`` object keys once.

    With whitespace taken out, every key written in the text is followed by ``":``, and so
    is nothing else except an escaped quote before a colon or a string value starting with
    one. The count of ``":`` is therefore at least the keys written; when it equals the
    keys the parser kept, none was written twice (and none was set aside: the compiled fast
    path counts the keys it decoded). Only otherwise (rare) is the text parsed
    again keeping every key (:func:`repeated_key`). Two passes over the bytes cost about a
    microsecond a line; parsing every line twice would cost five.
    """
    data = raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogatepass")
    return data.translate(None, b" \t\n\r").count(b'":') != keys


class _Repeated(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _refuse_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Repeated(key)
            seen.add(key)
    return obj


def repeated_key(raw: Line) -> str | None:
    """The first key written twice in one object of ``raw`` (valid JSON), or None."""
    try:
        json.loads(raw, object_pairs_hook=_refuse_repeats)
    except _Repeated as repeated:
        return repeated.key
    return None


# ---------------------------------------------------------------------------- many facts


def ingest(
    ledger: Ledger,
    lines: Iterable[Line | OverlongLine | RefusedFact],
    batch_size: int = DEFAULT_BATCH,
    on_progress: Callable[[IngestSummary], None] | None = None,
    parse: FactParser | None = None,
    clock: RecordingClock | None = None,
    *,
    workers: int | None = None,
) -> IngestSummary:
    """Record ``lines``; ``parse`` judges each (default: the contract's own limits; the ledger's
    doors pass :func:`fact_parser` of their settings). ``clock`` (line number -> instant) is
    for a loader that knows when each line was recorded (the demo); no door passes one.

    ``workers``: 0 judges every line in this process; 1 (or more: the writer keeps one busy)
    in a parse process (consumers/parse_pool.py), which needs :func:`fact_parser`'s parser;
    None (the doors) decides by reading ahead: a parse process when there is a second core and
    more than one batch of input. Either way the summary and the store are the same. A parse
    process that dies raises :class:`ParseStageFailed`; the batches recorded before are kept.
    """
    summary = IngestSummary()
    started = time.monotonic()
    texts: dict[int, Line] = {}  # each fact's line, decoded only for a rejection
    batch: list[tuple[int, catalogue.Fact]] = []
    contents: list[bytes] = []
    known = True  # every fact of the batch came with its content bytes

    def flush() -> None:
        nonlocal known
        result = ledger.append(batch, clock=clock, contents=contents if known and contents else None)
        _account(summary, result, texts)
        batch.clear()
        texts.clear()
        contents.clear()
        known = True
        summary.seconds = time.monotonic() - started
        if on_progress is not None:
            on_progress(summary)

    parse = parse or fact_parser()
    try:
        for judged in _judged(enumerate(split_lines(lines), start=1), parse, batch_size, workers):
            summary.lines += 1
            if isinstance(judged, RejectedLine):
                summary.rejected.append(judged)
                continue
            number, fact, content, raw = judged
            batch.append((number, fact))
            texts[number] = raw
            if content is None:
                known = False
            elif known:
                contents.append(content)
            if len(batch) >= batch_size:
                flush()
    except ParseStageFailed as failed:
        raise ParseStageFailed(f"{failed}; the {summary.recorded:,} facts recorded until then are "
                               "kept: append the same input again to record the rest") from None
    if batch:
        flush()
    summary.rejected.sort(key=lambda r: r.line)
    summary.seconds = time.monotonic() - started
    return summary


#: A line as judged, in input order: rejected with its reason, or its number, fact, content
#: bytes (None: the writer works them out) and line (its text, should the writer reject it).
Judged = RejectedLine | tuple[int, catalogue.Fact, bytes | None, Line]
Numbered = tuple[int, Line | OverlongLine | RefusedFact]


def _judged(items: Iterator[Numbered], parse: FactParser, batch_size: int,
            workers: int | None) -> Iterator[Judged]:
    """The lines judged here or in a parse process (``workers``: see :func:`ingest`)."""
    if workers == 0:
        return _judge_here(items, parse)
    if not isinstance(parse, ConfiguredParser):
        if workers is None:
            return _judge_here(items, parse)
        raise ValueError("a parse process judges with fact_parser()'s parser only (it is sent as "
                         "its settings); pass workers=0 to judge with another one here")
    if workers is None:
        ahead = list(islice(items, max(batch_size, parse_pool.FROM_LINES) + 1))
        items = chain(ahead, items)
        if not parse_pool.wanted(len(ahead), batch_size):
            return _judge_here(items, parse)
    try:
        process = parse_pool.ParseProcess(parse)
    except OSError as error:  # no process to be had (out of memory, of processes): judged here
        log.warning("could not start a parse process (%s): the lines are judged in this one", error)
        return _judge_here(items, parse)
    return _judge_there(items, process, parse, batch_size)


def _judge_here(items: Iterable[Numbered], parse: FactParser) -> Iterator[Judged]:
    return _each(items, lambda raw: (parse(raw), None))


def _each(items: Iterable[Numbered],
          judge: Callable[[Line], tuple[catalogue.Fact, bytes | None]]) -> Iterator[Judged]:
    """Each line as judged, in order: cut off, refused before, blank (skipped), or ``judge``'s
    fact and content bytes (it raises :class:`InvalidFact` for a line it refuses). One walk
    for the lines judged here and for the verdicts of a parse process."""
    for number, raw in items:
        if isinstance(raw, OverlongLine):
            yield _overlong(number, raw)
        elif isinstance(raw, RefusedFact):
            yield RejectedLine(number, raw.reason, "")
        elif raw.strip():
            try:
                fact, content = judge(raw)
            except InvalidFact as error:
                yield RejectedLine(number, str(error), reject_text(raw))
                continue
            yield number, fact, content, raw


def _judge_there(items: Iterator[Numbered], process: parse_pool.ParseProcess, parse: FactParser,
                 batch_size: int) -> Iterator[Judged]:
    """The lines judged by a parse process, a bounded number of chunks ahead of the writer.

    Until the process has started, the lines are judged here, a chunk at a time (the first
    lines of a long append come no later than without it)."""
    with process:
        chunks = _chunks(items)
        early: list[Judged] = []
        sent: deque[list[Numbered]] = deque()
        limit = parse_pool.in_flight(batch_size)
        for chunk in chunks:
            if process.ready() or len(early) >= limit * parse_pool.CHUNK_LINES:
                process.send(_to_judge(chunk))
                sent.append(chunk)
                break
            early.extend(_judge_here(chunk, parse))
        while len(sent) < limit and (ahead := next(chunks, None)) is not None:
            # The process works on these while the early lines are written.
            process.send(_to_judge(ahead))
            sent.append(ahead)
        yield from early
        del early
        while sent:
            facts, extras = process.receive()
            chunk = sent.popleft()
            more = next(chunks, None)
            if more is not None:
                process.send(_to_judge(more))
                sent.append(more)
            yield from _merged(chunk, facts, extras)


def _chunks(items: Iterator[Numbered]) -> Iterator[list[Numbered]]:
    while chunk := list(islice(items, parse_pool.CHUNK_LINES)):
        yield chunk


def _to_judge(chunk: list[Numbered]) -> list[Line]:
    """The lines of a chunk a parser judges (not those cut off, refused before, or blank)."""
    return [raw for _, raw in chunk
            if not isinstance(raw, OverlongLine | RefusedFact) and raw.strip()]


def _merged(chunk: list[Numbered], facts: list[catalogue.Fact | None], extras: list[bytes | str | None]
            ) -> Iterator[Judged]:
    """A chunk's lines with the parse process's verdicts, as :func:`_judge_here` gives them."""
    verdicts = iter(zip(facts, extras, strict=True))

    def verdict(raw: Line) -> tuple[catalogue.Fact, bytes | None]:
        fact, extra = next(verdicts)
        if fact is None:
            raise InvalidFact(str(extra))
        return fact, extra if isinstance(extra, bytes) else None

    return _each(chunk, verdict)


def _text(raw: Line) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw


def reject_text(raw: Line) -> str:
    """A rejected line as the rejects file keeps it: whole, unless too long to be a fact."""
    data = raw if isinstance(raw, bytes) else raw.encode("utf-8", "replace")
    if len(data) > DEFAULT_LIMITS.max_fact_bytes:
        return _cut(data[:REJECT_TEXT_BYTES], len(data))
    return data.decode("utf-8", "replace")


def _overlong(number: int, line: OverlongLine) -> RejectedLine:
    return RejectedLine(number, too_long(line.size, DEFAULT_LIMITS), _cut(line.head, line.size))


def _cut(head: bytes, size: int) -> str:
    return (head[:REJECT_TEXT_BYTES].decode("utf-8", "ignore")
            + f" [... cut: the line has {size:,} bytes, only the first {REJECT_TEXT_BYTES:,} are kept]")


def _account(summary: IngestSummary, result: BatchResult, texts: dict[int, Line]) -> None:
    summary.recorded += result.recorded
    summary.duplicates += result.duplicates
    summary.derived += result.derived
    for rejection in result.rejected:
        summary.rejected.append(_rejected(rejection, texts))


def _rejected(rejection: Rejection, texts: dict[int, Line]) -> RejectedLine:
    raw = texts.get(rejection.line)
    return RejectedLine(rejection.line, rejection.reason, "" if raw is None else _text(raw))
