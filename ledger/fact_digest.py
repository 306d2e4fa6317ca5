"""What a fact says, as bytes, and the keyed digest the index keeps of it.

A fact's ``(source, id)`` is its idempotency key; the digest tells a resend of the same fact
(a duplicate) from a different fact under the same key (a conflict, rejected). It covers what
the sender asserts, as validated: type, customer reference, occurred_at, department, agent
and data. Not the ledger's own additions (event id, customer uuid, what a merge writes into
its data) and not the catalogue version: the same fact validated again must digest the same.
``occurred_at`` counts as the instant it names, so a resend written with another UTC offset
is the same fact.

The digest is a keyed BLAKE2b (a MAC, and a third of HMAC-SHA256's cost: it runs once per
fact of every batch) under a key derived from the key of the customer record the fact was
recorded for (ledger/keys.py): a plain hash of content that holds a phone number can be
reversed by trying every phone number. Forgetting the customer destroys that key, and with
it any way to test a guess against the digest.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson

#: The parts of a validated fact its sender asserts (``id`` and ``source`` are the key itself).
CONTENT_FIELDS = ("type", "customer", "occurred_at", "department", "agent", "data")

#: Bytes kept per fact: collisions between two contents of one key are what matters, and
#: 128 bits leave none in practice while halving the index column.
DIGEST_BYTES = 16

_LABEL = b"fact digest v1"


def content_of(fact: dict[str, Any]) -> dict[str, Any]:
    """The asserted part of a fact, ``occurred_at`` as a UTC instant."""
    content = {k: fact[k] for k in CONTENT_FIELDS if k in fact}
    occurred = content.get("occurred_at")
    if isinstance(occurred, str) and not occurred.endswith("+00:00"):
        try:
            moment = datetime.fromisoformat(occurred)
        except ValueError:  # not an instant: compared as written
            return content
        content["occurred_at"] = moment.astimezone(UTC).isoformat()
    return content


def content_bytes(fact: dict[str, Any]) -> bytes:
    """:func:`content_of` in one canonical encoding (keys sorted), what the digest covers."""
    return orjson.dumps(content_of(fact), option=orjson.OPT_SORT_KEYS)


@lru_cache(maxsize=4096)
def _digest_key(record_key: bytes) -> bytes:
    """A key of its own for digests: the record's key also encrypts (AES-GCM), and one key
    should not serve two primitives."""
    return hashlib.blake2b(_LABEL, key=record_key, digest_size=32).digest()


def digest(record_key: bytes, content: bytes) -> bytes:
    return hashlib.blake2b(content, key=_digest_key(record_key), digest_size=DIGEST_BYTES).digest()
