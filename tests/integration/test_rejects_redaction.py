"""The rejects files a forget redacts: every line naming the person, however it was written,
and no other line."""

from __future__ import annotations

import json
from pathlib import Path

import orjson

from journey.usecases.erasure import REDACTED, redact_rejects

PERSON = {"+34655443322", "655443322", "Íñigo Aranburu", "billing", "ES9121000418450200051332"}


def test_lines_naming_the_person_are_redacted_in_any_spelling_and_nothing_else(tmp_path: Path) -> None:
    rejects = tmp_path / "rejects"
    (rejects / "kafka").mkdir(parents=True)
    lines = [
        orjson.dumps({"input": "a.jsonl", "line": 3, "reason": "occurred_at: no offset",
                      "text": '{"customer": {"phone": "655443322"}}'}),
        json.dumps({"input": "a.jsonl", "line": 4, "reason": "x",
                    "text": "Íñigo Aranburu called"}).encode(),  # ASCII-only escapes
        "not JSON at all: ÍÑIGO ARANBURU, iban es9121000418450200051332".encode(),
        orjson.dumps({"input": "a.jsonl", "line": 9, "reason": "billing question", "text": "{}"}),
        orjson.dumps({"input": "a.jsonl", "line": 10, "reason": "x", "text": "+34699000111"}),
    ]
    first = rejects / "a.jsonl.rejects.jsonl"
    first.write_bytes(b"\n".join(lines[:3]) + b"\n")
    nested = rejects / "kafka" / "b.rejects.jsonl"
    nested.write_bytes(b"\n".join(lines[3:]) + b"\n")

    done = redact_rejects(rejects, PERSON)

    assert done == {str(first): 3}
    redacted = [orjson.loads(line) for line in first.read_bytes().splitlines()]
    assert [r["line"] for r in redacted] == [3, 4, 3]  # a line that is not JSON: its number
    assert all(r["reason"] == REDACTED and r["text"] is None for r in redacted)
    assert [r.get("input") for r in redacted] == ["a.jsonl", "a.jsonl", None]
    # A plain word ("billing") names nobody; another person's line stays as it was.
    assert nested.read_bytes() == b"\n".join(lines[3:]) + b"\n"
    assert redact_rejects(rejects, PERSON) == {}  # nothing left to redact
