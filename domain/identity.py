"""Identities: how a channel names a person, and how that name becomes one customer.

A call centre knows a phone number, the social team an @handle, a store a loyalty card. Each
is normalised here into an identity key (``"phone:+34600000001"``) so that the same person is
found whichever department spelled the number. Customer ids are UUIDs derived from external
keys (uuid5), so re-ingesting the same input always yields the same ids.

The resolution rule (documented in docs/identity.md) lives in :func:`resolve`; it is pure and
is handed a mapping of the identity keys the ledger already knows.
"""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import ModuleType

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, ValidationResult
from stdnum.es import dni, nie
from stdnum.exceptions import InvalidChecksum, InvalidFormat, InvalidLength, ValidationError

from domain.errors import InvalidFact

#: Namespace of every id the ledger derives. Changing it would re-key every customer: never do.
NAMESPACE = uuid.UUID("6f1d8c52-3a0e-5b7c-9d4f-2e8a1b0c7d35")

#: The order in which identities decide who a fact is about: the most specific first.
RESOLUTION_ORDER = ("customer_id", "national_id", "loyalty_card", "phone", "email", "twitter")
IDENTITY_KINDS = frozenset(RESOLUTION_ORDER)
#: Kinds that `identity.linked` may attach (a customer number is given at registration).
LINKABLE_KINDS = frozenset(RESOLUTION_ORDER[1:])

#: The region whose national formats a phone without a country code is read in (ISO 3166-1
#: alpha-2). The composition root sets the configured one with :func:`set_phone_region`.
DEFAULT_PHONE_REGION = "ES"
_phone_region = DEFAULT_PHONE_REGION

#: Separators people write inside phones and national ids; a phone holds nothing else but
#: digits and a leading ``+`` (phonenumbers would also read letters as keypad digits and keep
#: an extension aside: neither names a line, so neither is an identity).
_SEPARATORS = re.compile(r"[\s\-.()/]")
_PHONE_CHARS = re.compile(r"\+?[0-9]+")
_EMAIL_OK = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_HANDLE_OK = re.compile(r"[a-z0-9_]{1,15}")
#: A Spanish document number as written: a DNI is digits and a letter, an NIE starts with X, Y
#: or Z. Such a value is checked as that document; any other is a foreign one (docs/identity.md).
_DNI_SHAPE = re.compile(r"[0-9]{1,8}[A-Z]?")
_NIE_SHAPE = re.compile(r"[XYZ][0-9]{1,8}[A-Z]?")
_FOREIGN_ID = re.compile(r"[A-Z0-9]*[0-9][A-Z0-9]*")

_NOT_POSSIBLE = {
    ValidationResult.TOO_SHORT: "too short",
    ValidationResult.TOO_LONG: "too long",
    ValidationResult.INVALID_LENGTH: "no number there has that many digits",
    ValidationResult.IS_POSSIBLE_LOCAL_ONLY: "too short: a local number, give it with its area code",
}
_UNPARSABLE = {
    NumberParseException.TOO_SHORT_NSN: "too short",
    NumberParseException.TOO_SHORT_AFTER_IDD: "too short",
    NumberParseException.TOO_LONG: "too long",
}
_DOCUMENT_FAULTS = {
    InvalidLength: "wrong length: {shape}",
    InvalidFormat: "wrong format: {shape}",
    InvalidChecksum: "wrong check letter: it does not match the digits, one of them is mistyped",
}
_SHAPES = {"DNI": "a DNI is 8 digits and a check letter, like 12345678Z",
           "NIE": "an NIE is X, Y or Z, 7 digits and a check letter, like X1234567L"}


def set_phone_region(region: str) -> None:
    """Read phones written without a country code as numbers of ``region`` from now on.

    The composition root calls it with the configured region (the domain reads no
    environment); :class:`ValueError` names a region phonenumbers does not know.
    """
    global _phone_region
    _phone_region = phone_region(region)


def phone_region(region: str) -> str:
    """``region`` as an ISO 3166-1 code phonenumbers knows; :class:`ValueError` otherwise."""
    code = region.strip().upper()
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"{region!r} is not a region phones are known for (an ISO 3166-1 code like ES)")
    return code


def normalise(kind: str, value: object, where: str, *, region: str | None = None) -> str:
    """Return the canonical spelling of one identity, or raise :class:`InvalidFact`.

    ``region`` reads a phone without a country code (default: the configured region).
    """
    if not isinstance(value, str):
        raise InvalidFact(f"{where}: expected a string, got {type(value).__name__}")
    if len(value) > _REMEMBERED_LENGTH:  # an e-mail or a card may be long: not kept in memory
        return _normalise.__wrapped__(kind, value, where, region or _phone_region)
    return _normalise(kind, value, where, region or _phone_region)


#: The longest identity :func:`normalise` remembers: a real phone, e-mail or handle is far
#: shorter, and the bound keeps the cache within a few megabytes whatever sources send.
_REMEMBERED_LENGTH = 254


@functools.lru_cache(maxsize=1 << 15)
def _normalise(kind: str, value: str, where: str, region: str) -> str:
    """:func:`normalise` of a string, remembered: every fact names its customer, and a source
    names the same people (and spells their phones the same way) fact after fact, so most
    calls repeat one already answered. A refusal raises, so it is not remembered."""
    text = value.strip()
    if not text:
        raise InvalidFact(f"{where}: is empty")
    if kind == "phone":
        return _phone(text, where, region)
    if kind == "email":
        text = text.lower()
        if not _EMAIL_OK.fullmatch(text):
            raise InvalidFact(f"{where}: {value!r} is not an e-mail address")
        return text
    if kind == "twitter":
        handle = text.removeprefix("@").lower()
        if not _HANDLE_OK.fullmatch(handle):
            raise InvalidFact(f"{where}: {value!r} is not a Twitter/X handle (like @name_123)")
        return "@" + handle
    if kind == "national_id":
        return _national_id(text, where)
    if kind == "loyalty_card":
        return text.upper()
    if kind == "customer_id":
        if len(text) > 64:
            raise InvalidFact(f"{where}: longer than 64 characters")
        return text
    raise InvalidFact(f"{where}: unknown identity kind {kind!r}")


def _phone(text: str, where: str, region: str) -> str:
    """E.164 of a phone phonenumbers finds possible and valid (a range in use), or the reason."""
    compact = _SEPARATORS.sub("", text)
    if not _PHONE_CHARS.fullmatch(compact):
        raise InvalidFact(f"{where}: {text!r} is not a phone number: only digits, spaces, dashes, "
                          "dots and brackets after an optional + (write it like +34600000001)")
    e164, why = _judge_phone(compact, region)
    if e164 is None:
        raise InvalidFact(f"{where}: {text!r} is not a phone number{why}")
    return e164


@functools.lru_cache(maxsize=65536)
def _judge_phone(compact: str, region: str) -> tuple[str | None, str]:
    """(E.164, "") or (None, why): the library's verdict on a number of digits and ``+``.

    Cached: parsing and validating costs some 60 µs, and a source names the same few numbers
    in fact after fact. ``00`` opens an international number whatever the region (as the
    ledger always read it), so a reference written ``0034...`` keeps its key when the
    configured region changes.
    """
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    try:
        number = phonenumbers.parse(compact, region)
    except NumberParseException as error:
        if error.error_type == NumberParseException.INVALID_COUNTRY_CODE:
            return None, ": it starts with no country code (write it like +34600000001)"
        return None, f" possible anywhere ({_UNPARSABLE.get(error.error_type, 'not a phone number')})"
    possible = phonenumbers.is_possible_number_with_reason(number)
    if possible == ValidationResult.INVALID_COUNTRY_CODE:
        return None, f": +{number.country_code} is no country code (write it like +34600000001)"
    if possible != ValidationResult.IS_POSSIBLE:
        why = _NOT_POSSIBLE.get(possible, "wrong length")
        return None, f" possible in {_place(number)} ({why})"
    if not phonenumbers.is_valid_number(number):
        return None, f" in use in {_place(number)} (no numbers are given out in that range)"
    return phonenumbers.format_number(number, PhoneNumberFormat.E164), ""


def _place(number: phonenumbers.PhoneNumber) -> str:
    """The country a number belongs to, in English, for a reason people read.

    The geocoder's data takes longer to load than everything else here: only a refusal needs it.
    """
    from phonenumbers import geocoder

    calling = number.country_code or 0
    code = phonenumbers.region_code_for_number(number)
    if code is None or code == phonenumbers.UNKNOWN_REGION:
        code = phonenumbers.region_code_for_country_code(calling)
    if code == phonenumbers.UNKNOWN_REGION:
        return f"country code +{calling}"
    example = phonenumbers.example_number(code)  # a valid number, so the geocoder names it
    name = geocoder.country_name_for_number(example, "en") if example is not None else ""
    return str(name) or code


def _national_id(text: str, where: str) -> str:
    """A DNI or NIE checked by python-stdnum; any other document number as written.

    A value written like a Spanish document (digits and a letter; X, Y or Z first) must pass
    its check, so a mistyped DNI is refused instead of keying a second person. A passport or
    foreign id card has no check anyone here can run: it is kept upper case without separators,
    letters and digits only (docs/decisions.md).
    """
    compact = _SEPARATORS.sub("", text).upper()
    if _DNI_SHAPE.fullmatch(compact):
        return _document(dni, "DNI", compact, text, where)
    if _NIE_SHAPE.fullmatch(compact):
        return _document(nie, "NIE", compact, text, where)
    if not _FOREIGN_ID.fullmatch(compact):
        raise InvalidFact(f"{where}: {text!r} is not a national id: a DNI (12345678Z), an NIE "
                          "(X1234567L) or another document's number (letters and digits)")
    return compact


def _document(module: ModuleType, doc: str, compact: str, text: str, where: str) -> str:
    try:
        return str(module.validate(compact))
    except ValidationError as error:
        for fault, why in _DOCUMENT_FAULTS.items():
            if isinstance(error, fault):
                raise InvalidFact(f"{where}: {text!r} is not a valid {doc} "
                                  f"({why.format(shape=_SHAPES[doc])})") from None
        raise InvalidFact(f"{where}: {text!r} is not a valid {doc} ({error})") from None


def phone_spellings(e164: str) -> set[str]:
    """The ways a source may have written a phone the ledger holds as ``e164``: without the
    ``+``, after ``00``, its national number alone, and as phonenumbers lays it out nationally
    and internationally (``600 00 00 01``, ``020 7946 0000``, ``+34 600 00 00 01``).

    Forgetting a person looks for every one of them in what sources sent. A number the
    current rules refuse (recorded under earlier ones) is still laid out as far as it parses.
    """
    digits = e164.removeprefix("+")
    out = {digits, "00" + digits}
    try:
        number = phonenumbers.parse(e164, None)
    except NumberParseException:
        return out
    national = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
    out |= {phonenumbers.national_significant_number(number), national, _SEPARATORS.sub("", national),
            phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)}
    return {form for form in out if form}


def recorded(kind: str, value: str) -> str:
    """The canonical spelling of an identity the ledger already holds.

    What the current rules accept is respelled by them (byte-identical to what the ledger
    stored for it); what they refuse was accepted by the ledger's earlier, laxer rules and
    stays as stored, so a reader never drops nor re-keys a recorded fact.
    """
    try:
        return normalise(kind, value, kind)
    except InvalidFact:
        return value


def earlier_spelling(kind: str, text: str) -> str | None:
    """How the ledger's earlier rules spelled a phone or national id the current rules refuse,
    or None when they refused it too: a lookup by it still finds what they recorded.

    Never used at the door: new facts are judged by :func:`normalise` only.
    """
    compact = _SEPARATORS.sub("", text.strip())
    if kind == "national_id":
        return compact.upper() or None
    if kind != "phone":
        return None
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    elif len(compact) == 9 and compact[0] in "6789" and compact.isdigit():
        compact = "+34" + compact
    ok = compact[:1] == "+" and compact[1:2] in "123456789" and compact[1:].isdigit()
    return compact if ok and 8 <= len(compact) <= 16 else None


def key(kind: str, value: str) -> str:
    """The identity key stored in the index: kind and canonical value."""
    return f"{kind}:{value}"


@functools.lru_cache(maxsize=65536)
def customer_uuid(customer_number: str) -> uuid.UUID:
    """The ledger id of a customer the company numbers itself (a CRM customer id)."""
    return uuid.uuid5(NAMESPACE, "customer_id:" + customer_number)


@functools.lru_cache(maxsize=65536)
def prospect_uuid(identity_key: str) -> uuid.UUID:
    """The ledger id of a person known only by a channel identity (a prospect)."""
    return uuid.uuid5(NAMESPACE, "prospect:" + identity_key)


@functools.lru_cache(maxsize=65536)
def case_uuid(case_id: str) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, "case:" + case_id)


def event_uuid(source: str, source_id: str) -> uuid.UUID:
    """The event id of a fact: its idempotency key ``(source, id)`` made a UUID."""
    return uuid.uuid5(NAMESPACE, f"fact:{source}\x1f{source_id}")


def parse_reference(raw: object, where: str = "customer") -> dict[str, str]:
    """Validate and normalise a fact's ``customer`` object (at least one identity)."""
    if not isinstance(raw, dict):
        raise InvalidFact(
            f"{where}: expected an object like {{\"phone\": \"+34600000001\"}}, "
            f"got {type(raw).__name__}"
        )
    ref: dict[str, str] = {}
    for kind, value in raw.items():
        if kind not in IDENTITY_KINDS:
            known = ", ".join(RESOLUTION_ORDER)
            raise InvalidFact(f"{where}.{kind}: unknown identity kind (use one of {known})")
        ref[kind] = normalise(kind, value, f"{where}.{kind}")
    if not ref:
        raise InvalidFact(f"{where}: names no identity (give a phone, email, twitter, ...)")
    return ref


def known_reference(raw: dict[str, str]) -> dict[str, str]:
    """:func:`parse_reference` of a reference whose values are strings, remembered: a source
    names the same customers fact after fact, most by one identity. A copy, so the caller
    may change it."""
    if len(raw) != 1:
        return parse_reference(raw)
    key = (_phone_region, *raw.items())
    found = _references.get(key)
    if found is None:
        found = parse_reference(raw)
        if len(next(iter(raw.values()))) <= _REMEMBERED_LENGTH:
            if len(_references) >= _REMEMBERED_REFERENCES:
                _references.clear()
            _references[key] = found
    return found.copy()


#: How many one-identity references :func:`known_reference` remembers: more than the
#: customers a day's facts name, within some tens of megabytes whatever sources send.
_REMEMBERED_REFERENCES = 1 << 16
_references: dict[tuple[object, ...], dict[str, str]] = {}


def reference_keys(ref: Mapping[str, str]) -> list[str]:
    """The identity keys of a reference, in resolution order."""
    return [key(kind, ref[kind]) for kind in RESOLUTION_ORDER if kind in ref]


@dataclass(slots=True)
class Resolution:
    """Who a fact is about, and which identities it teaches the ledger."""

    customer_id: uuid.UUID
    #: True when no known identity matched and a new customer or prospect starts here.
    is_new: bool
    #: "customer" when the company's own number named the person, else "prospect".
    kind: str
    customer_number: str | None
    #: Identity keys of the reference that nobody owned yet: they now point to customer_id.
    learned: list[str] = field(default_factory=list)


def resolve(ref: Mapping[str, str], owners: Mapping[str, uuid.UUID]) -> Resolution:
    """Decide which customer a reference names.

    1. A customer number (``customer_id``) is authoritative: that customer, created if new.
       A ledger UUID in ``customer_id`` names that ledger customer directly.
    2. Otherwise the first identity the ledger knows, in :data:`RESOLUTION_ORDER`, wins.
    3. Otherwise a prospect is created, keyed by its most specific identity.
    Identities of the reference that nobody owns yet are learned for the chosen customer;
    identities owned by somebody else are left alone (only an explicit ``identity.linked`` or
    registration moves an identity).
    """
    keys = reference_keys(ref)
    number = ref.get("customer_id")
    if number is not None:
        as_uuid = _as_uuid(number)
        if as_uuid is not None:
            return Resolution(as_uuid, False, "customer", None, [k for k in keys[1:] if k not in owners])
        owner = owners.get(keys[0])
        if owner is not None:
            return Resolution(owner, False, "customer", number, [k for k in keys if k not in owners])
        unknown = [k for k in keys if k not in owners]
        return Resolution(customer_uuid(number), True, "customer", number, unknown)
    for k in keys:
        owner = owners.get(k)
        if owner is not None:
            return Resolution(owner, False, "prospect", None, [k2 for k2 in keys if k2 not in owners])
    return Resolution(prospect_uuid(keys[0]), True, "prospect", None, list(keys))


def ledger_uuid(text: str) -> uuid.UUID | None:
    """The ledger id a ``customer_id`` names directly, when it is one (not a customer number)."""
    return _as_uuid(text)


def _as_uuid(text: str) -> uuid.UUID | None:
    if len(text) not in (32, 36):
        return None
    try:
        return uuid.UUID(text)
    except ValueError:
        return None
