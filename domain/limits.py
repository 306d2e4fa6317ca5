"""The bounds of the event contract, stated once: what a fact may hold so every reader can read it.

A fact is stored forever and read by every projection, replay and export afterwards. A value
that the parser accepts but a reader cannot handle (a year-1 instant that overflows when
converted to UTC, a warranty ending after year 9999, a value nested deeper than the store's
encoder goes, a 40 MB string that exhausts the projection's memory) would break every reader
from then on, so it is refused where facts come in, with a reason naming the field. These
bounds are wide enough for any real touchpoint and narrow enough that everything derived from
an accepted fact (UTC instants, warranty ends, due dates, the stored JSON) stays representable.

The checks here are pure: they take a :class:`Limits` value. ``DEFAULT_LIMITS`` is the
contract; the entrances may narrow or widen the instant range from configuration
(:func:`limits_from`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta

from domain.errors import InvalidFact

#: The largest integer every JSON reader holds exactly (IEEE 754 doubles: JavaScript, DuckDB's
#: JSON functions, spreadsheets); beyond it ids and amounts silently lose digits.
JSON_SAFE_INTEGER = 2**53 - 1


@dataclass(frozen=True, slots=True)
class Limits:
    """How much a fact may hold. Every field is one bound of the contract (docs/events.md)."""

    #: The earliest instant accepted (inclusive). 1900 is before any customer record a
    #: company holds (birthdays included) and far from year 1, where a negative UTC offset
    #: makes the UTC instant fall before the calendar's first day.
    earliest: datetime = datetime(1900, 1, 1, tzinfo=UTC)
    #: The latest instant accepted (inclusive). 2200 leaves room for long promises and
    #: warranties while every date derived from it (warranty ends, due dates) stays far from
    #: year 9999, where Python's dates end.
    latest: datetime = datetime(2200, 1, 1, tzinfo=UTC)
    #: The largest UTC offset, either way. ISO 8601 and java.time stop at 18 hours; real
    #: time zones span -12:00 to +14:00.
    max_offset: timedelta = timedelta(hours=18)
    #: Bytes of one fact as sent (one line, one message, one element of a request). A rich
    #: registration is about 1 KiB; 256 KiB leaves room for long notes while a batch of
    #: 2,000 facts stays within a projection's memory.
    max_fact_bytes: int = 256 * 1024
    #: Bytes of one request to ``POST /api/facts``: its 10,000 facts at most, of about 1 KiB
    #: each as sources send them, with room to spare. Larger loads are files for
    #: ``journey append``, which reads them line by line.
    max_request_bytes: int = 32 * 1024 * 1024
    #: Characters of any string value (a note, a social post, an e-mail subject).
    max_string: int = 64 * 1024
    #: Characters of ``id``, ``source``, ``department``, ``agent`` and of any object key: names,
    #: not text. Together with refusing control characters in ``source`` and ``id`` this keeps
    #: the idempotency key ``source`` + U+001F + ``id`` unambiguous.
    max_name: int = 512
    #: Levels of objects and lists from ``data`` down (``{"data": {"a": {"b": 1}}}`` is 2):
    #: an address is 2, the deepest the catalogue goes. The store's JSON encoder stops at 254
    #: levels; anything deep enough to get near is not a touchpoint.
    max_depth: int = 16
    #: Keys of one object.
    max_keys: int = 1024
    #: Items of one list.
    max_items: int = 10_000
    #: ``purchase.recorded`` ``warranty_months``: 100 years, longer than any lifetime
    #: guarantee, so the warranty end of a purchase on the latest instant stays a date.
    max_warranty_months: int = 1200
    #: ``call.*`` ``duration_s``: one day. No call lasts longer; a larger value is a unit
    #: mistake (milliseconds) or a line left open.
    max_duration_s: int = 86_400

    @property
    def earliest_date(self) -> date:
        return self.earliest.astimezone(UTC).date()

    @property
    def latest_date(self) -> date:
        return self.latest.astimezone(UTC).date()


DEFAULT_LIMITS = Limits()


def limits_from(earliest: str | None, latest: str | None, base: Limits = DEFAULT_LIMITS) -> Limits:
    """``base`` with its instant range set from configuration text (ISO 8601, with an offset).

    Raises ``ValueError`` naming the setting when a value is not an instant or the range is
    empty or reaches so far that derived dates would leave the calendar.
    """
    changes: dict[str, datetime] = {}
    for name, text in (("earliest", earliest), ("latest", latest)):
        if text is None or not text.strip():
            continue
        try:
            moment = datetime.fromisoformat(text.strip())
        except ValueError:
            raise ValueError(f"{name}: {text!r} is not an ISO 8601 instant "
                             "(like 1900-01-01T00:00:00+00:00)") from None
        if moment.tzinfo is None:
            raise ValueError(f"{name}: {text!r} has no UTC offset (like 1900-01-01T00:00:00+00:00)")
        if not date(1000, 1, 1) <= moment.date() <= date(9000, 1, 1):
            raise ValueError(f"{name}: {text!r} is outside 1000-01-01..9000-01-01, where readers "
                             "can still convert instants and add warranty months")
        changes[name] = moment.astimezone(UTC)
    limits = replace(base, **changes)  # type: ignore[arg-type]
    if limits.earliest >= limits.latest:
        raise ValueError(f"earliest {limits.earliest.isoformat()} is not before latest "
                         f"{limits.latest.isoformat()}")
    return limits


# ------------------------------------------------------------------------ instants and dates


def check_instant(moment: datetime, where: str, limits: Limits = DEFAULT_LIMITS) -> datetime:
    """``moment`` (aware) if it lies within the ledger's range with a plausible offset."""
    offset = moment.utcoffset()
    if offset is None:
        raise InvalidFact(f"{where}: {moment.isoformat()} has no UTC offset")
    whole_minutes = offset.seconds % 60 == 0 and not offset.microseconds
    if (whole_minutes and -limits.max_offset <= offset <= limits.max_offset
            and limits.earliest.year + 1 < moment.year < limits.latest.year - 1):
        return moment  # the common case, decided without comparing instants
    if abs(offset) > limits.max_offset:
        bound = _offset(limits.max_offset)[1:]
        raise InvalidFact(f"{where}: UTC offset {_offset(offset)} is beyond ±{bound} "
                          "(real time zones span -12:00 to +14:00)")
    if not whole_minutes:
        raise InvalidFact(f"{where}: UTC offset {_offset(offset)} is not a whole number of minutes")
    # Aware comparison never converts to UTC, so it cannot overflow at the calendar's edges.
    if moment < limits.earliest:
        raise InvalidFact(f"{where}: {moment.isoformat()} is before {_show(limits.earliest)}, "
                          "the earliest instant the ledger accepts")
    if moment > limits.latest:
        raise InvalidFact(f"{where}: {moment.isoformat()} is after {_show(limits.latest)}, "
                          "the latest instant the ledger accepts")
    return moment


def check_date(day: date, where: str, limits: Limits = DEFAULT_LIMITS) -> date:
    """``day`` if it lies within the dates of the ledger's instant range."""
    if day < limits.earliest_date:
        raise InvalidFact(f"{where}: {day.isoformat()} is before {limits.earliest_date.isoformat()}, "
                          "the earliest date the ledger accepts")
    if day > limits.latest_date:
        raise InvalidFact(f"{where}: {day.isoformat()} is after {limits.latest_date.isoformat()}, "
                          "the latest date the ledger accepts")
    return day


def _show(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _offset(offset: timedelta) -> str:
    sign = "-" if offset < timedelta(0) else "+"
    seconds = abs(offset).total_seconds()
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    text = f"{sign}{int(hours):02d}:{int(minutes):02d}"
    return text if not seconds else f"{text}:{seconds:09.6f}".rstrip("0").rstrip(".")


# ------------------------------------------------------------------------ names and values


def check_name(value: str, where: str, limits: Limits = DEFAULT_LIMITS) -> str:
    """A short identifying string (``id``, ``source``): no control characters, bounded length.

    Control characters are refused because nobody types them in an id and because the
    idempotency key joins ``source`` and ``id`` with U+001F: without one in either, no two
    different pairs give the same key.
    """
    if len(value) > limits.max_name:
        raise InvalidFact(f"{where}: {len(value):,} characters; at most {limits.max_name:,}")
    if not value.isprintable():
        bad = next((c for c in value if _is_control(c)), None)
        if bad is not None:
            raise InvalidFact(f"{where}: contains the control character U+{ord(bad):04X} "
                              f"at position {value.index(bad)}; ids and sources are printable text")
    return value


def _is_control(char: str) -> bool:
    code = ord(char)
    return code < 0x20 or 0x7F <= code < 0xA0


class _Violation(Exception):
    """A bound broken somewhere inside a value; ``path`` is filled in on the way out."""

    def __init__(self, message: str, where: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path: list[str] = [] if where is None else [where[:60]]


def check_tree(value: object, limits: Limits = DEFAULT_LIMITS) -> int:
    """Check a whole raw fact (its envelope and everything in it) against the size bounds.

    Strings, keys, lists, objects, nesting and numbers; the fact's envelope counts as one
    level above ``data``. Returns the number of object keys in the value, which a parser that
    keeps only the last of duplicate keys compares with the text to notice them.
    """
    try:
        return _walk(value, 0, limits)
    except _Violation as bad:
        where = "".join(part if part.startswith("[") else f".{part}" for part in reversed(bad.path))
        where = where.removeprefix(".")
        raise InvalidFact(f"{where}: {bad.message}" if where else bad.message) from None
    except RecursionError:
        raise InvalidFact(f"nested deeper than {limits.max_depth} levels") from None


def _walk(value: object, depth: int, limits: Limits) -> int:
    """The keys inside ``value``; scalars are checked in the loops (a call each costs more)."""
    if type(value) is dict:
        if depth > limits.max_depth:
            raise _Violation(f"nested deeper than {limits.max_depth} levels")
        if len(value) > limits.max_keys:
            raise _Violation(f"an object with {len(value):,} keys; at most {limits.max_keys:,}")
        keys = len(value)
        for key, item in value.items():
            if type(key) is not str or len(key) > limits.max_name:
                raise _Violation(_bad_key(key, limits))
            kind = type(item)
            if kind is str:
                if len(item) > limits.max_string:
                    raise _Violation(_long_string(item, limits), key)
            elif kind is dict or kind is list:
                try:
                    keys += _walk(item, depth + 1, limits)
                except _Violation as bad:
                    bad.path.append(key[:60])
                    raise
            elif item is not None and kind is not bool:
                _scalar(item, key)
        return keys
    if type(value) is list:
        if depth > limits.max_depth:
            raise _Violation(f"nested deeper than {limits.max_depth} levels")
        if len(value) > limits.max_items:
            raise _Violation(f"a list of {len(value):,} items; at most {limits.max_items:,}")
        keys = 0
        for index, item in enumerate(value):
            kind = type(item)
            if kind is str:
                if len(item) > limits.max_string:
                    raise _Violation(_long_string(item, limits), f"[{index}]")
            elif kind is dict or kind is list:
                try:
                    keys += _walk(item, depth + 1, limits)
                except _Violation as bad:
                    bad.path.append(f"[{index}]")
                    raise
            elif item is not None and kind is not bool:
                _scalar(item, f"[{index}]")
        return keys
    if type(value) is str:
        if len(value) > limits.max_string:
            raise _Violation(_long_string(value, limits))
        return 0
    if value is not None and type(value) is not bool:
        _scalar(value, None)
    return 0


def _scalar(value: object, where: str | None) -> None:
    """A number within the JSON-safe range; anything else is not a JSON value."""
    if type(value) is int:
        if -JSON_SAFE_INTEGER <= value <= JSON_SAFE_INTEGER:
            return
        raise _Violation(f"{value} is outside ±{JSON_SAFE_INTEGER:,} "
                         "(the integers every JSON reader holds exactly)", where)
    if type(value) is float:
        if not math.isfinite(value):
            raise _Violation(f"{value} is not a finite number", where)
        if abs(value) > JSON_SAFE_INTEGER:
            raise _Violation(f"{value!r} is outside ±{JSON_SAFE_INTEGER:,} (a number that large "
                             "is an integer the parser rounded, or no amount at all)", where)
        return
    raise _Violation(f"a {type(value).__name__} is not a JSON value", where)


def _long_string(value: str, limits: Limits) -> str:
    return f"a string of {len(value):,} characters; at most {limits.max_string:,}"


def _bad_key(key: object, limits: Limits) -> str:
    if type(key) is not str:
        return f"a key of type {type(key).__name__}"
    return f"a key of {len(key):,} characters ({key[:40]!r}...); at most {limits.max_name:,}"
