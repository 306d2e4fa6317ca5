"""Stored facts no reader can handle, written straight into the store: every command still
answers, the quarantine lists exactly those facts, everything else is projected, and a fix
followed by ``journey quarantine retry`` applies them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

from journey import demo_data
from tests import planted
from tests.ledgers import append, open_journey


def journey(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "journey.cli", "--data-dir", str(home), *args],
                          capture_output=True, text=True, timeout=300)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def json_of(home: Path, *args: str) -> Any:
    done = journey(home, *args, "--json")
    assert done.returncode == 0, done.stderr
    return orjson.loads(done.stdout)


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A demo ledger projected once, then one planted fact of each fault, spread over three
    registered customers (none of the demo's facts is touched)."""
    home = tmp_path_factory.mktemp("quarantine") / "ledger"
    j = open_journey(home)
    try:
        facts = list(demo_data.generate(40, seed=11))
        append(j, facts)
        j.project()
        customers = [r[0] for r in j.projections.con.execute(
            "SELECT customer_id FROM customers WHERE kind = 'customer' AND cardinality(merged_from) = 0 "
            "ORDER BY customer_id LIMIT 4").fetchall()]
        good = j.app.recorder.max_notification_id()
    finally:
        j.close()
    affected, unaffected = customers[:3], customers[3]
    positions = {name: planted.plant(home / "ledger.sqlite", affected[i % 3], make(affected[i % 3]))
                 for i, (name, make) in enumerate(planted.FAULTS.items())}
    return {"home": home, "positions": positions, "affected": affected, "unaffected": unaffected,
            "good": good}


def events_rows(home: Path) -> int:
    with duckdb.connect(str(home / "projections.duckdb"), read_only=True) as con:
        return int(con.execute("SELECT count(*) FROM events").fetchall()[0][0])


def test_every_reader_answers_and_the_quarantine_lists_exactly_the_planted_facts(
        ledger: dict[str, Any]) -> None:
    home, positions = ledger["home"], ledger["positions"]
    done = journey(home, "project")
    assert done.returncode == 0, done.stderr
    status = json_of(home, "status")
    assert status["projection_position"] == status["store_position"] == max(positions.values())
    assert status["quarantined"] == len(positions)
    assert [e["position"] for e in status["quarantine_latest"]] == sorted(positions.values(),
                                                                          reverse=True)[:5]
    listed = json_of(home, "quarantine")
    assert [e["position"] for e in listed["entries"]] == sorted(positions.values())
    by_position = {e["position"]: e for e in listed["entries"]}
    assert "outside" in by_position[positions["year-one"]]["reason"]
    assert "warranty" in by_position[positions["warranty-overflow"]]["reason"]
    assert "not JSON" in by_position[positions["not-json"]]["reason"]
    assert "nested too deeply" in by_position[positions["deep-nesting"]]["reason"]
    assert "without data.channel" in by_position[positions["missing-field"]]["reason"]
    assert "unknown type" in by_position[positions["unknown-type"]]["reason"]
    assert by_position[positions["year-one"]]["customer_id"] == ledger["affected"][0]
    # Every other fact is projected, once.
    assert events_rows(home) == ledger["good"]

    text = journey(home, "status")
    assert f"quarantined            {len(positions)}" in text.stdout

    first = ledger["affected"][0]
    view = json_of(home, "customer", first)
    assert view["quarantined"] == sorted(p for name, p in positions.items()
                                         if name in ("year-one", "deep-nesting"))  # not-json: no customer
    assert all(row["position"] not in positions.values() for row in view["timeline"])
    assert "2 stored facts quarantined" in journey(home, "customer", first).stdout
    assert json_of(home, "customer", ledger["unaffected"])["quarantined"] == []
    assert "quarantined" not in journey(home, "customer", ledger["unaffected"]).stdout
    asof = json_of(home, "customer", first, "--occurred-by", "2030-01-01T00:00:00+00:00")
    assert set(asof["quarantined"]) >= {positions["year-one"], positions["deep-nesting"]}
    assert all(row["position"] not in positions.values() for row in asof["timeline"])
    assert journey(home, "customer", ledger["affected"][2], "--as-of",
                   "2030-01-01T00:00:00+00:00").returncode == 0
    for args in (("cases",), ("inbox",), ("greetings", "--days", "7"), ("export",),
                 ("can-contact", ledger["affected"][1], "--channel", "phone", "--purpose", "service")):
        done = journey(home, *args)
        assert done.returncode in (0, 4), (args, done.stderr)
    access = home.parent / "access.json"
    assert journey(home, "subject-access", first, "--out", str(access)).returncode == 0
    held = orjson.loads(access.read_bytes())
    assert sorted(e["position"] for e in held["raw_events"] if "quarantined" in e) == \
        sorted(p for name, p in positions.items() if name in ("year-one", "not-json", "deep-nesting"))
    assert held["summary"]["quarantined_events"] == 3

    rebuilt = home.parent / "rebuilt"
    done = journey(home, "replay", "rebuild", "--into", str(rebuilt), "--json")
    assert done.returncode == 0, done.stderr
    assert orjson.loads(done.stdout)["quarantined"] == len(positions)
    with duckdb.connect(str(rebuilt / "projections.duckdb"), read_only=True) as con:
        assert [r[0] for r in con.execute("SELECT position FROM quarantine ORDER BY position").fetchall()] \
            == sorted(positions.values())
        assert con.execute("SELECT count(*) FROM events").fetchall()[0][0] == ledger["good"]

    # Forgetting a person whose facts are quarantined (on a copy: it is for good).
    copy = home.parent / "forget-copy"
    shutil.copytree(home, copy)
    done = journey(copy, "forget", first, "--reason", "erasure request", "--yes")
    assert done.returncode == 0, done.stderr
    assert json_of(copy, "status")["quarantined"] == len(positions)
    assert json_of(copy, "customer", first)["forgotten"] is True

    # A restart neither quarantines again nor loses entries.
    assert journey(home, "project").returncode == 0
    assert json_of(home, "quarantine")["entries"] == listed["entries"]


def test_retry_applies_the_facts_a_fix_made_readable_and_keeps_the_others(ledger: dict[str, Any]) -> None:
    home, positions = ledger["home"], ledger["positions"]
    journey(home, "project")
    customer = ledger["affected"][1]  # its consent.given lacked data.channel
    fixed = planted.fact(customer, "consent.given",
                         {"channel": "phone", "purpose": "service", "text": "yes, call me"})
    planted.replace_state(home / "ledger.sqlite", positions["missing-field"], planted.state_of(fixed))
    done = journey(home, "quarantine", "retry", "--json")
    assert done.returncode == 1  # the others stay quarantined
    result = orjson.loads(done.stdout)
    assert result["applied"] == [positions["missing-field"]]
    assert sorted(e["position"] for e in result["remaining"]) == \
        sorted(p for name, p in positions.items() if name != "missing-field")
    assert events_rows(home) == ledger["good"] + 1
    view = json_of(home, "customer", customer)
    assert positions["missing-field"] not in view["quarantined"]
    assert [c["channel"] for c in view["consents"] if c["purpose"] == "service"] == ["phone"]
    # Applied once: another retry and a restart change nothing.
    journey(home, "quarantine", "retry")
    assert events_rows(home) == ledger["good"] + 1
    assert len(json_of(home, "quarantine")["entries"]) == len(positions) - 1

    # An event removed from the store leaves the quarantine and its customer's view.
    planted.remove(home / "ledger.sqlite", positions["unknown-type"])
    result = orjson.loads(journey(home, "quarantine", "retry", "--json").stdout)
    assert result["gone"] == [positions["unknown-type"]]
    owner = ledger["affected"][2]
    assert positions["unknown-type"] not in json_of(home, "customer", owner)["quarantined"]
    assert positions["warranty-overflow"] in json_of(home, "customer", owner)["quarantined"]
