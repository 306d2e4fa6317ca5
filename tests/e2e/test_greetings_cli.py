"""``journey greetings`` and flagged addresses, from JSON Lines as people feed them."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import orjson
import pytest

from journey.cli import main

_ids = itertools.count(1)


def run(capsys: pytest.CaptureFixture[str], home: Path, *args: str) -> tuple[int, str, str]:
    code = main(["--data-dir", str(home), *args])
    out, err = capsys.readouterr()
    return code, out, err


def fact(kind: str, number: str, when: str, department: str | None = "sales", **data: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"type": kind, "id": f"g-{next(_ids)}", "source": "crm",
                           "customer": {"customer_id": number}, "occurred_at": when, "data": data}
    if department:
        doc["department"] = department
    return doc


def address(street: str, postal_code: str, city: str) -> dict[str, str]:
    return {"street": street, "number": "1", "postal_code": postal_code, "city": city}


def register(number: str, name: str, birthday: str | None, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"name": name, **extra}
    if birthday:
        data["birthday"] = birthday
    return fact("customer.registered", number, "2025-01-10T10:00:00+01:00", **data)


def consent(number: str, channel: str = "letter") -> dict[str, Any]:
    return fact("consent.given", number, "2025-01-10T10:05:00+01:00", "customer_care", channel=channel,
                purpose="commercial", text="Acepto recibir felicitaciones y ofertas")


SCENARIO = [
    # Ana: birthday in the window, consent to letters -> a letter.
    register("C-1", "Ana García", "1980-03-03", address=address("Calle Mayor", "28013", "Madrid"),
             email="ana@example.com"),
    consent("C-1"),
    # Bea: birthday in the window, but she objected to commercial contact -> skipped.
    register("C-2", "Bea López", "1990-03-05", address=address("Calle Sierpes", "41004", "Sevilla"),
             email="bea@example.com"),
    consent("C-2", "any"),
    fact("objection.recorded", "C-2", "2026-01-15T12:00:00+01:00", "customer_care", channels="all",
         purpose="commercial"),
    # Carlos: birthday in the window, greeted three months ago -> skipped (once a year).
    register("C-3", "Carlos Ruiz", "1975-03-06", address=address("Carrer Gran", "08001", "Barcelona")),
    consent("C-3"),
    fact("letter.sent", "C-3", "2025-12-06T10:00:00+01:00", "marketing", purpose="commercial",
         subject="greetings: 10 years since first purchase", campaign="greetings"),
    # Dora: no birthday, but her first purchase was on 2023-03-04 -> 3 years.
    register("C-4", "Dora Vidal", None, address=address("Calle Colón", "46004", "Valencia")),
    consent("C-4", "any"),
    fact("purchase.recorded", "C-4", "2023-03-04T17:00:00+01:00", "stores", product="Lavadora X"),
    fact("purchase.recorded", "C-4", "2024-03-07T17:00:00+01:00", "stores", product="Secadora Y"),
    # Eva: birthday outside the window -> not listed at all.
    register("C-5", "Eva Sanz", "1970-12-01", address=address("Calle Real", "28001", "Madrid")),
    consent("C-5"),
    # Fede: birthday in the window, no postal address, consents to e-mail -> an e-mail.
    register("C-6", "Fede Mora", "2000-03-08", email="fede@example.com"),
    consent("C-6", "email"),
]


@pytest.fixture
def home(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    source = tmp_path / "scenario.jsonl"
    source.write_text("".join(orjson.dumps(f).decode() + "\n" for f in SCENARIO))
    home = tmp_path / "ledger"
    code, out, _ = run(capsys, home, "append", str(source))
    assert code == 0, out
    return home


def test_greetings_lists_birthdays_and_anniversaries_and_skips_objections_and_recent_greetings(
        capsys: pytest.CaptureFixture[str], home: Path) -> None:
    code, out, _ = run(capsys, home, "greetings", "--from", "2026-03-02", "--json")
    assert code == 0
    doc = orjson.loads(out)
    assert (doc["from"], doc["to"], doc["days"], doc["per_year"]) == ("2026-03-02", "2026-03-08", 7, 1)
    sent = {g["customer_number"]: g for g in doc["greetings"]}
    assert list(sent) == ["C-1", "C-4", "C-6"]  # by date
    ana = sent["C-1"]
    assert (ana["date"], ana["name"], ana["channel"]) == ("2026-03-03", "Ana García", "letter")
    assert ana["occasion"] == "birthday, 46 years"
    assert ana["to"] == "Calle Mayor 1, 28013 Madrid"
    assert ana["address"]["postal_code"] == "28013" and ana["address_verify"] == []
    dora = sent["C-4"]
    assert (dora["date"], dora["occasion"]) == ("2026-03-04", "3 years since first purchase")
    assert sent["C-6"]["channel"] == "email" and sent["C-6"]["to"] == "fede@example.com"
    assert sent["C-6"]["occasion"] == "birthday, 26 years"

    skipped = {s["customer_number"]: s for s in doc["skipped"]}
    assert set(skipped) == {"C-2", "C-3"}
    assert all(s["channel"] is None for s in skipped.values())
    bea = skipped["C-2"]
    assert {(r["code"], r["channel"]) for r in bea["reasons"]} == {("objection", "letter"),
                                                                  ("objection", "email")}
    carlos = [r["code"] for r in skipped["C-3"]["reasons"]]
    assert carlos == ["once_a_year"]
    assert "2025-12-06" in skipped["C-3"]["reasons"][0]["message"]

    code, out, _ = run(capsys, home, "greetings", "--from", "2026-03-02")
    assert code == 0
    assert "Ana García" in out and "birthday, 46 years" in out and "[objection]" in out
    assert "Eva Sanz" not in out


def test_recorded_greetings_are_not_sent_again_within_the_year(capsys: pytest.CaptureFixture[str],
                                                               home: Path) -> None:
    code, out, err = run(capsys, home, "greetings", "--from", "2026-03-02", "--record", "--json")
    assert code == 0, err
    assert orjson.loads(out)["recorded"]["recorded"] == 3

    code, out, _ = run(capsys, home, "customer", "C-1", "--json")
    letters = [r for r in orjson.loads(out)["timeline"] if r["type"] == "letter.sent"]
    assert [(r["purpose"], r["campaign"]) for r in letters] == [("commercial", "greetings")]

    code, out, _ = run(capsys, home, "greetings", "--from", "2026-03-02", "--json")
    doc = orjson.loads(out)
    assert doc["greetings"] == []
    reasons = {s["customer_number"]: [r["code"] for r in s["reasons"]] for s in doc["skipped"]}
    assert reasons["C-1"] == reasons["C-4"] == ["once_a_year"]
    assert reasons["C-6"] == ["once_a_year", "no_postal_address"]  # no letter possible either
    # Twice a year allowed: they may be greeted again.
    code, out, _ = run(capsys, home, "greetings", "--from", "2026-03-02", "--per-year", "2", "--json")
    assert {g["customer_number"] for g in orjson.loads(out)["greetings"]} == {"C-1", "C-3", "C-4", "C-6"}


def test_bad_usage_exits_2(capsys: pytest.CaptureFixture[str], home: Path) -> None:
    assert run(capsys, home, "greetings", "--from", "03/02/2026")[0] == 2
    assert run(capsys, home, "greetings", "--days", "0")[0] == 2
    assert run(capsys, home, "greetings", "--per-year", "0")[0] == 2


def test_an_address_with_a_mismatching_postal_code_is_recorded_and_flagged(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    facts = [
        register("C-9", "Gema Gil", "1985-06-01", address=address("Calle Mayor", "28013", "Madrid")),
        fact("address.changed", "C-9", "2026-02-03T10:30:00+01:00", "billing",
             address=address("Calle de Alcalá", "08009", "Madrid"), reason="customer moved"),
    ]
    source = tmp_path / "moves.jsonl"
    source.write_text("".join(orjson.dumps(f).decode() + "\n" for f in facts))
    home = tmp_path / "ledger"
    code, out, _ = run(capsys, home, "append", str(source))
    assert code == 0 and out.startswith("recorded 2,")

    code, out, _ = run(capsys, home, "customer", "C-9", "--json")
    view = orjson.loads(out)
    assert view["contact"]["address"]["postal_code"] == "08009"  # recorded as given
    assert view["contact"]["address_verify"] == ["postal_code_city_mismatch"]
    changes = [c for c in view["contact_history"] if c["field"] == "address"]
    assert [c["verify"] for c in changes] == [[], ["postal_code_city_mismatch"]]
    assert changes[1]["change"] == "address.changed" and changes[1]["department"] == "billing"
