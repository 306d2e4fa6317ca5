from __future__ import annotations

import uuid

import pytest

from domain import identity
from domain.errors import InvalidFact


@pytest.mark.parametrize(
    ("kind", "raw", "canonical"),
    [
        pytest.param("phone", "+34 600-000-001", "+34600000001", id="spaces-dashes"),
        pytest.param("phone", "0034600000001", "+34600000001", id="double-zero"),
        pytest.param("phone", "600000001", "+34600000001", id="bare-spanish"),
        pytest.param("email", " Juan@Example.COM ", "juan@example.com", id="email-case"),
        pytest.param("twitter", "JuanP", "@juanp", id="handle-no-at"),
        pytest.param("twitter", "@juan_p", "@juan_p", id="handle"),
        pytest.param("national_id", "12345678-z", "12345678Z", id="national-id"),
        pytest.param("loyalty_card", "l-1", "L-1", id="card"),
    ],
)
def test_normalise(kind: str, raw: str, canonical: str) -> None:
    assert identity.normalise(kind, raw, "x") == canonical


@pytest.mark.parametrize(("kind", "raw"), [("phone", "12"), ("email", "a@b"), ("twitter", "way_too_long_handle_x"),
                                           ("phone", "")])
def test_malformed_identities_are_refused(kind: str, raw: str) -> None:
    with pytest.raises(InvalidFact, match="where"):
        identity.normalise(kind, raw, "where")


def test_a_customer_number_decides_and_ids_are_deterministic() -> None:
    ref = {"customer_id": "C-1", "phone": "+34600000001"}
    first = identity.resolve(ref, {})
    assert first.customer_id == identity.customer_uuid("C-1") == identity.resolve(ref, {}).customer_id
    assert first.is_new and first.kind == "customer"
    assert first.learned == ["customer_id:C-1", "phone:+34600000001"]


def test_the_most_specific_known_identity_wins() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    owners = {"phone:+34600000001": a, "email:x@y.com": b}
    who = identity.resolve({"email": "x@y.com", "phone": "+34600000001", "twitter": "@new"}, owners)
    assert who.customer_id == a and not who.is_new
    assert who.learned == ["twitter:@new"]  # the e-mail belongs to b: not moved by a touchpoint


def test_an_unknown_identity_starts_a_prospect() -> None:
    who = identity.resolve({"twitter": "@nobody"}, {})
    assert who.is_new and who.kind == "prospect"
    assert who.customer_id == identity.prospect_uuid("twitter:@nobody")


def test_event_ids_are_the_idempotency_key() -> None:
    assert identity.event_uuid("cc", "1") == identity.event_uuid("cc", "1")
    assert identity.event_uuid("cc", "1") != identity.event_uuid("cc2", "1")
    assert identity.event_uuid("a", "bc") != identity.event_uuid("ab", "c")
