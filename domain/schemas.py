"""The catalogue as typed schemas: a compiled validator for the common fact, and its JSON Schema.

The catalogue (domain/catalogue.py, ``TYPES``) stays the one definition of the contract; the
msgspec Structs here are derived from it, one per input type, tagged by ``type``. They serve
twice:

* **A fast path.** Validating a fact in Python costs some ten microseconds (walking it for the
  limits, then checking every field); msgspec decodes and checks a line against its Struct in
  about one. :class:`Compiled` ``judge`` decodes with the Struct to check the types, choices,
  required fields, lengths and integer bounds, then builds the fact from the same ordered
  value the Python validator reads, through the catalogue's own normalisers (identities,
  instants, dates, time zones, addresses, channels). So a fact it returns is the one
  :func:`domain.catalogue.validate` returns, key order included.
* **The published contract.** :func:`json_schema` is the JSON Schema of the input facts
  (``journey schema``, docs/schema/facts.schema.json), which channels validate against before
  they send.

The fast path never explains a refusal: whenever it is unsure (msgspec refuses the line, a
normaliser refuses a value, a value it does not model is present) it raises, and the caller
judges the line again with the Python validator, whose reasons say what and where. The Structs
are therefore allowed to be stricter than the catalogue (a channel list, a ``v`` that is not an
integer), never laxer: a value msgspec accepts must be one the Python validator accepts.
tests/unit/test_schemas.py checks that both paths give the same fact or the same reason.
"""

from __future__ import annotations

import functools
import keyword
import re
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal, Union

import msgspec
import orjson

from domain import catalogue, identity
from domain.catalogue import CHANNELS, TYPES, EventType, Fact, Field
from domain.limits import DEFAULT_LIMITS, JSON_SAFE_INTEGER, Limits, check_name, check_tree

#: The dialect of the published schema (msgspec writes 2020-12's ``$defs``).
DIALECT = "https://json-schema.org/draft/2020-12/schema"

#: A name (``id``, ``source``, ``department``, ``agent``): no control characters (C0, DEL, C1).
#: The Python validator (domain/limits.py ``check_name``) is the rule; the schema restates it.
_CONTROL = "\\u0000-\\u001f\\u007f-\\u009f"
PRINTABLE = f"^[^{_CONTROL}]*$"
#: ``id`` and ``source``: printable and not only blanks.
PRINTABLE_NOT_BLANK = f"^[^{_CONTROL}]*[^\\s{_CONTROL}][^{_CONTROL}]*$"
#: Address parts: not only blanks.
NOT_BLANK = "\\S"

#: An instant written as ``datetime.isoformat`` writes it back, without a fraction of a second.
_CANONICAL_INSTANT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}[+-][0-9]{2}:[0-9]{2}")

ADDRESS_PARTS = frozenset(("street", "number", "postal_code", "city"))


def input_types() -> list[str]:
    """The types a source may send (the others are written by the ledger itself)."""
    return [name for name, spec in TYPES.items() if not spec.system]


# ------------------------------------------------------------------------ the Structs


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.replace("_", ".").split("."))


class _Types:
    """The msgspec types of one set of limits (the bounds are part of the types)."""

    def __init__(self, limits: Limits) -> None:
        safe = JSON_SAFE_INTEGER
        self.limits = limits
        self.text = Annotated[str, msgspec.Meta(max_length=limits.max_string)]
        self.int_any = Annotated[int, msgspec.Meta(ge=-safe, le=safe)]
        self.number = Union[  # noqa: UP007 -- a runtime type expression msgspec reads
            Annotated[int, msgspec.Meta(ge=-safe, le=safe)],
            Annotated[float, msgspec.Meta(ge=-float(safe), le=float(safe))],
        ]
        self.identity_value = Annotated[str, msgspec.Meta(max_length=limits.max_name)]
        kinds: Any = Literal[tuple(identity.RESOLUTION_ORDER)]
        value: Any = self.identity_value
        self.reference = Annotated[
            dict[kinds, value],
            msgspec.Meta(min_length=1, max_length=min(limits.max_keys, len(identity.RESOLUTION_ORDER)),
                         description="who the fact is about: at least one identity; "
                         "the most specific known one decides (docs/identity.md)"),
        ]
        part = Annotated[str, msgspec.Meta(min_length=1, max_length=limits.max_string,
                                           extra_json_schema={"pattern": NOT_BLANK})]
        self.address = msgspec.defstruct(
            "Address",
            [("street", part), ("postal_code", part), ("city", part),
             ("number", Union[self.text, self.int_any, None], None)],  # noqa: UP007
            namespace={"__doc__": "A postal address; a numeric number is kept as text."},
        )

    def field(self, fld: Field) -> Any:
        """The type of one catalogue field's value (None excluded)."""
        lim = self.limits
        kind = fld.kind
        if kind == "str":
            return Literal[fld.choices] if fld.choices else self.text
        if kind == "int":
            ceiling = catalogue.int_ceiling(fld.name, lim)
            return Annotated[int, msgspec.Meta(ge=0, le=JSON_SAFE_INTEGER if ceiling is None else ceiling)]
        if kind == "number":
            return self.number
        if kind == "bool":
            return bool
        if kind == "date":
            return Annotated[str, msgspec.Meta(max_length=lim.max_string, extra_json_schema={
                "format": "date", "description": "a date like 1980-05-17"})]
        if kind == "datetime":
            return Annotated[str, msgspec.Meta(max_length=lim.max_string, extra_json_schema={
                "description": "an instant with its UTC offset (2026-02-01T10:00:00+01:00) or a date "
                               "(2026-02-01: the end of that day)"})]
        if kind == "tz":
            return Annotated[str, msgspec.Meta(max_length=lim.max_name, extra_json_schema={
                "description": "an IANA time zone, like Europe/Madrid"})]
        if kind == "identity_kind":
            return Literal[tuple(sorted(identity.LINKABLE_KINDS))]
        if kind == "channels":
            channels = Annotated[list[Literal[CHANNELS]],  # type: ignore[valid-type]
                                 msgspec.Meta(min_length=1, max_length=lim.max_items)]
            return Union[Literal["all"], channels]  # noqa: UP007
        if kind == "address":
            return self.address
        if kind == "ref":
            ledger_id = Annotated[str, msgspec.Meta(max_length=lim.max_string, extra_json_schema={
                "description": "a ledger customer id (a UUID)"})]
            return Union[ledger_id, self.reference]  # noqa: UP007
        if kind == "list":
            return Annotated[list[self.text], msgspec.Meta(max_length=lim.max_items)]  # type: ignore[name-defined]
        raise AssertionError(f"catalogue field kind {kind!r} has no schema")  # a catalogue bug

    def data(self, spec: EventType) -> type[msgspec.Struct]:
        """``data`` of ``spec``: its declared fields; any other field is allowed (and kept)."""
        fields: list[Any] = []
        for fld in spec.fields:
            typ = self.field(fld)
            attr = fld.name + "_" if keyword.iskeyword(fld.name) else fld.name
            if fld.required:
                fields.append((attr, typ, msgspec.field(name=fld.name)) if attr != fld.name else (attr, typ))
            else:
                fields.append((attr, Union[typ, None],  # noqa: UP007
                               msgspec.field(default=fld.default, name=fld.name)))
        return msgspec.defstruct(_camel(spec.name) + "Data", fields, kw_only=True, namespace={
            "__doc__": f"The data of {spec.name}: the declared fields; others are kept as sent."})

    def envelope(self, spec: EventType) -> type[msgspec.Struct]:
        lim = self.limits
        name = Annotated[str, msgspec.Meta(min_length=1, max_length=lim.max_name,
                                           extra_json_schema={"pattern": PRINTABLE_NOT_BLANK})]
        label = Annotated[str, msgspec.Meta(max_length=lim.max_name,
                                            extra_json_schema={"pattern": PRINTABLE})]
        instant = Annotated[str, msgspec.Meta(max_length=lim.max_string, extra_json_schema={
            "format": "date-time", "description": "when it happened, with its UTC offset"})]
        data = self.data(spec)
        required = any(f.required for f in spec.fields)
        fields: list[Any] = [
            ("id", Annotated[name, msgspec.Meta(description="the source's id of the fact; with source, "
                                                  "the idempotency key")]),
            ("source", Annotated[name, msgspec.Meta(description="the system that sent it")]),
            ("customer", self.reference),
            ("occurred_at", instant),
            ("department", Union[label, None], None),  # noqa: UP007
            ("agent", Union[label, None], None),  # noqa: UP007
            ("v", Union[Annotated[int, msgspec.Meta(ge=1, le=JSON_SAFE_INTEGER)], None], None),  # noqa: UP007
            ("data", data) if required else ("data", Union[data, None], None),  # noqa: UP007
        ]
        return msgspec.defstruct(
            _camel(spec.name), fields, tag_field="type", tag=spec.name, forbid_unknown_fields=True,
            kw_only=True,
            namespace={"__doc__": f"{spec.name} (v{spec.version}): {spec.summary}"},
        )


@functools.lru_cache(maxsize=8)
def envelopes(limits: Limits = DEFAULT_LIMITS) -> tuple[type[msgspec.Struct], ...]:
    """One tagged Struct per input type, in the catalogue's order."""
    types = _Types(limits)
    return tuple(types.envelope(TYPES[name]) for name in input_types())


def json_schema(type_name: str | None = None) -> dict[str, Any]:
    """The JSON Schema of every input fact, or of one type's (:class:`KeyError` if unknown)."""
    structs = dict(zip(input_types(), envelopes(DEFAULT_LIMITS), strict=True))
    if type_name is None:
        doc = msgspec.json.schema(Union[tuple(structs.values())])  # noqa: UP007
        title = "A fact the ledger accepts (one JSON object per line, message or array element)"
    else:
        doc = msgspec.json.schema(structs[type_name])
        title = f"A {type_name} fact the ledger accepts"
    return {"$schema": DIALECT, "title": title,
            "description": "Unknown data fields are kept; some rules are checked only by the ledger "
                           "(phones, national ids and e-mails, time zones, the range of instants); "
                           "the ledger's rejects say why a fact was refused.",
            **doc}


# ------------------------------------------------------------------------ the fast path


class Unsure(Exception):
    """The fast path cannot judge this fact: the Python validator must."""


#: One declared data field the builder has work on: its name, its default (None: none), its
#: normaliser (None: the schema check leaves the value as sent) and whether it is an object.
_Step = tuple[str, Any, Callable[[Any, str], Any] | None, bool]


def _channels(value: Any, where: str) -> Any:
    return "all" if value == "all" else sorted(set(value))


class _Plan:
    """What building one type's fact takes, beyond the schema check."""

    __slots__ = ("fits", "known", "plain", "steps", "version")

    def __init__(self, spec: EventType, limits: Limits) -> None:
        self.version = spec.version
        #: Every key the schema names is a key the limits allow (narrowed limits may not).
        names = {*catalogue.TOP_LEVEL, *identity.RESOLUTION_ORDER, *ADDRESS_PARTS,
                 *(f.name for f in spec.fields)}
        self.fits = max(map(len, names)) <= limits.max_name
        self.known = frozenset(f.name for f in spec.fields)
        #: Fields with a default, a normaliser or an object value, in the catalogue's order
        #: (a default is appended to the data in that order, as the Python validator does).
        self.steps: tuple[_Step, ...] = tuple(
            (f.name, f.default, _normaliser(f, limits), f.kind in ("address", "ref"))
            for f in spec.fields
            if f.default is not None or _normaliser(f, limits) is not None or f.kind in ("address", "ref"))
        #: The others: a null among them is dropped, as if it were not sent.
        self.plain = tuple(f.name for f in spec.fields if f.default is None and not f.required)


def _normaliser(fld: Field, limits: Limits) -> Callable[[Any, str], Any] | None:
    """How the fast path normalises a value of ``fld`` the schema accepted: the catalogue's own
    checker, or a shortcut that gives what it gives for the common value and asks it otherwise."""
    if fld.kind == "channels":
        return _channels
    checker = functools.partial(_check_value, fld, limits=limits)
    if fld.kind == "date":
        return functools.partial(_date, first=limits.earliest_date.isoformat(),
                                 last=limits.latest_date.isoformat(), checker=checker)
    if fld.kind == "tz":
        return functools.partial(_zone, known=set(), checker=checker)
    if fld.kind in ("datetime", "ref", "address"):
        return checker
    return None


def _date(value: str, where: str, first: str, last: str, checker: Callable[[Any, str], Any]) -> Any:
    """A date as ``check_value`` writes it: ISO dates compare as text (four-digit years)."""
    day = date.fromisoformat(value).isoformat()
    return day if first <= day <= last else checker(value, where)


def _zone(value: str, where: str, known: set[str], checker: Callable[[Any, str], Any]) -> Any:
    """A time zone ``check_value`` accepted once is accepted again (a source names a few)."""
    if value not in known:
        checker(value, where)
        if len(known) < 4096:
            known.add(value)
    return value


class Compiled:
    """The compiled fast path for one set of limits: :meth:`judge`."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(
            Union[envelopes(limits)])  # noqa: UP007
        self.plans = {name: _Plan(TYPES[name], limits) for name in input_types()}
        #: The UTC offsets an instant may have (whole minutes, within the bound), and the
        #: years whose instants are inside the range whatever their offset.
        bound = int(limits.max_offset.total_seconds()) // 60
        self.offsets = frozenset(timedelta(minutes=m) for m in range(-bound, bound + 1))
        self.years = range(limits.earliest.year + 2, limits.latest.year - 1)

    def instant(self, text: str) -> str:
        """``occurred_at`` as ``catalogue.parse_instant(...).isoformat()`` gives it.

        The common instant is written as Python writes it back (seconds, an offset in whole
        minutes, no fraction): then it is its own normal form, and only its range is checked
        here; any other goes through ``parse_instant`` and ``isoformat``.
        """
        moment = datetime.fromisoformat(text)
        if (_CANONICAL_INSTANT.fullmatch(text) and not text.endswith("-00:00")
                and moment.utcoffset() in self.offsets and moment.year in self.years):
            return text
        return catalogue.parse_instant(text, "occurred_at", self.limits).isoformat()

    def judge(self, raw: bytes | str) -> tuple[Fact, int]:
        """The fact ``raw`` holds and the number of object keys in it (for the repeated-key
        check), or any exception when the Python validator must judge it.

        The Struct decode checks what it can (types, choices, required fields, lengths,
        integer bounds); the fact is built from the value orjson reads, as the Python
        validator builds it, so key order and unknown data fields are as sent.
        """
        self.decoder.decode(raw)
        value = orjson.loads(raw)
        limits = self.limits
        type_name = value["type"]
        plan = self.plans[type_name]
        if not plan.fits:
            raise Unsure("a key longer than the limits allow")
        fact_id, source = value["id"], value["source"]
        if not (fact_id.strip() and source.strip()):
            raise Unsure("a blank id or source")
        if not (fact_id.isprintable() and source.isprintable()):  # maybe a control character
            check_name(fact_id, "id", limits)
            check_name(source, "source", limits)
        customer = value["customer"]
        fact: Fact = {
            "type": type_name,
            "v": plan.version,
            "id": fact_id,
            "source": source,
            "customer": identity.parse_reference(customer),
            "occurred_at": self.instant(value["occurred_at"]),
        }
        for name in ("department", "agent"):
            text = value.get(name)
            if text is not None:
                fact[name] = text if text.isprintable() else check_name(text, name, limits)
        keys = len(value) + len(customer)
        most = limits.max_keys
        if len(value) > most:
            raise Unsure("keys")
        data = value.get("data")  # decoded here for this fact alone: normalised in place
        if data is None:
            data = {}
        else:
            keys += len(data)
            if len(data) > most:
                raise Unsure("keys")
            if not plan.known.issuperset(data):  # fields the catalogue does not know: kept as
                extra = {k: v for k, v in data.items() if k not in plan.known}
                keys += check_tree({"data": extra}, limits) - 1 - len(extra)
            if None in data.values():
                for name in plan.plain:
                    if name in data and data[name] is None:
                        del data[name]
        for name, default, fix, is_object in plan.steps:
            item = data.get(name)
            if item is None:
                if default is not None:
                    data[name] = default
                else:
                    data.pop(name, None)
                continue
            if is_object and type(item) is dict:
                if len(item) > most or (name == "address" and not ADDRESS_PARTS.issuperset(item)):
                    raise Unsure("an address part the schema does not model, or too many keys")
                keys += len(item)
            if fix is not None:
                data[name] = fix(item, "data." + name)
        fact["data"] = catalogue.normalise_identities(type_name, data, limits)
        return fact, keys


def _check_value(fld: Field, value: Any, where: str, limits: Limits) -> Any:
    return catalogue.check_value(fld, value, where, limits)


def compiled(limits: Limits = DEFAULT_LIMITS) -> Compiled:
    """The fast path for ``limits``, built once (a decoder takes milliseconds to build).

    The last one asked for is answered without hashing ``limits`` (which costs a microsecond,
    a tenth of the fast path): every door judges every line with the same limits.
    """
    last = _last
    if last and last[0] is limits:
        known: Compiled = last[1]
        return known
    built: Compiled = _compiled(limits)
    _last[:] = [limits, built]
    return built


_last: list[Any] = []


@functools.lru_cache(maxsize=8)
def _compiled(limits: Limits) -> Compiled:  # cached: built once per limits
    return Compiled(limits)
