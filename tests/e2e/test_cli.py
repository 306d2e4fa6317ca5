"""The ``journey`` command as people use it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from journey import demo_data
from journey.cli import main

ROOT = Path(__file__).resolve().parents[2]


def run(capsys: pytest.CaptureFixture[str], home: Path, *args: str) -> tuple[int, str, str]:
    code = main(["--data-dir", str(home), *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def mixed_file(tmp_path: Path) -> tuple[Path, int, int]:
    """Every catalogue type (the demo generator's stories and a small population) plus bad lines."""
    facts = list(demo_data.generate(40, seed=11))
    assert {f["type"] for f in facts} >= {"call.outbound", "case.transferred", "promise.broken"}
    lines = [orjson.dumps(f).decode() for f in facts]
    bad = demo_data.bad_lines()
    for i, (text, _) in enumerate(bad):
        lines.insert(1 + i * 7, text)
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path, len(facts), len(bad)


def test_append_records_good_lines_rejects_bad_ones_and_a_rerun_records_nothing(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, mixed_file: tuple[Path, int, int]) -> None:
    path, good, bad = mixed_file
    home = tmp_path / "ledger"
    code, out, _ = run(capsys, home, "append", str(path))
    assert code == 1
    summary = out.strip().splitlines()[-1]
    assert summary.startswith(f"recorded {good}, duplicates 0, rejected {bad} -> ")
    rejects_path = Path(summary.split(" -> ")[1])
    rejects = [orjson.loads(line) for line in rejects_path.read_text().splitlines()]
    assert [r["line"] for r in rejects] == [2 + i * 7 for i in range(bad)]
    expected = [keyword for _, keyword in demo_data.bad_lines()]
    for reject, keyword in zip(rejects, expected, strict=True):
        assert keyword.lower() in reject["reason"].lower(), reject
        assert reject["text"] == path.read_text().splitlines()[reject["line"] - 1]

    code, out, _ = run(capsys, home, "append", str(path), "--json")
    again = orjson.loads(out)
    assert code == 1
    assert (again["recorded"], again["duplicates"], again["rejected"]) == (0, good, bad)

    code, out, _ = run(capsys, home, "status", "--json")
    status = orjson.loads(out)
    assert status["events_rows"] == status["store_position"]


def test_customer_shows_one_view_with_every_department(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                       mixed_file: tuple[Path, int, int]) -> None:
    path, _, _ = mixed_file
    home = tmp_path / "ledger"
    run(capsys, home, "append", str(path))
    # The six-calls story: registered C-900001, objection, then calls from two departments.
    code, out, _ = run(capsys, home, "customer", "+34 600 900 001")
    assert code == 0
    assert "Objection on record" in out
    assert "sales" in out and "outsourced_callcenter" in out and "customer_care" in out
    code, out, _ = run(capsys, home, "customer", "C-900001", "--json")
    view: dict[str, Any] = orjson.loads(out)
    assert view["customer_number"] == "C-900001"
    assert view["objections"][0]["active"] is True
    departments = {row["department"] for row in view["timeline"]}
    assert {"sales", "outsourced_callcenter", "customer_care"} <= departments
    times = [row["occurred_at"] for row in view["timeline"]]
    assert len(times) == view["counts"]["events"]
    assert view["as_of_position"] > 0
    by_email = orjson.loads(run(capsys, home, "customer", view["contact"]["email"], "--json")[1])
    assert by_email["customer_id"] == view["customer_id"]


def test_unknown_customer_and_bad_reference(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, tmp_path, "customer", "@nobody")
    assert code == 3 and "nobody known as '@nobody'" in err
    code, _, err = run(capsys, tmp_path, "customer", "phone:abc")
    assert code == 2 and "not a phone number" in err


def test_missing_file_is_a_usage_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, tmp_path, "append", str(tmp_path / "nope.jsonl"))
    assert code == 2 and "no such file" in err


def test_append_from_stdin_in_a_real_process(tmp_path: Path) -> None:
    facts = [orjson.dumps(f).decode() for f in demo_data.stories()[:5]]
    done = subprocess.run(
        [sys.executable, "-m", "journey.cli", "--data-dir", str(tmp_path), "append", "-"],
        input="\n".join(facts) + "\n", capture_output=True, text=True, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "recorded 5, duplicates 0, rejected 0"


def test_a_reading_command_refuses_a_place_without_a_ledger_and_creates_nothing(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    typo = tmp_path / "ledegr"
    for args in (("customer", "+34600000001"), ("status", "--json"), ("can-contact", "+34600000001", "--channel", "phone", "--purpose", "commercial")):
        code, out, err = run(capsys, typo, *args)
        assert (code, out) == (2, ""), args
        assert f"no ledger at {typo}" in err
    assert not typo.exists()
    # A recording command starts one there, and the readers then answer.
    facts = tmp_path / "facts.jsonl"
    facts.write_text("".join(orjson.dumps(f).decode() + "\n" for f in demo_data.generate(3, seed=2)))
    assert run(capsys, typo, "append", str(facts))[0] == 0
    code, out, _ = run(capsys, typo, "status", "--json")
    assert code == 0 and orjson.loads(out)
