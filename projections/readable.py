"""What a stored fact must look like for the readers to handle it, checked before they fold it.

The door (``domain.catalogue.validate``) refuses bad input, but a reader cannot trust that
every stored fact passed it: older ledgers, another writer, a PostgreSQL store written by
hand. A fact the projections cannot fold, render or write would stop every reader at that
position, for good. :func:`problem` names what is wrong with such a fact in a sentence a
person understands, so the readers set it aside (projections/quarantine.py) and go on.

The checks are what the readers rely on, not the catalogue's contract: a fact that misses a
field only the door requires is still folded. They are cheap (a few dict look-ups and one
serialisation per fact), so the projection's fast path keeps its speed; whatever slips
through and raises later is isolated by redoing the batch (consumers/log_follower.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

import orjson

from domain import catalogue, personal
from ledger.application import StoredFact

#: The largest fact (as JSON) a reader accepts. Real touchpoints are a few KB; a fact of
#: megabytes is a fault that would be copied into every view, cache and export that holds it.
MAX_FACT_BYTES = 1_000_000
#: Nesting a view adds around a fact's data (view, section, entry, the API's document...): a
#: fact must still serialise with this many levels around it (orjson stops at 255 in all).
NESTING_MARGIN = 16
#: Instants (after conversion to UTC) the readers can compute with: a case's answer deadline,
#: a promise's due date and a warranty's end are computed from them, and DuckDB and Python's
#: ``datetime`` stop at years 1 and 9999. A "0001-01-01" or "9999-12-31" is a legacy
#: system's placeholder, never a moment a person was in touch.
EARLIEST = datetime(2, 1, 1, tzinfo=UTC)
LATEST = datetime(9900, 1, 1, tzinfo=UTC)
#: A stored fact that could not be decoded carries its reason under this key (see
#: :func:`undecodable`); nothing else in a fact can start with ``$undecodable``.
UNDECODABLE = "$undecodable"

_STRING_OR_NONE = (str, type(None))
#: Fields of ``data`` whose values land in the analysts' VARCHAR columns (events rows).
_TEXT_COLUMNS = ("purpose", "campaign", "case_id")
#: Per type, the ``data`` fields the folds and renderings index (they must be present) and
#: must be text: a missing one raises KeyError in a department's list, a non-text one breaks
#: a dictionary key or a VARCHAR column.
_NEEDED: dict[str, tuple[str, ...]] = {
    "customer.merged": ("from",),
    "customer.unmerged": ("from",),
    "identity.linked": ("kind", "value"),
    "identity.unlinked": ("kind", "value"),
    "consent.given": ("channel", "purpose"),
    "consent.withdrawn": ("channel", "purpose"),
    "promise.made": ("promise_id",),
    "promise.kept": ("promise_id",),
    "promise.broken": ("promise_id",),
    "contract.started": ("contract_id", "service"),
    "contract.ended": ("contract_id",),
    "social.mention": ("network", "text"),
    "warranty.claim_filed": ("claim_id",),
    "warranty.claim_decided": ("claim_id",),
    "case.transferred": ("case_id", "to"),
    "case.opened": ("case_id", "kind"),
}
_PROFILE_TEXT = ("name", "language", "timezone", "phone", "email", "twitter")
_ADDRESS_TEXT = ("street", "number", "postal_code", "city")


def problem(sf: StoredFact) -> str | None:
    """Why the readers cannot handle this fact, or None when they can."""
    fact = sf.fact
    if not isinstance(fact, dict):
        return f"the stored state holds {type(fact).__name__}, not a fact"
    if UNDECODABLE in fact:
        return str(fact[UNDECODABLE])
    try:
        return _envelope(sf, fact) or _data(fact) or _shape(fact)
    except (TypeError, ValueError, OverflowError, AttributeError, KeyError) as error:
        return f"unreadable fact ({type(error).__name__}: {error})"


def undecodable(position: int, stream_id: Any, version: int, reason: str) -> StoredFact:
    """A stand-in for a log entry that could not be decoded: it keeps the entry's place in the
    log, so a batch's positions stay whole, and :func:`problem` gives its reason."""
    return StoredFact(position=position, stream_id=stream_id, stream_version=version,
                      recorded_at=EARLIEST, fact={UNDECODABLE: reason})


def customer_of(sf: StoredFact) -> str | None:
    """The record a fact belongs to, when its envelope says so readably."""
    fact = sf.fact
    if not isinstance(fact, dict) or UNDECODABLE in fact:
        return None  # a stand-in's record is not known (the relay keys it by its stream)
    record = fact.get("customer_uuid")
    if not isinstance(record, str):
        return None
    try:
        UUID(record)
    except ValueError:
        return None
    return record


def describe(value: object) -> str:
    """What kind of value it is, never the value: a reason is shown to every operator and
    the value may be somebody's personal data."""
    if isinstance(value, str):
        return f"a text of {len(value)} characters"
    if isinstance(value, (list, dict)):
        return f"{'a list' if isinstance(value, list) else 'an object'} of {len(value)} items"
    return {bool: "a boolean", int: "a number", float: "a number", type(None): "null"}.get(
        type(value), f"a {type(value).__name__}")


def _envelope(sf: StoredFact, fact: dict[str, Any]) -> str | None:
    for name in ("customer_uuid", "event_id", "type", "source", "id", "occurred_at"):
        value = fact.get(name)
        if not isinstance(value, str) or not value:
            return f"{name} is {'missing' if value is None else describe(value)}, not text"
    kind = fact["type"]
    spec = catalogue.TYPES.get(kind)
    if spec is None:
        return f"unknown type {kind[:80]!r} (written by a newer version, or by hand)"
    version = fact.get("v", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        return f"type version {describe(version)} is not a version number"
    if version > spec.version:
        return f"{kind} version {version} is newer than this reader's ({spec.version})"
    if version < spec.version and any((kind, v) not in catalogue.UPCASTERS
                                      for v in range(version, spec.version)):
        return f"{kind} version {version} has no upcaster to version {spec.version}"
    if not isinstance(sf.recorded_at, datetime) or sf.recorded_at.tzinfo is None:
        return f"recorded_at {describe(sf.recorded_at)} is not an instant with an offset"
    reason = _instant(fact["occurred_at"], "occurred_at")
    if reason:
        return reason
    for name in ("department", "agent"):
        if not isinstance(fact.get(name), _STRING_OR_NONE):
            return f"{name} is {describe(fact[name])}, not text"
    customer = fact.get("customer")
    if not isinstance(customer, dict):
        return f"customer is {describe(customer)}, not an object of identities"
    for ident, value in customer.items():
        if not isinstance(value, _STRING_OR_NONE):
            return f"customer.{ident} is {describe(value)}, not text"
    if not isinstance(fact.get("data", {}), dict):
        return f"data is {describe(fact['data'])}, not an object"
    return None


def _instant(value: object, where: str) -> str | None:
    if not isinstance(value, str):
        return f"{where} is {describe(value)}, not an ISO 8601 instant"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return f"{where} {value[:40]!r} is not an ISO 8601 instant"
    if moment.tzinfo is None:
        return f"{where} {value!r} has no UTC offset"
    # An offset is less than a day: a local year in the range is a UTC year at its edges at
    # worst, and the conversion (half this check's cost) is needed only there.
    if EARLIEST.year < moment.year < LATEST.year - 1:
        return None
    try:
        utc = moment.astimezone(UTC)
    except OverflowError:
        return f"{where} {value} is outside the calendar once converted to UTC"
    if not EARLIEST <= utc < LATEST:
        return (f"{where} {value} is outside the years {EARLIEST.year}-{LATEST.year - 1} the "
                "readers compute with (a placeholder date?)")
    return None


def _data(fact: dict[str, Any]) -> str | None:
    kind: str = fact["type"]
    data: dict[str, Any] = (fact if fact.get("v", 1) == catalogue.TYPES[kind].version
                            else catalogue.upcast(fact)).get("data", {})
    needed = _NEEDED.get(kind, ("case_id",) if kind.startswith("case.") else ())
    # A forgotten person's facts are read with their personal values None (erased).
    erased = bool(fact.get("erased"))
    for name in needed:
        value = data.get(name)
        if not isinstance(value, str) and not (erased and value is None and name in data
                                               and name in personal.PERSONAL_DATA):
            return (f"{kind} without data.{name}" if value is None
                    else f"{kind} data.{name} is {describe(value)}, not text")
    for name in _TEXT_COLUMNS:
        if not isinstance(data.get(name), _STRING_OR_NONE):
            return f"data.{name} is {describe(data[name])}, not text"
    if kind == "purchase.recorded":
        return _warranty(fact["occurred_at"], data.get("warranty_months", 24))
    if kind == "customer.registered":
        return _profile(data)
    if kind == "address.changed":
        return _address(data.get("address"), required=not erased)
    if kind == "objection.recorded":
        channels = data.get("channels", "all")
        if channels != "all" and not (isinstance(channels, list)
                                      and all(isinstance(c, str) for c in channels)):
            return f"objection.recorded data.channels is {describe(channels)}, not \"all\" or a list"
    if kind.startswith("promise.") and data.get("due_by") is not None:
        due = data["due_by"]
        if isinstance(due, str) and len(due) == 10:
            return _day(due, "data.due_by")
        return _instant(due, "data.due_by")
    return None


def _warranty(occurred_at: str, months: object) -> str | None:
    if isinstance(months, bool) or not isinstance(months, (int, str)):
        return f"purchase.recorded data.warranty_months is {describe(months)}, not a number of months"
    try:
        count = int(months)
    except ValueError:
        return f"purchase.recorded data.warranty_months is {describe(months)}, not a number of months"
    bought = datetime.fromisoformat(occurred_at).date()
    year = bought.year + (bought.month - 1 + count) // 12
    if count < 0 or year > 9999:
        return (f"purchase.recorded warranty of {count} months from {bought.isoformat()} "
                "ends outside the calendar")
    return None


def _profile(data: dict[str, Any]) -> str | None:
    for name in _PROFILE_TEXT:
        if not isinstance(data.get(name), _STRING_OR_NONE):
            return f"customer.registered data.{name} is {describe(data[name])}, not text"
    birthday = data.get("birthday")
    if birthday is not None:
        reason = _day(birthday, "data.birthday")
        if reason:
            return f"customer.registered {reason}"
    return _address(data.get("address"), required=False)


def _day(value: object, where: str) -> str | None:
    if not isinstance(value, str):
        return f"{where} is {describe(value)}, not a date"
    try:
        day = date.fromisoformat(value)
    except ValueError:
        return f"{where} is not an ISO 8601 date"  # the value may be personal (a birthday)
    if not EARLIEST.date() <= day < LATEST.date():
        return f"{where} is outside the years {EARLIEST.year}-{LATEST.year - 1}"
    return None


def _address(address: object, required: bool) -> str | None:
    if address is None and not required:
        return None
    if not isinstance(address, Mapping):
        return f"address is {describe(address)}, not an object"
    for name in _ADDRESS_TEXT:
        if not isinstance(address.get(name), _STRING_OR_NONE):
            return f"address.{name} is {describe(address[name])}, not text"
    return None


def _shape(fact: dict[str, Any]) -> str | None:
    """Size and nesting, from one serialisation: orjson refuses more than 255 levels, so the
    fact wrapped in :data:`NESTING_MARGIN` lists serialises only when a view can hold it."""
    wrapped = [[[[[[[[[[[[[[[[fact]]]]]]]]]]]]]]]]  # NESTING_MARGIN levels
    try:
        size = len(orjson.dumps(wrapped))
    except orjson.JSONEncodeError as error:
        if "recursion" in str(error).lower():
            return f"nested too deeply for the readers (more than {255 - NESTING_MARGIN} levels)"
        return f"cannot be written as JSON ({error})"
    if size > MAX_FACT_BYTES:
        return f"{size:,} bytes, over the {MAX_FACT_BYTES:,} a reader accepts"
    return None
