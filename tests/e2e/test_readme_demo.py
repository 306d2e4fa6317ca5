"""The README's examples, run as printed (real `journey` processes) on a fresh demo ledger.

Every ``.venv/bin/journey`` line of README.md's shell blocks is run in the README's order, on the
demo `make demo` builds (the default 3,000 customers and seed), except the few that need a file
or an id of the reader's own or run until stopped (:data:`NOT_ON_THE_DEMO`): a new example is run
here as soon as it is printed there. The meaningful parts of what they print (names, dates,
counts) are asserted; so is the analysts' question on the address changes nobody asked for
(docs/analytics.md, question 10).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
ANALYTICS = ROOT / "docs" / "analytics.md"

#: README examples that cannot run on the demo as printed, and why.
NOT_ON_THE_DEMO = {
    "append touchpoints.jsonl": "the reader's own file of facts",
    "exclusions import robinson.txt --as-of 2026-01-01": "the reader's own exclusion list",
    "replay decision EVENT_ID": "the id a `can-contact --record` printed",
    "serve": "runs until stopped (tests/e2e/test_demo_serve.py)",
    "feed --follow": "runs until stopped",
}


def readme_commands() -> list[list[str]]:
    """The arguments of each ``.venv/bin/journey`` command in README.md's ``sh`` blocks, in
    order (``a && b`` gives two)."""
    commands = []
    for block in re.findall(r"^```sh\n(.*?)^```", README.read_text(), re.S | re.M):
        for line in block.splitlines():
            if not line.startswith(".venv/bin/journey "):
                continue
            words = shlex.split(line, comments=True)
            while words:
                cut = words.index("&&") if "&&" in words else len(words)
                assert words[0] == ".venv/bin/journey", line
                commands.append(words[1:cut])
                words = words[cut + 1:]
    return commands


def journey(home: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "journey.cli", "--data-dir", str(home), *args],
                          capture_output=True, text=True, cwd=cwd, timeout=600,
                          env={**os.environ, "JOURNEY_HOME": str(home)})


Ran = dict[str, subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Ran]:
    """(data directory, working directory, README command -> its run) on a fresh demo."""
    cwd = tmp_path_factory.mktemp("readme")
    home = cwd / ".journey"
    built = journey(home, cwd, "demo")
    assert built.returncode == 0, built.stderr
    ran: Ran = {"demo": built}
    for args in readme_commands():
        text = shlex.join(args)
        if text in NOT_ON_THE_DEMO:
            continue
        if text == "customer C-900001 --as-of 2026-06-01T00:00:00+02:00":
            # The analysts' question, while the whole history is still there (forget comes last).
            ran["question 10"] = journey(home, cwd, "sql", "--file", str(_question_10(cwd)), "--json")
            ran["before the objection"] = journey(home, cwd, "customer", "C-900001", "--as-of",
                                                  "2026-03-05T09:27:00+01:00")
            # docs/audit.md's example: a call the call centre uploaded a week late.
            for axis in ("--as-of", "--occurred-by"):
                ran[f"audit {axis}"] = journey(home, cwd, "customer", "C-002771", axis,
                                               "2026-09-25T12:00:00+02:00")
        # merge and forget ask at a terminal first (the README says so); the answer is yes.
        confirmed = ["--yes"] if args[0] in ("merge", "forget") else []
        ran[text] = journey(home, cwd, *args, *confirmed)
        if args[0] == "violations":  # the summary's closing line says how to see every one
            ran[text + " --all"] = journey(home, cwd, *args, "--all")
    return home, cwd, ran


def _question_10(cwd: Path) -> Path:
    (_, sql), = [(h, q) for h, q in re.findall(r"^### (\d+)\. [^\n]+\n(?:(?!^### ).)*?```sql\n(.*?)```",
                                              ANALYTICS.read_text(), re.S | re.M) if h == "10"]
    path = cwd / "q10.sql"
    path.write_text(sql)
    return path


def out(ran: Ran, command: str, code: int = 0) -> str:
    done = ran[command]
    assert done.returncode == code, f"{command}: exit {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done.stdout


def test_every_readme_example_runs_on_the_demo(demo: tuple[Path, Path, Ran]) -> None:
    _, _, ran = demo
    printed = {shlex.join(args) for args in readme_commands()}
    assert set(NOT_ON_THE_DEMO) <= printed  # each exception still is in the README
    verdicts = {"can-contact +34600900001 --channel phone --purpose commercial": 4}
    for command in printed - set(NOT_ON_THE_DEMO):
        out(ran, command, verdicts.get(command, 0))


def test_the_demo_is_what_the_readme_says(demo: tuple[Path, Path, Ran]) -> None:
    """`make demo`: 3,000 customers, ~37k touchpoints."""
    _, _, ran = demo
    built = re.search(r"recorded ([\d,]+) touchpoints .* projections: ([\d,]+) customers", out(ran, "demo"))
    assert built is not None
    assert 36_500 <= int(built[1].replace(",", "")) < 37_500
    assert 3_000 <= int(built[2].replace(",", "")) < 3_100


def test_the_customer_who_got_six_calls(demo: tuple[Path, Path, Ran]) -> None:
    _, _, ran = demo
    view = out(ran, "customer +34600900001")
    assert "Ramón Ortega Gil  ·  customer C-900001" in view
    assert "OBJECTION to commercial contact on all channels" in view
    calls = re.findall(r"^  (2026-03-\d\d) \S+ \S+  ☎ \S+ +outbound call commercial", view, re.M)
    assert calls[0] == "2026-03-04" and len(calls[1:]) == 6 and calls[-1] == "2026-03-11"
    assert orjson.loads(out(ran, "customer C-900001 --json"))["customer_number"] == "C-900001"
    verdict = out(ran, "can-contact +34600900001 --channel phone --purpose commercial", 4)
    assert verdict.startswith("DENIED") and "[objection]" in verdict
    violations = out(ran, "violations --since 2026-03-01")
    assert re.match(r"[\d,]+ of [\d,]+ contacts broke the contact policy", violations)
    assert "By department" in violations and "By campaign" in violations
    every = out(ran, "violations --since 2026-03-01 --all")
    assert len(re.findall(r"to C-900001 by \S+: objection", every)) == 6


def test_the_as_of_example_finds_what_the_company_knew_on_1_june(demo: tuple[Path, Path, Ran]) -> None:
    """The demo's facts were recorded minutes after they happened, so by 1 June the company
    knew all of Ramón's story of March, and none of it came in late."""
    _, _, ran = demo
    view = out(ran, "customer C-900001 --as-of 2026-06-01T00:00:00+02:00")
    assert view.startswith("As the ledger knew it at 2026-06-01T00:00:00+02:00 (facts recorded by then: 11,")
    assert "Ramón Ortega Gil  ·  customer C-900001" in view
    assert len(re.findall(r"outbound call commercial", view)) == 7
    assert "recorded late" not in view
    # Between his "don't call me again" (09:25) and the objection recorded from it (09:30), the
    # company knew the call and not yet the objection.
    before = out(ran, "before the objection")
    assert "inbound call: don't call me again" in before
    assert "OBJECTION" not in before and "Objection on record" not in before


def test_the_audit_guides_late_upload(demo: tuple[Path, Path, Ran]) -> None:
    """docs/audit.md: Adrián's "moving house" call came in a week after the address change it
    led to; known two days after the move without it, and listed as recorded late by the other axis."""
    _, _, ran = demo
    known = out(ran, "audit --as-of")
    assert known.startswith("As the ledger knew it at 2026-09-25T12:00:00+02:00 (facts recorded by then: 2,")
    assert "Adrián Delgado Sanz  ·  customer C-002771" in known and "moving house" not in known
    assert "(customer moved)" in known
    happened = out(ran, "audit --occurred-by")
    assert happened.startswith("What had happened by 2026-09-25T12:00:00+02:00 (3 facts, 1 of them recorded after")
    assert re.search(r"2026-09-23 08:58 \+02:00  ☎ technical_service +inbound call: moving house  \(recorded late\)",
                     happened)
    assert "2026-09-23T08:58:00+02:00  call.inbound           recorded 2026-09-30T00:04:00+00:00" in happened


def test_departments_lists_name_the_stories(demo: tuple[Path, Path, Ran]) -> None:
    _, _, ran = demo
    assert re.match(r"[\d,]+ cases?, [\d,]+ overdue now", out(ran, "cases --overdue"))
    case = out(ran, "case K-S4")
    assert "Customer C-900004 · Rocío Molina Sanz" in case and "Contradictions (1)" in case
    assert "P-S4 “20% discount on the next three invoices” due 2026-05-31 (end of day) BROKEN" in case
    assert re.match(r"[\d,]+ promises?, [\d,]+ overdue now", out(ran, "promises --overdue"))
    inbox = out(ran, "inbox")
    assert len(re.findall(r"twitter @lucia_s5 \(C-900005 Lucía Romero Díaz\)", inbox)) == 2
    warranty = out(ran, "warranty SNR58T20A4K")
    assert "bought by C-900003 Jordi Puig Castells on 2025-02-10" in warranty
    assert "no invoice on record (not needed)" in warranty and "APPROVED" in warranty
    assert out(ran, "greetings --days 7").startswith("Greetings ")
    merged = out(ran, "merge C-900007 C-900008 --reason 'same DNI'")
    assert "C-900008 merged into C-900007 (same DNI)" in merged


def test_auditors_and_analysts_examples(demo: tuple[Path, Path, Ran]) -> None:
    _, cwd, ran = demo
    rows = out(ran, "sql 'SELECT department, count(*) FROM contacts GROUP BY ALL' --format table")
    assert "outsourced_callcenter" in rows and "(8 rows)" in rows
    assert (cwd / "ramon.svg").stat().st_size > 0 and (cwd / "contacts.svg").stat().st_size > 0
    assert "the live projections equal the rebuild" in out(ran, "replay diff")
    assert "INTACT" in out(ran, "verify")
    assert "Ramón Ortega Gil (C-900001)" in out(ran, "subject-access C-900001 --out ramon.json")
    held = orjson.loads((cwd / "ramon.json").read_bytes())
    assert held
    assert "forgotten" in out(ran, "forget C-900001 --reason ...")


def test_the_analysts_question_on_address_changes_nobody_asked_for(demo: tuple[Path, Path, Ran]) -> None:
    """Customer care changes addresses at the customer's request (not counted); billing's own
    changes are the company's, each notified to the customer by letter and e-mail."""
    home, _, ran = demo
    rows: list[dict[str, Any]] = orjson.loads(out(ran, "question 10"))
    facts = [orjson.loads(line) for line in (home / "demo.jsonl").read_bytes().splitlines()]
    billing = sum(1 for f in facts if f["type"] == "address.changed" and f["department"] == "billing")
    assert billing > 100
    assert rows == [{"department": "billing", "requested_by": "company", "changes": billing,
                     "letter_sent": billing, "email_sent": billing, "not_notified": 0}]
