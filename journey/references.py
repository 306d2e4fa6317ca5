"""What a person types to name a customer, turned into an identity key."""

from __future__ import annotations

import uuid

from domain import identity


def reference_key(ref: str) -> str:
    """What a person types (+34..., @handle, e-mail, C-123, a ledger id, kind:value) as a key."""
    text = ref.strip()
    kind, sep, value = text.partition(":")
    if sep and kind in identity.IDENTITY_KINDS:
        return identity.key(kind, identity.normalise(kind, value, "REF"))
    if text.startswith("@"):
        kind = "twitter"
    elif "@" in text:
        kind = "email"
    elif text.lstrip("+").replace(" ", "").isdigit():
        kind = "phone"
    else:
        try:
            return "ledger:" + str(uuid.UUID(text))
        except ValueError:
            kind = "customer_id"
    return identity.key(kind, identity.normalise(kind, text, "REF"))
