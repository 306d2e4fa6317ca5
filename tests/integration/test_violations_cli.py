"""``journey violations``: a summary a person can read, every violation with ``--all``, all of
them for machines with ``--json``; bad flags end in a message, never a traceback."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest

from journey.cli import main
from tests.api.conftest import record
from tests.api.test_paging import paging_scenario


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 customers who objected to commercial contact and were called 3 times each after."""
    path = tmp_path_factory.mktemp("violations") / "ledger"
    record(path, paging_scenario())
    return path


def run(capsys: pytest.CaptureFixture[str], home: Path, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        code = main(["--data-dir", str(home), "violations", *args])
    except SystemExit as done:  # argparse's own refusal of a flag
        code = int(done.code or 0)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


#: A line of the full list: ``  2026-03-02 11:00 +01:00  call.outbound commercial to C-2000 by S-0: ...``
LISTED = re.compile(r"^  \d{4}-\d\d-\d\d \d\d:\d\d [+-]\d\d:\d\d  call\.outbound commercial to C-20\d\d by S-\d: ")


def test_by_default_a_summary_not_every_line(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, home)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("18 of 18 contacts broke the contact policy")
    assert not any(LISTED.match(line) for line in lines)
    for heading in ("By rule", "By department", "By channel", "By campaign"):
        assert any(line.startswith(heading) for line in lines), heading
    assert re.search(r"^  objection\s+18$", out, re.M)
    assert re.search(r"^  phone\s+18$", out, re.M)  # channels and departments in words
    assert re.search(r"^  spring\s+18$", out, re.M)
    assert re.search(r"^  billing\s+9$", out, re.M) and re.search(r"^  sales\s+9$", out, re.M)
    assert "The 5 customers with the most (of 6 with any)" in out
    worst = [line.split()[0] for line in lines if re.match(r"^  C-20\d\d\s+3\s+last ", line)]
    assert worst == ["C-2000", "C-2001", "C-2002", "C-2003", "C-2004"]
    assert "journey violations --all" in lines[-1]


def test_all_lists_every_violation_and_a_part_says_which(home: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, home, "--all")
    assert code == 0
    listed = [line for line in out.splitlines() if LISTED.match(line)]
    assert len(listed) == 18
    assert "rows" not in out and " of 18 (" not in out  # all of it: no part to name
    code, out, _ = run(capsys, home, "--all", "--limit", "5", "--offset", "15")
    assert code == 0
    assert len([line for line in out.splitlines() if LISTED.match(line)]) == 3
    assert "violations 16-18 of 18" in out
    code, out, _ = run(capsys, home, "--limit", "5")
    assert "violations 1-5 of 18 (--offset 5 for the next)" in out
    code, out, _ = run(capsys, home, "--all", "--offset", "18")
    assert code == 0 and "no violations from offset 18: there are 18" in out


def test_json_gives_every_violation_and_pages_when_asked(home: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, home, "--json")
    doc = orjson.loads(out)
    assert code == 0 and doc["total"] == len(doc["violations"]) == 18
    assert (doc["offset"], doc["limit"]) == (0, None)
    assert sum(d["violations"] for d in doc["summary"]["by_department"]) == 18
    _, out, _ = run(capsys, home, "--json", "--limit", "5", "--offset", "5")
    page = orjson.loads(out)
    assert page["violations"] == doc["violations"][5:10] and page["summary"] == doc["summary"]
    _, out, _ = run(capsys, home, "--json", "--department", "sales", "--rule", "objection")
    sales = orjson.loads(out)
    assert sales["total"] == 9 and {v["department"] for v in sales["violations"]} == {"sales"}


@pytest.mark.parametrize(("args", "words"), [
    (("--limit", "0"), "--limit: 0 is not a number of rows"),
    (("--limit", "many"), "--limit: 'many' is not a whole number"),
    (("--offset", "-3"), "--offset: -3 is negative"),
    (("--rule", "rudeness"), "--rule: invalid choice"),
    (("--channel", "pigeon"), "--channel: invalid choice"),
    (("--since", "last week"), "--since"),
])
def test_bad_flags_are_a_message_and_exit_2(home: Path, capsys: pytest.CaptureFixture[str],
                                            args: tuple[str, ...], words: str) -> None:
    code, out, err = run(capsys, home, *args)
    assert code == 2
    assert words in err and not out
