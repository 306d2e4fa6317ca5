"""Which parts of a fact are personal data, and how a fact is split into (public, personal).

The ledger encrypts the personal part of every fact with a key of the customer it belongs to
(ledger/keys.py, ledger/crypto_mapper.py); forgetting the customer destroys the key, so the
personal part can never be read again while the public part keeps the analysts' counts and
the ledger's own bookkeeping working. See docs/privacy.md.

The rule is an allow-list, because sources send more than the catalogue knows (an ``iban``, a
nested ``contact.mobile``, an ``Email`` spelled their way) and a deny-list misses each new one:

* the data fields the catalogue declares non-personal (``Field.personal`` False: types,
  purposes, outcomes, channels, campaigns, the ledger's case/promise/claim/contract ids,
  booleans, durations...) stay in clear; a declared ``ref`` field (a merge's ``from``) only
  while it holds a ledger id, which the writer puts there;
* every other data field is personal: undeclared ones of any name, case or nesting, and the
  declared free texts, names, contact data and identities;
* every value of the fact's ``customer`` reference is personal, except a ledger id (a
  random-looking UUID that names the record, not the person);
* the fact's own ``id`` (the source's id) is personal: a call-detail-record id may carry the
  caller's phone. The ``event_id`` (a UUIDv5 hash of source and id) stays public, and so do
  ``type``, ``v``, ``source``, ``occurred_at``, ``department``, ``agent`` (an employee) and
  ``customer_uuid``; any other top-level field is personal;
* facts of the types in :data:`NO_PERSONAL_DATA` are written by the ledger with nothing
  personal in them and stay whole (a reader must see ``customer.forgotten`` without a key).

The split keeps the shape: a personal value is replaced by None in the public part, so a fact
whose personal part can no longer be decrypted reads back with those fields set to None. A
fact stored by an earlier rule joins back exactly as it was sealed: :func:`join` takes the
public part as stored and lays whatever the envelope holds over it.
"""

from __future__ import annotations

from typing import Any

from domain.catalogue import TYPES
from domain.identity import ledger_uuid

Fact = dict[str, Any]

#: Data fields the catalogue declares non-personal, by type.
PUBLIC_DATA: dict[str, frozenset[str]] = {
    name: frozenset(f.name for f in spec.fields if not f.personal) for name, spec in TYPES.items()}
#: Declared non-personal ``ref`` fields: public only while they hold a ledger id.
_PUBLIC_REFS: dict[str, frozenset[str]] = {
    name: frozenset(f.name for f in spec.fields if not f.personal and f.kind == "ref")
    for name, spec in TYPES.items()}

#: Top-level fields of a stored fact that name no person.
PUBLIC_TOP = frozenset(("type", "v", "event_id", "customer_uuid", "source", "occurred_at",
                        "department", "agent", "customer", "data"))

#: Data fields that hold personal data in every type that has them, by name: what the
#: analysts' snapshots strip from JSON columns and leave out as columns (they cannot ask the
#: catalogue per type). Sealing does not use it: it seals every field not declared safe.
PERSONAL_DATA = frozenset((
    "name", "birthday", "address", "phone", "email", "twitter", "handle", "value", "text",
    "evidence", "issue", "from_ref", "identities", "reason", "subject",
))

#: Types whose facts hold nothing personal (written by the ledger, readable after erasure).
NO_PERSONAL_DATA = frozenset(("customer.forgotten",))

#: The key under which a stored fact carries its encrypted personal part.
ENVELOPE = "$personal"


def is_personal_reference(kind: str, value: Any) -> bool:
    return not (kind == "customer_id" and isinstance(value, str) and ledger_uuid(value) is not None)


_NOTHING: frozenset[str] = frozenset()


def _personal_data(kind: Any, data: dict[str, Any]) -> dict[str, Any]:
    public = PUBLIC_DATA.get(kind, _NOTHING)
    refs = _PUBLIC_REFS.get(kind, _NOTHING)
    return {k: v for k, v in data.items()
            if v is not None and (k not in public or
                                  (k in refs and not (isinstance(v, str) and ledger_uuid(v) is not None)))}


def split(fact: Fact) -> tuple[Fact, dict[str, Any]]:
    """(public part, personal part) of a fact; the personal part is {} when it has none.

    The public part is a copy with every personal value replaced by None (same keys); the
    personal part is ``{"fact": {...}, "customer": {...}, "data": {...}}`` with only the
    sections it needs (``fact``: the personal top-level fields, such as ``id``). The fact
    itself is not changed.
    """
    kind = fact.get("type")
    if kind in NO_PERSONAL_DATA:
        return dict(fact), {}
    ref = fact.get("customer")
    data = fact.get("data")
    # Only a customer_id can be a ledger id (public): the per-identity check runs only when one
    # is there. It ran for every identity of every fact and was most of the sealing time.
    if not isinstance(ref, dict):
        personal_ref: dict[str, Any] = {}
    elif "customer_id" in ref:
        personal_ref = {k: v for k, v in ref.items() if is_personal_reference(k, v)}
    else:
        personal_ref = dict(ref)
    personal_data = _personal_data(kind, data) if isinstance(data, dict) else {}
    personal_top = {k: v for k, v in fact.items() if k not in PUBLIC_TOP and v is not None}
    personal: dict[str, Any] = {}
    public = dict(fact)
    if personal_top:
        personal["fact"] = personal_top
        public.update(dict.fromkeys(personal_top))
    if personal_ref:
        personal["customer"] = personal_ref
        public["customer"] = {k: (None if k in personal_ref else v) for k, v in ref.items()}  # type: ignore[union-attr]
    if personal_data:
        personal["data"] = personal_data
        public["data"] = {k: (None if k in personal_data else v) for k, v in data.items()}  # type: ignore[union-attr]
    return public, personal


def join(public: Fact, personal: dict[str, Any]) -> Fact:
    """The fact again, from its public part and its (decrypted) personal part."""
    fact = dict(public)
    if "fact" in personal:
        fact.update(personal["fact"])
    for section in ("customer", "data"):
        if section in personal:
            fact[section] = {**fact.get(section, {}), **personal[section]}
    return fact


def erased(public: Fact) -> Fact:
    """A fact whose personal part cannot be read any more: personal fields None, marked.

    Its source id reads as its event id (a hash of source and id, public anyway): readers
    keep a non-empty id, and what a stored fact of an earlier rule kept of the id in clear
    goes no further than the store."""
    fact = dict(public)
    fact.pop(ENVELOPE, None)
    if "event_id" in fact:
        fact["id"] = fact["event_id"]
    fact["erased"] = True
    return fact
