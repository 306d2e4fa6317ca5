"""The catalogue as typed schemas: a compiled validator for the common fact, and its JSON Schema.

The catalogue (domain/catalogue.py, ``TYPES``) stays the one definition of the contract; the
msgspec Structs here are derived from it, one per input type, tagged by ``type``. They serve
twice:

* **A fast path.** Validating a fact in Python costs some ten microseconds (walking it for the
  limits, then checking every field); msgspec decodes and checks a line against its Struct in
  about one. :class:`Compiled` ``judge`` decodes with the Structs (types, choices, required
  fields, lengths, integer bounds; ``data`` as a dict in the order sent), then builds the fact
  as the Python validator does, through the catalogue's own normalisers (identities, instants,
  dates, time zones, addresses, channels). So a fact it returns is the one
  :func:`domain.catalogue.validate` returns, key order included, and so is its digest.
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
import re
from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated, Any, Literal, NotRequired, Required, TypedDict, Union

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
            msgspec.Meta(min_length=1, max_length=min(limits.max_keys, len(identity.RESOLUTION_ORDER))),
        ]
        part = Annotated[str, msgspec.Meta(min_length=1, max_length=limits.max_string,
                                           extra_json_schema={"pattern": NOT_BLANK})]
        self.address = _typed_dict("Address", {
            "street": Required[part], "number": NotRequired[Union[self.text, self.int_any, None]],  # noqa: UP007
            "postal_code": Required[part], "city": Required[part],
        }, "A postal address; a numeric number is kept as text.")

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
            reference: Any = self.reference
            other = Annotated[reference, msgspec.Meta(
                description="the other record, named like the fact's customer")]
            return Union[ledger_id, other]  # noqa: UP007
        if kind == "list":
            return Annotated[list[self.text], msgspec.Meta(max_length=lim.max_items)]  # type: ignore[name-defined]
        raise AssertionError(f"catalogue field kind {kind!r} has no schema")  # a catalogue bug

    def data(self, spec: EventType) -> Any:
        """``data`` of ``spec``: its declared fields; any other field is allowed (and kept).

        A TypedDict, not a Struct: msgspec decodes it as a dict in the order the fields were
        sent, which is the order the fact keeps (and drops the fields it does not declare,
        which the key count notices, see :meth:`Compiled.judge`).
        """
        fields: dict[str, Any] = {}
        for fld in spec.fields:
            typ = self.field(fld)
            if fld.required:
                fields[fld.name] = Required[typ]
            else:
                if fld.default is not None:  # filled in when absent: documented, not decoded
                    typ = Annotated[typ, msgspec.Meta(extra_json_schema={"default": fld.default})]
                fields[fld.name] = NotRequired[Union[typ, None]]  # noqa: UP007
        return _typed_dict(_camel(spec.name) + "Data", fields,
                           f"The data of {spec.name}: the declared fields; others are kept as sent.")

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
            ("customer", Annotated[self.reference, msgspec.Meta(
                description="who the fact is about: at least one identity; the most specific known "
                            "one decides (docs/identity.md)")]),
            ("occurred_at", instant),
            ("department", Union[label, None, msgspec.UnsetType], msgspec.UNSET),  # noqa: UP007
            ("agent", Union[label, None, msgspec.UnsetType], msgspec.UNSET),  # noqa: UP007
            ("v", Union[Annotated[int, msgspec.Meta(ge=1, le=JSON_SAFE_INTEGER)], None,  # noqa: UP007
                        msgspec.UnsetType], msgspec.UNSET),
            ("data", data) if required else ("data", Union[data, None, msgspec.UnsetType],  # noqa: UP007
                                             msgspec.UNSET),
        ]
        return msgspec.defstruct(
            _camel(spec.name), fields, tag_field="type", tag=spec.name, forbid_unknown_fields=True,
            kw_only=True,
            namespace={"__doc__": f"{spec.name} (v{spec.version}): {spec.summary}"},
        )


def _typed_dict(name: str, fields: dict[str, Any], doc: str) -> Any:
    typed: Any = TypedDict(name, fields, total=False)  # type: ignore[misc]
    typed.__doc__ = doc
    return typed


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
        title = f"A fact of type {type_name} the ledger accepts"
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

    __slots__ = ("claims", "fits", "known", "name", "plain", "steps", "version")

    def __init__(self, spec: EventType, limits: Limits) -> None:
        self.name = spec.name
        #: Its data names identities the customer claims (catalogue.normalise_identities).
        self.claims = spec.name in catalogue.CLAIMING_TYPES
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
        plans = [_Plan(TYPES[name], limits) for name in input_types()]
        self.by_class = dict(zip(envelopes(limits), plans, strict=True))
        #: The largest UTC offset as an instant writes it ("18:00"), and the first and last
        #: years whose instants are inside the range whatever their offset: text to compare
        #: with an instant's own (in its normal form, digits at fixed places).
        whole = divmod(int(limits.max_offset.total_seconds()), 60)
        hours, minutes = divmod(whole[0], 60)
        fits = whole[1] == 0 and not limits.max_offset.microseconds and hours < 24
        self.max_offset = f"{hours:02d}:{minutes:02d}" if fits else ""
        self.years = (f"{limits.earliest.year + 2:04d}", f"{limits.latest.year - 2:04d}")

    def instant(self, text: str) -> str:
        """``occurred_at`` as ``catalogue.parse_instant(...).isoformat()`` gives it.

        The common instant is written as Python writes it back (seconds, an offset in whole
        minutes, no fraction): then it is its own normal form, and only its range is checked
        here; any other goes through ``parse_instant`` and ``isoformat``.
        """
        first, last = self.years
        if (_CANONICAL_INSTANT.fullmatch(text) and text[20:] <= self.max_offset
                and first <= text[:4] <= last and text[19:] != "-00:00"):
            datetime.fromisoformat(text)  # a day and a time that exist, or it raises
            return text
        return catalogue.parse_instant(text, "occurred_at", self.limits).isoformat()

    def judge(self, raw: bytes | str, may_repeat: Callable[[bytes | str, int], bool]) -> Fact:
        """The fact ``raw`` holds, or any exception when the Python validator must judge it.

        ``may_repeat(raw, keys)`` says whether the text may write more keys than the ``keys``
        object keys decoded (consumers/jsonl_ingest.py ``may_repeat_keys``). The Struct decode
        checks what it can (types, choices, required fields, lengths, integer bounds) and gives
        ``data`` as a dict in the order it was sent. When the text writes more keys than that
        decode kept, either ``data`` holds fields the catalogue does not declare (which the
        decode set aside, and the fact keeps) or a key is written twice: the fact is then built
        from orjson's value, as the Python validator builds it, with every key counted.
        """
        struct = self.decoder.decode(raw)
        plan = self.by_class[type(struct)]
        unset = msgspec.UNSET
        department, agent, data = struct.department, struct.agent, struct.data
        envelope = 5 + (department is not unset) + (agent is not unset) + (struct.v is not unset) + (
            data is not unset)
        if envelope > self.limits.max_keys:
            raise Unsure("keys")
        fact, keys = self._build(plan, struct.id, struct.source, struct.customer, struct.occurred_at,
                                 None if department is unset else department,
                                 None if agent is unset else agent,
                                 None if data is unset else data)
        if not may_repeat(raw, envelope + keys):
            return fact
        value = orjson.loads(raw)
        if len(value) > self.limits.max_keys:
            raise Unsure("keys")
        fact, keys = self._build(plan, value["id"], value["source"], value["customer"], value["occurred_at"],
                                 value.get("department"), value.get("agent"), value.get("data"))
        if may_repeat(raw, len(value) + keys):
            raise Unsure("a key written twice")
        return fact

    def _build(self, plan: _Plan, fact_id: str, source: str, customer: dict[str, str], occurred_at: str,
               department: str | None, agent: str | None, data: dict[str, Any] | None) -> tuple[Fact, int]:
        """The fact of values the schema accepted, as the Python validator builds it, and the
        number of object keys in ``customer``, ``data`` and the objects ``data`` holds.

        ``data`` was decoded for this fact alone: it is normalised in place.
        """
        limits = self.limits
        if not plan.fits:
            raise Unsure("a key longer than the limits allow")
        if fact_id.isspace() or source.isspace():  # blank (the schema refused them empty)
            raise Unsure("a blank id or source")
        if not (fact_id.isprintable() and source.isprintable()):  # maybe a control character
            check_name(fact_id, "id", limits)
            check_name(source, "source", limits)
        fact: Fact = {
            "type": plan.name,
            "v": plan.version,
            "id": fact_id,
            "source": source,
            "customer": identity.known_reference(customer),
            "occurred_at": self.instant(occurred_at),
        }
        if department is not None:
            fact["department"] = department if department.isprintable() else check_name(
                department, "department", limits)
        if agent is not None:
            fact["agent"] = agent if agent.isprintable() else check_name(agent, "agent", limits)
        keys = len(customer)
        most = limits.max_keys
        if data is None:
            data = {}
        else:
            keys += len(data)
            if len(data) > most:
                raise Unsure("keys")
            if not plan.known.issuperset(data):  # fields the catalogue does not know: kept as
                extra = {k: v for k, v in data.items() if k not in plan.known}  # sent, within limits
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
        fact["data"] = catalogue.normalise_identities(plan.name, data, limits) if plan.claims else data
        return fact, keys


def _check_value(fld: Field, value: Any, where: str, limits: Limits) -> Any:
    return catalogue.check_value(fld, value, where, limits)


def compiled(limits: Limits = DEFAULT_LIMITS) -> Compiled:
    """The fast path for ``limits``, built once (a decoder takes milliseconds to build).

    The last one asked for is answered without hashing ``limits`` (which costs a microsecond,
    a tenth of the fast path): every door judges every line with the same limits.
    """
    global _last
    last = _last  # one tuple, read once: another thread may replace it meanwhile
    if last is not None and last[0] is limits:
        return last[1]
    built: Compiled = _compiled(limits)
    _last = (limits, built)
    return built


_last: tuple[Limits, Compiled] | None = None


@functools.lru_cache(maxsize=8)
def _compiled(limits: Limits) -> Compiled:  # cached: built once per limits
    return Compiled(limits)
