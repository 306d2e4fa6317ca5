"""What a person types to name a customer, turned into an identity key."""

from __future__ import annotations

import uuid

from domain import identity
from domain.errors import InvalidFact

#: The prefix of a ledger id as keys print it (``ledger:<uuid>``), accepted back as input.
LEDGER = "ledger"


def reference_key(ref: str) -> str:
    """What a person types (+34..., @handle, e-mail, C-123, a ledger id, kind:value) as a key.

    Raises :class:`InvalidFact` (a ``ValueError``) with a message for people when ``ref`` names
    nothing it could be: a malformed phone, e-mail, national id, or ``ledger:`` id. A phone or
    national id the ledger's earlier rules took but today's refuse (an unassigned range, a wrong
    DNI letter) still names what was recorded with it: looking it up finds that person, or
    nobody; only new facts are refused it.
    """
    text = ref.strip()
    kind, sep, value = text.partition(":")
    if sep and kind in identity.IDENTITY_KINDS:
        return _key(kind, value)
    if sep and kind == LEDGER:
        return f"{LEDGER}:{ledger_id(value)}"
    if text.startswith("@"):
        kind = "twitter"
    elif "@" in text:
        kind = "email"
    elif text.lstrip("+").replace(" ", "").isdigit():
        kind = "phone"
    else:
        try:
            return f"{LEDGER}:{uuid.UUID(text)}"
        except ValueError:
            kind = "customer_id"
    return _key(kind, text)


def _key(kind: str, text: str) -> str:
    try:
        return identity.key(kind, identity.normalise(kind, text, "REF"))
    except InvalidFact:
        earlier = identity.earlier_spelling(kind, text)
        if earlier is None:
            raise
        return identity.key(kind, earlier)


def ledger_id(text: str) -> uuid.UUID:
    """The ledger id ``text`` spells; :class:`InvalidFact` when it is not a UUID."""
    try:
        return uuid.UUID(text.strip())
    except ValueError:
        raise InvalidFact(f"REF: {text!r} is not a ledger id (a UUID, like "
                          "0f8fad5b-d9cb-469f-a165-70867728950e)") from None
