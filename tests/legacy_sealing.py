"""The sealing rule of earlier ledgers, frozen: a deny-list of data field names.

Ledgers recorded with it hold, in clear, everything it did not name (the source id, unknown
data fields). Tests record with it to check that today's code still reads, verifies and
forgets such ledgers, and that readers of stored bytes still cope with what it left public.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

from domain import personal

#: The data fields the earlier rule sealed, whatever the type.
OLD_PERSONAL_DATA = frozenset((
    "name", "birthday", "address", "phone", "email", "twitter", "handle", "value", "text",
    "evidence", "issue", "from_ref", "identities", "reason", "subject",
))


def old_split(fact: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(public, personal) as the earlier rule split a fact."""
    ref: Any = fact.get("customer")
    data: Any = fact.get("data")
    personal_ref = ({k: v for k, v in ref.items() if personal.is_personal_reference(k, v)}
                    if isinstance(ref, dict) else {})
    personal_data = ({k: v for k, v in data.items() if k in OLD_PERSONAL_DATA and v is not None}
                     if isinstance(data, dict) and fact.get("type") != "customer.forgotten" else {})
    private: dict[str, Any] = {}
    public = dict(fact)
    if personal_ref:
        private["customer"] = personal_ref
        public["customer"] = {k: (None if k in personal_ref else v) for k, v in ref.items()}
    if personal_data:
        private["data"] = personal_data
        public["data"] = {k: (None if k in personal_data else v) for k, v in data.items()}
    return public, private


@contextmanager
def sealed_by_old_rule() -> Iterator[None]:
    """Facts recorded inside are sealed as an earlier ledger sealed them."""
    with mock.patch.object(personal, "split", old_split):
        yield
