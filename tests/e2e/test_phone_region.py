"""JOURNEY_PHONE_REGION: a phone written without its country code belongs to the configured
country, at the door and in lookups alike (real processes, so the process-wide setting of one
test never leaks into another)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson

FACT = {"type": "customer.registered", "id": "r1", "source": "crm", "customer": {"phone": "912 345 678"},
        "occurred_at": "2026-01-03T10:00:00+01:00", "data": {"name": "Inês"}}


def journey(home: Path, region: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "JOURNEY_PHONE_REGION": region}
    return subprocess.run([sys.executable, "-m", "journey.cli", "--data-dir", str(home), *args],
                          capture_output=True, text=True, timeout=120, env=env)


def test_a_national_number_is_read_in_the_configured_country(tmp_path: Path) -> None:
    source = tmp_path / "facts.jsonl"
    source.write_bytes(orjson.dumps(FACT) + b"\n")
    home = tmp_path / "ledger"
    done = journey(home, "PT", "append", str(source), "--json")
    assert done.returncode == 0, done.stderr
    found = journey(home, "PT", "customer", "912345678", "--json")
    assert found.returncode == 0, found.stderr
    identities = orjson.loads(found.stdout)["identities"]
    assert [(i["kind"], i["value"]) for i in identities] == [("phone", "+351912345678")]
    # The same digits read in Spain are another number: nobody is known by it.
    assert journey(home, "ES", "customer", "912345678").returncode == 3
    assert journey(home, "ES", "customer", "+351 912 345 678").returncode == 0


def test_an_unknown_region_stops_the_command_with_its_name(tmp_path: Path) -> None:
    done = journey(tmp_path / "ledger", "Portugal", "status")
    assert done.returncode == 2
    assert "JOURNEY_PHONE_REGION: 'Portugal' is not a region" in done.stderr
    assert "Traceback" not in done.stderr
