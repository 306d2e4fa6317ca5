"""Every way the company asks the contact policy keeps the same public-holiday calendar.

``journey can-contact`` (and the API's decision, the same function), ``journey violations``,
``journey replay decision`` and ``journey greetings`` read the customer's address from the
ledger, including a later ``address.changed``, over real SQLite and DuckDB files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from journey.cli import main
from journey.usecases.contact import contact_decision
from tests.ledgers import open_journey

BARCELONA = {"street": "Carrer de Mallorca", "number": "3", "postal_code": "08008", "city": "Barcelona"}
MADRID = {"street": "Calle Mayor", "number": "7", "postal_code": "28013", "city": "Madrid"}
MADRID_DAY = "2012-05-02T11:00:00+02:00"  # a Wednesday: Fiesta de la Comunidad de Madrid
DIADA = "2012-09-11T11:00:00+02:00"  # a Tuesday: Fiesta Nacional de Cataluña


def run(capsys: pytest.CaptureFixture[str], home: Path, *args: str) -> tuple[int, str, str]:
    code = main(["--data-dir", str(home), *args])
    out, err = capsys.readouterr()
    return code, out, err


def fact(customer: str, n: int, kind: str, occurred: str, data: dict[str, Any],
         department: str = "sales") -> dict[str, Any]:
    return {"type": kind, "id": f"{customer}-{n}", "source": "crm", "customer": {"customer_id": customer},
            "occurred_at": occurred, "department": department, "data": data}


def customer(ref: str, phone: str, address: dict[str, str], moved_to: dict[str, str] | None = None,
             ) -> list[dict[str, Any]]:
    """Registered in 2011 with a contract (the only thing a call can break is the calling
    hours), born on 2 May, called on 2 May and 11 September 2012; ``moved_to``: the address
    recorded by an ``address.changed`` on 1 March 2012."""
    return [
        fact(ref, 1, "customer.registered", "2011-01-10T10:00:00+01:00",
             {"name": f"Ana {ref}", "phone": phone, "birthday": "1980-05-02", "address": address,
              "timezone": "Europe/Madrid"}),
        fact(ref, 2, "contract.started", "2011-01-10T10:05:00+01:00", {"contract_id": f"K-{ref}",
                                                                       "service": "fibra"}),
        *([fact(ref, 3, "address.changed", "2012-03-01T10:00:00+01:00",
                {"address": moved_to, "requested_by": "customer"}, "customer_care")] if moved_to else []),
        fact(ref, 4, "call.outbound", MADRID_DAY,
             {"purpose": "commercial", "campaign": "fibra", "outcome": "no_answer"}),
        fact(ref, 5, "call.outbound", DIADA,
             {"purpose": "commercial", "campaign": "fibra", "outcome": "no_answer"}),
    ]


@pytest.fixture
def home(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    # C-1 registered in Barcelona and moved to Madrid before 2012; C-2 lives in Barcelona.
    facts = [*customer("C-1", "+34600123001", BARCELONA, moved_to=MADRID),
             *customer("C-2", "+34600123002", BARCELONA)]
    source = tmp_path / "facts.jsonl"
    source.write_text("".join(orjson.dumps(f).decode() + "\n" for f in facts))
    home = tmp_path / "ledger"
    code, out, err = run(capsys, home, "append", str(source))
    assert code == 0, (out, err)
    return home


def ask(capsys: pytest.CaptureFixture[str], home: Path, ref: str, at: str, *extra: str
        ) -> tuple[int, dict[str, Any], str]:
    code, out, err = run(capsys, home, "can-contact", ref, "--channel", "phone", "--purpose", "commercial",
                         "--at", at, "--json", *extra)
    return code, orjson.loads(out), err


def test_can_contact_and_its_replay_keep_the_holidays_of_the_customers_community(
        capsys: pytest.CaptureFixture[str], home: Path) -> None:
    code, madrid, err = ask(capsys, home, "C-1", MADRID_DAY, "--record")
    assert code == 4, err
    [reason] = madrid["reasons"]
    assert reason["code"] == "quiet_hours"
    assert ("2012-05-02 is a holiday in Comunidad de Madrid (Fiesta de la Comunidad de Madrid)"
            in reason["message"])
    assert "from the address change of 2012-03-01 10:00 +01:00 (by customer care)" in reason["message"]
    assert len(reason["event_ids"]) == 2  # the registration (timezone) and the address change
    decided = err.split("contact.decided ")[1].split()[0]
    code, out, err = run(capsys, home, "replay", "decision", decided, "--json")
    assert code == 0, (out, err)
    replayed = orjson.loads(out)
    assert replayed["agree"] is True
    assert replayed["recomputed"]["reasons"] == madrid["reasons"]

    code, allowed, _ = ask(capsys, home, "C-2", MADRID_DAY)
    assert (code, allowed["allowed"], allowed["reasons"]) == (0, True, [])
    code, barcelona, _ = ask(capsys, home, "C-2", DIADA)
    assert code == 4 and "is a holiday in Cataluña (" in barcelona["reasons"][0]["message"]
    assert ask(capsys, home, "C-1", DIADA)[0] == 0
    for ref in ("C-1", "C-2"):
        code, epiphany, _ = ask(capsys, home, ref, "2012-01-06T11:00:00+01:00")
        assert code == 4
        assert "2012-01-06 is a public holiday in Spain (Epifanía del Señor)" in epiphany["reasons"][0]["message"]

    # The API answers with the same function.
    journey = open_journey(home)
    try:
        answer = contact_decision(journey, "C-1", channel="phone", purpose="commercial", at=MADRID_DAY)
        assert answer.decision.to_json()["reasons"] == madrid["reasons"]
    finally:
        journey.close()


def test_violations_and_the_replay_of_a_call_judge_by_the_same_calendar(
        capsys: pytest.CaptureFixture[str], home: Path) -> None:
    code, out, _ = run(capsys, home, "violations", "--json")
    assert code == 0
    report = orjson.loads(out)
    assert report["checked"] == 4
    found = {(v["customer_number"], v["occurred_at"][:10]): v for v in report["violations"]}
    assert set(found) == {("C-1", "2012-05-02"), ("C-2", "2012-09-11")}
    assert "Comunidad de Madrid" in found["C-1", "2012-05-02"]["reasons"][0]["message"]
    assert "Cataluña" in found["C-2", "2012-09-11"]["reasons"][0]["message"]

    call = found["C-1", "2012-05-02"]["event_id"]
    code, out, _ = run(capsys, home, "replay", "decision", call)
    assert code == 1 and "DISAGREE" in out and "Comunidad de Madrid" in out, out


def test_greetings_keep_the_holidays_when_the_policy_binds_letters(
        capsys: pytest.CaptureFixture[str], home: Path, tmp_path: Path) -> None:
    policy = tmp_path / "letters.toml"
    policy.write_text('version = "letters"\n[quiet_hours]\nchannels = ["phone", "letter", "email"]\n')
    # 2 May 2029 is a Wednesday: both customers' birthday, a holiday in Madrid only.
    code, out, err = run(capsys, home, "greetings", "--from", "2029-05-02", "--days", "1",
                         "--policy", str(policy), "--json")
    assert code == 0, err
    plan = orjson.loads(out)
    assert [(g["customer_number"], g["channel"]) for g in plan["greetings"]] == [("C-2", "letter")]
    [skipped] = plan["skipped"]
    assert skipped["customer_number"] == "C-1"
    assert any(r["code"] == "quiet_hours" and "Comunidad de Madrid" in r["message"]
               for r in skipped["reasons"])
