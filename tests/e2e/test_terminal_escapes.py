"""Text from facts cannot act on the terminal of the person reading it.

A name, a note, a tweet or a product name comes from outside; written raw, an ESC sequence in
it clears the screen or recolours what follows, a C1 control does the like on 8-bit terminals,
and a bidi override makes a line read backwards. The human-readable output of every command
shows them as visible escapes; ``--json`` keeps the exact text.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from journey.cli import main

EVIL = "\x1b[2J\x1b[31mEVIL"
SNEAKY = "Ana \u202eNOITCEJBO\u202c \x9b31m\x07\r"
CUSTOMER = {"customer_id": "C-66"}


def fact(fid: str, kind: str, at: str, data: dict[str, Any], department: str | None = "customer_care",
         customer: dict[str, str] = CUSTOMER) -> dict[str, Any]:
    out = {"type": kind, "id": fid, "source": "crm", "customer": customer, "occurred_at": at,
           "data": data}
    if department:
        out["department"] = department
    return out


FACTS = [
    fact("r", "customer.registered", "2026-01-10T10:00:00+01:00",
         {"name": f"{SNEAKY}{EVIL}", "phone": "+34600777001", "twitter": "@evil_66",
          "birthday": "1985-03-02",
          "address": {"street": "Calle Mayor", "number": "5", "postal_code": "28013", "city": "Madrid"}},
         "sales"),
    fact("g", "consent.given", "2026-01-10T10:05:00+01:00",
         {"channel": "letter", "purpose": "commercial", "text": "Acepto"}),
    fact("k", "case.opened", "2026-05-01T10:00:00+02:00",
         {"case_id": "K-66", "kind": "complaint", "subject": f"subject {EVIL}"}),
    fact("n", "case.note", "2026-05-02T10:00:00+02:00", {"case_id": "K-66", "text": f"note {EVIL}"}),
    fact("p", "promise.made", "2026-05-02T11:00:00+02:00",
         {"promise_id": "P-66", "case_id": "K-66", "what": f"call back {EVIL}", "due_by": "2026-05-05"}),
    fact("t", "social.mention", "2026-05-03T10:00:00+02:00",
         {"network": "twitter", "handle": "@evil_66", "to": "@ondaluz", "text": f"tweet {EVIL}"},
         None, {"twitter": "@evil_66"}),
    fact("s", "purchase.recorded", "2026-04-01T10:00:00+02:00",
         {"product": f"Router {EVIL}", "serial": "EV-66", "store": f"Store {SNEAKY}"}, "stores"),
    fact("o", "objection.recorded", "2026-02-01T09:30:00+01:00",
         {"channels": "all", "purpose": "commercial"}),
    # (An agent with control characters is refused at the door: docs/events.md, Limits.)
    {**fact("c", "call.outbound", "2026-02-03T11:00:00+01:00",
            {"purpose": "commercial", "campaign": f"spring {EVIL}", "outcome": "hung_up"}, "sales"),
     "agent": "agent 7"},
    fact("w", "warranty.claim_filed", "2026-05-04T10:00:00+02:00",
         {"claim_id": "W-66", "serial": "EV-66", "issue": f"issue {EVIL}"}, "stores"),
]

#: What a terminal acts on: C0 controls but the newline, DEL, C1 controls, bidi controls.
ACTIVE = {chr(c) for c in range(0x20) if c != 0x0A} | {chr(0x7F)} | {chr(c) for c in range(0x80, 0xA0)} \
    | set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u2028\u2029")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("escapes") / "ledger"
    source = path.parent / "facts.jsonl"
    source.write_bytes(b"".join(orjson.dumps(f) + b"\n" for f in FACTS))
    assert main(["--data-dir", str(path), "append", str(source)]) == 0
    return path


def journey(home: Path, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "journey.cli", "--data-dir", str(home), *args],
                          capture_output=True, timeout=120, env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


@pytest.mark.parametrize("args", [
    ("customer", "C-66"), ("case", "K-66"), ("promises",), ("inbox", "--all"),
    ("warranty", "EV-66"), ("warranty", "C-66"), ("violations",),
    ("greetings", "--from", "2026-03-01", "--days", "7"),
], ids=lambda a: " ".join(a))
def test_human_readable_output_shows_control_characters_as_escapes(home: Path, args: tuple[str, ...]) -> None:
    out = journey(home, *args)
    assert not ACTIVE & set(out), sorted(ACTIVE & set(out))
    assert "\\x1b[2J\\x1b[31mEVIL" in out


def test_the_customer_view_shows_what_was_hidden_in_the_name(home: Path) -> None:
    out = journey(home, "customer", "C-66")
    assert "Ana \\u202eNOITCEJBO\\u202c \\x9b31m\\x07\\r\\x1b[2J\\x1b[31mEVIL" in out.splitlines()[0]
    assert "note \\x1b[2J" in journey(home, "case", "K-66")


def test_json_output_keeps_the_exact_text(home: Path) -> None:
    view = orjson.loads(journey(home, "customer", "C-66", "--json"))
    assert view["name"] == f"{SNEAKY}{EVIL}"
    case = orjson.loads(journey(home, "case", "K-66", "--json"))
    assert any(h.get("text") == f"note {EVIL}" for h in case["history"])


def test_sql_tables_escape_and_csv_keeps_the_exact_text(home: Path) -> None:
    assert main(["--data-dir", str(home), "export"]) == 0
    query = "SELECT product FROM products"
    table = journey(home, "sql", query)
    assert not ACTIVE & set(table) and "Router \\x1b[2J" in table
    assert f"Router {EVIL}" in journey(home, "sql", query, "--format", "csv")
