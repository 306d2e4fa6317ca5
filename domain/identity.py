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

from domain.errors import InvalidFact

#: Namespace of every id the ledger derives. Changing it would re-key every customer: never do.
NAMESPACE = uuid.UUID("6f1d8c52-3a0e-5b7c-9d4f-2e8a1b0c7d35")

#: The order in which identities decide who a fact is about: the most specific first.
RESOLUTION_ORDER = ("customer_id", "national_id", "loyalty_card", "phone", "email", "twitter")
IDENTITY_KINDS = frozenset(RESOLUTION_ORDER)
#: Kinds that `identity.linked` may attach (a customer number is given at registration).
LINKABLE_KINDS = frozenset(RESOLUTION_ORDER[1:])

_PHONE_STRIP = re.compile(r"[\s\-.()/]")
_PHONE_OK = re.compile(r"\+[1-9]\d{6,14}")
_EMAIL_OK = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_HANDLE_OK = re.compile(r"[a-z0-9_]{1,15}")


def normalise(kind: str, value: object, where: str) -> str:
    """Return the canonical spelling of one identity, or raise :class:`InvalidFact`."""
    if not isinstance(value, str):
        raise InvalidFact(f"{where}: expected a string, got {type(value).__name__}")
    text = value.strip()
    if not text:
        raise InvalidFact(f"{where}: is empty")
    if kind == "phone":
        digits = _PHONE_STRIP.sub("", text)
        if digits.startswith("00"):
            digits = "+" + digits[2:]
        elif len(digits) == 9 and digits[0] in "6789" and digits.isdigit():
            digits = "+34" + digits  # a bare Spanish number, as call centres often write it
        if not _PHONE_OK.fullmatch(digits):
            raise InvalidFact(f"{where}: {value!r} is not a phone number (write it like +34600000001)")
        return digits
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
        return _PHONE_STRIP.sub("", text).upper()
    if kind == "loyalty_card":
        return text.upper()
    if kind == "customer_id":
        if len(text) > 64:
            raise InvalidFact(f"{where}: longer than 64 characters")
        return text
    raise InvalidFact(f"{where}: unknown identity kind {kind!r}")


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
