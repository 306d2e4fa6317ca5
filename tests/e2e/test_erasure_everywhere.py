"""After ``journey forget``, nothing of the person can be read anywhere under the data directory.

A person sends personal data where the catalogue never said it would be (an ``iban``, an
``account_holder``, ``notes``, a nested ``contact.mobile``, an ``Email`` spelled their way), in a
call-detail-record id that carries their phone, in free texts and in a line the ledger rejected.
They are projected, exported for the analysts and rebuilt; then ``journey forget`` runs as a real
process, and every byte of every file under the data directory is searched for each value. The
subject-access export is a tombstone, and another person's data is all still there.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import orjson

from journey import demo_data

ROOT = Path(__file__).resolve().parents[2]

PHONE = "+34655443322"
NUMBER = "C-4242"
NAME = "Nerea Aranburu Zabala"
NOTES = "prefers evening calls; daughter Irati, Donostia-San Sebastián"
CDR = "cdr-34655443322-20260104-0001"
SECRETS = {
    "name": NAME,
    "phone": "655443322",
    "email": "nerea.aranburu@example.org",
    "iban": "ES9121000418450200051332",
    "account_holder": "N. Aranburu Z.",
    "notes": NOTES,
    "mobile": "677889900",
    "Email": "N.Aranburu@Correo.example",
    "cdr": CDR,
    "free text": "router dead since the storm",
    "case note": "Nerea wants a visit before 10h",
    "serial": "SN-ARB-77812",
    "rejected": "Aranburu-rejected-ref-991",
    "handle": "@nerea_arb_zb",
    "customer number": NUMBER,
}
OTHER_PHONE = "+34699112233"
OTHER_IBAN = "ES7620770024003102575766"
OTHER_REJECTED = "Etxeberria-rejected-ref-552"


def _fact(kind: str, source_id: str, ref: dict[str, str], at: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "id": source_id, "source": "switch" if kind.startswith("call") else "crm",
            "customer": ref, "occurred_at": at, "data": data, "department": "care", "agent": "agent-17"}


#: The first three arrive before the registration: records it then merges, or completes.
FACTS = [
    _fact("call.outbound", "out-1", {"customer_id": NUMBER}, "2026-01-01T09:00:00+01:00",
          {"purpose": "service", "outcome": "answered"}),
    _fact("call.inbound", CDR, {"phone": PHONE}, "2026-01-01T10:00:00+01:00",
          {"reason": SECRETS["free text"], "duration_s": 300}),
    _fact("social.mention", "tw-1", {"twitter": SECRETS["handle"]}, "2026-01-02T09:00:00+01:00",
          {"network": "twitter", "text": "@brand my router died again"}),
    _fact("customer.registered", "reg-1", {"customer_id": NUMBER}, "2026-01-03T10:00:00+01:00",
          {"name": NAME, "phone": PHONE, "email": SECRETS["email"], "twitter": SECRETS["handle"],
           "iban": SECRETS["iban"], "account_holder": SECRETS["account_holder"], "notes": NOTES,
           "contact": {"mobile": "+34" + SECRETS["mobile"]}, "Email": SECRETS["Email"]}),
    _fact("case.opened", "case-1", {"customer_id": NUMBER}, "2026-01-04T10:10:00+01:00",
          {"case_id": "K-88", "kind": "incident", "subject": "no internet at home of " + NAME}),
    _fact("case.note", "case-1-note", {"customer_id": NUMBER}, "2026-01-04T10:20:00+01:00",
          {"case_id": "K-88", "text": SECRETS["case note"]}),
    _fact("purchase.recorded", "buy-1", {"customer_id": NUMBER}, "2026-01-02T10:00:00+01:00",
          {"product": "router X2", "serial": SECRETS["serial"], "price": 59.9}),
    _fact("customer.registered", "reg-2", {"customer_id": "C-5151"}, "2026-01-03T11:00:00+01:00",
          {"name": "Koldo Etxeberria", "phone": OTHER_PHONE, "iban": OTHER_IBAN,
           "notes": "other person's notes"}),
    _fact("call.outbound", "cdr-34699112233-1", {"phone": OTHER_PHONE}, "2026-01-04T12:00:00+01:00",
          {"purpose": "service", "outcome": "answered"}),
]
#: Lines the ledger rejects (no UTC offset): it writes them, as they came, to DATA_DIR/rejects.
REJECTED = [
    _fact("call.inbound", SECRETS["rejected"], {"phone": PHONE}, "2026-01-05T10:00:00",
          {"reason": "called again, " + NAME}),
    _fact("call.inbound", OTHER_REJECTED, {"phone": OTHER_PHONE}, "2026-01-05T11:00:00", {}),
]


def journey(home: Path, *args: str, expect: int = 0) -> str:
    done = subprocess.run([sys.executable, "-m", "journey.cli", "--data-dir", str(home), *args],
                          capture_output=True, text=True, cwd=ROOT, check=False, timeout=300)
    assert done.returncode == expect, (args, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout


def forms(value: str) -> set[bytes]:
    """The value as UTF-8, and as JSON writes it (escaped, and ASCII-only)."""
    return {value.encode(), orjson.dumps(value)[1:-1],
            repr(value.encode("ascii", "backslashreplace"))[2:-1].encode(),
            value.encode("ascii", "backslashreplace").replace(b"\\x", b"\\u00")}


def contents(path: Path) -> bytes:
    """Every value a DuckDB database's tables or a Parquet file hold, as text: both compress
    strings (a value may not be in their raw bytes), so they are also read through DuckDB.
    DuckDB's free blocks are covered by the projections' rewrite after a forget."""
    head = path.read_bytes()[:12]
    if head[:4] == b"PAR1":
        selects = [f"SELECT * FROM read_parquet('{path}')"]
        con = duckdb.connect()
    elif head[8:12] == b"DUCK":
        con = duckdb.connect(str(path), read_only=True)
        selects = [f'SELECT * FROM "{t}"' for (t,) in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'").fetchall()]
    else:
        return b""
    try:
        return b"".join(orjson.dumps(con.execute(q).fetchall(), default=str) for q in selects)
    finally:
        con.close()


def found(root: Path, values: dict[str, str]) -> list[tuple[str, str]]:
    """(file, what) for every value in a file under ``root``: in its raw bytes, or among the
    values its tables hold."""
    hits = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        blob = path.read_bytes() + contents(path)
        for what, value in values.items():
            if any(f in blob for f in forms(value)):
                hits.append((str(path.relative_to(root)), what))
    return hits


def test_nothing_of_a_forgotten_person_is_readable_under_the_data_directory(tmp_path: Path) -> None:
    home = tmp_path / "ledger"
    first = tmp_path / "first.jsonl"
    # Other people around them: the store's index pages fill, split and are rewritten.
    crowd = list(demo_data.generate(400, seed=11))
    first.write_bytes(b"".join(orjson.dumps(f) + b"\n" for f in [*crowd[:200], *FACTS[:3], *crowd[200:]]))
    journey(home, "append", str(first))
    source = tmp_path / "facts.jsonl"
    source.write_bytes(b"".join(orjson.dumps(f) + b"\n" for f in FACTS[3:] + REJECTED))
    journey(home, "append", str(source), expect=1)  # 1: some lines were rejected
    journey(home, "export", "--json")
    journey(home, "replay", "rebuild")
    assert list(home.glob("rebuild-*"))
    before = found(home, SECRETS)
    # The test can fail: before the forget the person is in the projections, the rebuild and
    # the rejects file (the store itself holds them only sealed).
    assert {"projections.duckdb", "rejects"} <= {Path(f).parts[0] for f, _ in before}, before
    assert any(Path(f).parts[0].startswith("rebuild-") for f, _ in before), before
    assert ("ledger.sqlite", "iban") not in before and ("ledger.sqlite", "cdr") not in before
    ledger_id = orjson.loads(journey(home, "customer", PHONE, "--json"))["customer_id"]

    done = orjson.loads(journey(home, "forget", PHONE, "--reason", "art. 17 request", "--yes", "--json"))
    assert done["customer_id"] == ledger_id and done["snapshot"] == "refreshed"
    assert len(done["records"]) == 3  # the customer and the two prospects merged into them
    assert sum(done["rejects_redacted"].values()) == 1 and len(done["rebuilds_deleted"]) == 1

    assert found(home, SECRETS) == []
    assert "INTACT" in journey(home, "verify")

    sar = tmp_path / "sar.json"
    journey(home, "subject-access", ledger_id, "--out", str(sar))
    export = orjson.loads(sar.read_bytes())
    assert export["summary"]["forgotten"] is True and export["raw_events"] == [] and export["tables"] == {}
    assert {f for f, _ in found(tmp_path, SECRETS)} == {"first.jsonl", "facts.jsonl"}  # the inputs
    journey(home, "subject-access", PHONE, "--out", str(sar), expect=3)

    # Nobody else was erased: the other person reads in full, their rejected line is kept.
    other = orjson.loads(journey(home, "customer", OTHER_PHONE, "--json"))
    assert other["name"] == "Koldo Etxeberria" and other.get("forgotten") is not True
    registration = next(e for e in other["timeline"] if e["type"] == "customer.registered")
    assert registration["data"]["iban"] == OTHER_IBAN
    rejects = b"".join(p.read_bytes() for p in (home / "rejects").glob("*.jsonl"))
    assert OTHER_REJECTED.encode() in rejects
    kept = found(home, {"other iban": OTHER_IBAN, "other rejected": OTHER_REJECTED})
    assert {what for _, what in kept} == {"other iban", "other rejected"}
