"""The can-contact decision, one function for the CLI and the API (journey/usecases/contact.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from journey.usecases.contact import ContactQuestionError, UnknownCustomer, contact_decision
from tests.api.conftest import SCENARIO, record
from tests.ledgers import open_journey


def test_contact_decision_answers_and_refuses_bad_questions(tmp_path: Path) -> None:
    home = tmp_path / "ledger"
    record(home, SCENARIO)
    journey = open_journey(home)
    try:
        answer = contact_decision(journey, "+34600111001", channel="phone", purpose="commercial",
                                  at="2026-05-20T11:00:00+02:00")
        assert answer.decision.allowed is False
        assert answer.at.isoformat() == "2026-05-20T11:00:00+02:00"
        assert answer.customer_id == journey.projections.resolve("customer_id:C-1001")
        with pytest.raises(UnknownCustomer, match="nobody known as '\\+34699999999'"):
            contact_decision(journey, "+34699999999", channel="phone", purpose="commercial")
        for kwargs, message in (({"channel": "fax"}, "channel 'fax' is not one of"),
                                ({"purpose": "gossip"}, "purpose 'gossip' is not one of"),
                                ({"at": "2026-05-20T11:00:00"}, "--at"),
                                ({"policy": str(tmp_path / "none.toml")}, "no such file")):
            question = {"channel": "phone", "purpose": "commercial", **kwargs}
            with pytest.raises(ContactQuestionError, match=message) as raised:
                contact_decision(journey, "C-1001", **question)
            assert not isinstance(raised.value, UnknownCustomer)
        with pytest.raises(ContactQuestionError, match="not a phone number"):
            contact_decision(journey, "phone:12", channel="phone", purpose="commercial")
    finally:
        journey.close()
