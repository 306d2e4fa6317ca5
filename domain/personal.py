"""Which parts of a fact are personal data, and how a fact is split into (public, personal).

The ledger encrypts the personal part of every fact with a key of the customer it belongs to
(ledger/keys.py, ledger/crypto_mapper.py); forgetting the customer destroys the key, so the
personal part can never be read again while the public part (type, times, department, channel,
ids of cases and promises) keeps the analysts' counts working. See docs/privacy.md.

Personal:

* every value of the fact's ``customer`` reference (phone, e-mail, handle, customer number...),
  except a ledger id (a random-looking UUID that names the record, not the person);
* the data fields named in :data:`PERSONAL_DATA` (names, contact data, free texts, the identity
  keys a merge moved, the original reference of a merge...), whatever the type, except in the
  types listed in :data:`NO_PERSONAL_DATA`.

The split keeps the shape: a personal value is replaced by None in the public part, so a fact
whose personal part can no longer be decrypted reads back with those fields set to None.
"""

from __future__ import annotations

from typing import Any

from domain.identity import ledger_uuid

Fact = dict[str, Any]

#: Data fields holding personal data, by name (whatever the type).
PERSONAL_DATA = frozenset((
    "name", "birthday", "address", "phone", "email", "twitter", "handle",
    "value",       # identity.linked / identity.unlinked: the identity itself
    "text",        # consents, mentions, replies, case notes and answers: free text
    "evidence",    # consent evidence (a recording, a signed form)
    "issue",       # a warranty claim's description
    "from_ref",    # the reference a merge or unmerge named the other record by
    "identities",  # identity keys a merge or unmerge moved
    "reason",      # free text; merges write the identity key that triggered them here
    "subject",     # an e-mail's or letter's subject
))

#: Types whose data holds nothing personal (written by the ledger, readable after erasure).
NO_PERSONAL_DATA = frozenset(("customer.forgotten",))

#: The key under which a stored fact carries its encrypted personal part.
ENVELOPE = "$personal"


def is_personal_reference(kind: str, value: Any) -> bool:
    return not (kind == "customer_id" and isinstance(value, str) and ledger_uuid(value) is not None)


def split(fact: Fact) -> tuple[Fact, dict[str, Any]]:
    """(public part, personal part) of a fact; the personal part is {} when it has none.

    The public part is a copy with every personal value replaced by None (same keys); the
    personal part is ``{"customer": {...}, "data": {...}}`` with only the sections it needs.
    The fact itself is not changed.
    """
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
    personal_data = ({k: v for k, v in data.items() if k in PERSONAL_DATA and v is not None}
                     if isinstance(data, dict) and fact.get("type") not in NO_PERSONAL_DATA else {})
    personal: dict[str, Any] = {}
    public = dict(fact)
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
    for section in ("customer", "data"):
        if section in personal:
            fact[section] = {**fact.get(section, {}), **personal[section]}
    return fact


def erased(public: Fact) -> Fact:
    """A fact whose personal part cannot be read any more: personal fields None, marked."""
    fact = dict(public)
    fact.pop(ENVELOPE, None)
    fact["erased"] = True
    return fact
