"""The identity rules of earlier ledgers, frozen: hand-written regexes that knew Spain only.

They took any ``+`` and 7-15 digits (so unassigned ranges too), read a bare 9-digit number
starting 6-9 as Spanish, and upper-cased national ids without checking them. Tests record
with them to check that today's rules find the same people in such ledgers: the same keys
for every number both accept, and lookups of what only the earlier rules took.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from unittest import mock

from domain import identity
from domain.errors import InvalidFact

_PHONE_STRIP = re.compile(r"[\s\-.()/]")
_PHONE_OK = re.compile(r"\+[1-9]\d{6,14}")

_today = identity.normalise


def old_normalise(kind: str, value: object, where: str, *, region: str | None = None) -> str:
    """:func:`domain.identity.normalise` as the earlier rules spelled phones and national ids."""
    if kind not in ("phone", "national_id"):
        return _today(kind, value, where)
    if not isinstance(value, str):
        raise InvalidFact(f"{where}: expected a string, got {type(value).__name__}")
    text = value.strip()
    if not text:
        raise InvalidFact(f"{where}: is empty")
    if kind == "national_id":
        return _PHONE_STRIP.sub("", text).upper()
    digits = _PHONE_STRIP.sub("", text)
    if digits.startswith("00"):
        digits = "+" + digits[2:]
    elif len(digits) == 9 and digits[0] in "6789" and digits.isdigit():
        digits = "+34" + digits
    if not _PHONE_OK.fullmatch(digits):
        raise InvalidFact(f"{where}: {value!r} is not a phone number (write it like +34600000001)")
    return digits


@contextmanager
def normalised_by_old_rules() -> Iterator[None]:
    """Facts validated inside are judged and spelled as an earlier ledger did."""
    with mock.patch.object(identity, "normalise", old_normalise):
        yield
