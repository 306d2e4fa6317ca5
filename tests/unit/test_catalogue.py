"""The contract: every documented example is valid, every rejection says what and where."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from consumers.jsonl_ingest import parse_line
from domain import catalogue
from domain.errors import InvalidFact

DOCS = Path(__file__).resolve().parents[2] / "docs" / "events.md"


def documented_examples() -> dict[str, dict[str, Any]]:
    blocks = re.findall(r"```json\n(.*?)\n```", DOCS.read_text(), flags=re.S)
    facts = [orjson.loads(b) for b in blocks]
    return {f["type"]: f for f in facts if f.get("source") == "docs"}


EXAMPLES = documented_examples()
INPUT_TYPES = [t for t, spec in catalogue.TYPES.items() if not spec.system]


def test_every_input_type_has_a_documented_example() -> None:
    assert sorted(EXAMPLES) == sorted(INPUT_TYPES)


@pytest.mark.parametrize("type_name", INPUT_TYPES)
def test_documented_example_is_valid(type_name: str) -> None:
    fact = catalogue.validate(EXAMPLES[type_name])
    assert fact["type"] == type_name
    assert fact["v"] == catalogue.TYPES[type_name].version
    for field in catalogue.TYPES[type_name].fields:
        if field.required:
            assert field.name in fact["data"]


@pytest.mark.parametrize("type_name", INPUT_TYPES)
def test_each_required_field_is_enforced(type_name: str) -> None:
    for field in catalogue.TYPES[type_name].fields:
        if not field.required:
            continue
        raw = orjson.loads(orjson.dumps(EXAMPLES[type_name]))
        del raw["data"][field.name]
        with pytest.raises(InvalidFact, match=rf"data\.{field.name}: missing"):
            catalogue.validate(raw)


BASE = {"type": "call.outbound", "id": "c-1", "source": "cc", "customer": {"phone": "+34600000001"},
        "occurred_at": "2012-01-09T22:00:00+01:00", "data": {"purpose": "commercial"}}


def _with(**changes: Any) -> bytes:
    raw = dict(BASE)
    for key, value in changes.items():
        if value is None:
            raw.pop(key, None)
        else:
            raw[key] = value
    return orjson.dumps(raw)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        pytest.param(b'{"type": "call.outbound", ', "not valid JSON", id="broken-json"),
        pytest.param(b"[1, 2]", "expected a JSON object, got list", id="not-an-object"),
        pytest.param(_with(type="call.outgoing"), "unknown type 'call.outgoing' (did you mean 'call.outbound'?)",
                     id="unknown-type"),
        pytest.param(_with(type="identity.unlinked"), "is written by the ledger itself", id="system-type"),
        pytest.param(_with(type=None), "type: missing", id="missing-type"),
        pytest.param(_with(id=None), "id: missing", id="missing-id"),
        pytest.param(_with(source=""), "source: expected a non-empty string", id="empty-source"),
        pytest.param(_with(customer=None), "customer: missing", id="missing-customer"),
        pytest.param(_with(customer="+34600000001"), "customer: expected an object", id="customer-not-object"),
        pytest.param(_with(customer={}), "customer: names no identity", id="customer-empty"),
        pytest.param(_with(customer={"fax": "1"}), "customer.fax: unknown identity kind", id="unknown-identity"),
        pytest.param(_with(customer={"phone": "call me"}), "customer.phone: 'call me' is not a phone number",
                     id="bad-phone"),
        pytest.param(_with(customer={"email": "nobody"}), "customer.email: 'nobody' is not an e-mail",
                     id="bad-email"),
        pytest.param(_with(occurred_at=None), "occurred_at: missing", id="missing-occurred-at"),
        pytest.param(_with(occurred_at="2012-01-09T22:00:00"), "has no UTC offset", id="no-offset"),
        pytest.param(_with(occurred_at="yesterday"), "is not an ISO 8601 timestamp", id="not-a-timestamp"),
        pytest.param(_with(occurred_at=1326142800), "expected an ISO 8601 string, got int", id="epoch-number"),
        pytest.param(_with(department=7), "department: expected a string, got int", id="department-type"),
        pytest.param(_with(data=[1]), "data: expected an object, got list", id="data-not-object"),
        pytest.param(_with(data={"purpose": "commercial", "duration_s": "30"}),
                     "data.duration_s: expected an integer, got string '30'", id="wrong-field-type"),
        pytest.param(_with(data={"purpose": "commercial", "duration_s": True}),
                     "data.duration_s: expected an integer", id="bool-is-not-int"),
        pytest.param(_with(data={"purpose": "spam"}), "data.purpose: 'spam' is not one of commercial, service",
                     id="bad-choice"),
        pytest.param(_with(data={}), "data.purpose: missing (required for call.outbound)", id="missing-data-field"),
        pytest.param(_with(extra=1), "extra: unknown top-level field", id="unknown-top-level"),
    ],
)
def test_rejection_reason(line: bytes, reason: str) -> None:
    with pytest.raises(InvalidFact) as caught:
        parse_line(line)
    assert reason in str(caught.value)


def test_defaults_are_filled_and_unknown_data_kept() -> None:
    fact = catalogue.validate({**BASE, "type": "purchase.recorded",
                               "data": {"product": "TV", "colour": "black"}})
    assert fact["data"] == {"product": "TV", "colour": "black", "warranty_months": 24}
    objection = catalogue.validate({**BASE, "type": "objection.recorded", "data": {}})
    assert objection["data"] == {"channels": "all", "purpose": "commercial"}


def test_identities_in_registration_are_normalised() -> None:
    fact = catalogue.validate({**BASE, "type": "customer.registered",
                               "data": {"name": "A", "phone": "600 00 00 02", "twitter": "Ana_B"}})
    assert fact["data"]["phone"] == "+34600000002"
    assert fact["data"]["twitter"] == "@ana_b"
    assert catalogue.claimed_identities(fact) == ["phone:+34600000001", "phone:+34600000002",
                                                  "twitter:@ana_b"]


def test_bad_timezone_and_address_are_rejected() -> None:
    with pytest.raises(InvalidFact, match=r"data\.timezone: 'Mars/Base' is not an IANA time zone"):
        catalogue.validate({**BASE, "type": "customer.registered",
                            "data": {"name": "A", "timezone": "Mars/Base"}})
    with pytest.raises(InvalidFact, match=r"data.address.city: missing"):
        catalogue.validate({**BASE, "type": "address.changed",
                            "data": {"address": {"street": "x", "postal_code": "28001"}}})


def test_upcasting_brings_old_versions_to_the_current_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = catalogue.TYPES["call.inbound"]
    monkeypatch.setitem(catalogue.TYPES, "call.inbound",
                        catalogue.EventType(spec.name, 2, spec.fields, channel=spec.channel))
    monkeypatch.setitem(catalogue.UPCASTERS, ("call.inbound", 1),
                        lambda data: {**data, "reason": data.get("reason") or "unknown"})
    old = {"type": "call.inbound", "v": 1, "data": {}}
    assert catalogue.upcast(old) == {"type": "call.inbound", "v": 2, "data": {"reason": "unknown"}}
    current = {"type": "call.inbound", "v": 2, "data": {}}
    assert catalogue.upcast(current) is current


@pytest.mark.parametrize(
    ("type_name", "data", "channel"),
    [
        pytest.param("call.outbound", {"purpose": "service"}, "phone", id="call"),
        pytest.param("consent.given", {"channel": "email"}, "email", id="consent"),
        pytest.param("objection.recorded", {"channels": "all"}, "any", id="objection-all"),
        pytest.param("objection.recorded", {"channels": ["sms"]}, "sms", id="objection-one"),
        pytest.param("purchase.recorded", {}, None, id="no-channel"),
    ],
)
def test_channel_of(type_name: str, data: dict[str, Any], channel: str | None) -> None:
    assert catalogue.channel_of({"type": type_name, "data": data}) == channel
