"""Settings: the one place the environment is read, and what a bad value says."""

from __future__ import annotations

from typing import Any

import pytest

from journey.config import Settings


def test_seconds_settings_take_numbers_and_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOURNEY_WAIT", raising=False)
    monkeypatch.delenv("JOURNEY_EXPORT_INTERVAL", raising=False)
    default = Settings.load("/tmp/x")
    assert (default.wait_seconds, default.export_interval) == (120.0, 60.0)
    monkeypatch.setenv("JOURNEY_WAIT", "0")
    monkeypatch.setenv("JOURNEY_EXPORT_INTERVAL", "2.5")
    loaded = Settings.load("/tmp/x")
    assert (loaded.wait_seconds, loaded.export_interval) == (0.0, 2.5)
    monkeypatch.setenv("JOURNEY_EXPORT_INTERVAL", " ")
    assert Settings.load("/tmp/x").export_interval == 60.0


@pytest.mark.parametrize("name", ["JOURNEY_WAIT", "JOURNEY_EXPORT_INTERVAL"])
@pytest.mark.parametrize("bad", ["soon", "-1", "nan"])
def test_a_bad_number_of_seconds_names_the_variable(monkeypatch: pytest.MonkeyPatch, name: str,
                                                    bad: str) -> None:
    monkeypatch.setenv(name, bad)
    with pytest.raises(SystemExit, match=f"{name}={bad!r} is not a number of seconds"):
        Settings.load("/tmp/x")


def test_the_phone_region_is_a_known_country(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOURNEY_PHONE_REGION", raising=False)
    assert Settings.load("/tmp/x").phone_region == "ES"
    monkeypatch.setenv("JOURNEY_PHONE_REGION", "pt")
    assert Settings.load("/tmp/x").phone_region == "PT"
    monkeypatch.setenv("JOURNEY_PHONE_REGION", "Spain")
    with pytest.raises(SystemExit, match="JOURNEY_PHONE_REGION: 'Spain' is not a region"):
        Settings.load("/tmp/x")


def test_a_bad_partition_count_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEY_PARTITIONS", "8")
    assert Settings.load("/tmp/x").partitions == 8
    for bad in ("four", "0", "-2"):
        monkeypatch.setenv("JOURNEY_PARTITIONS", bad)
        with pytest.raises(SystemExit, match=f"JOURNEY_PARTITIONS={bad!r} is not a whole number"):
            Settings.load("/tmp/x")


def test_every_setting_read_from_the_environment_is_documented() -> None:
    """docs/deployment.md's Configuration table lists every variable Settings reads."""
    import re
    from pathlib import Path

    asked: set[str] = set()

    class Asked(dict[str, str]):
        def get(self, key: str, default: Any = None) -> Any:
            asked.add(key)
            return super().get(key, default)

        def __getitem__(self, key: str) -> str:
            asked.add(key)
            return super().__getitem__(key)

    Settings.load(None, Asked())
    table = (Path(__file__).resolve().parents[2] / "docs/deployment.md").read_text()
    table = table.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    first_column = [line.split("|")[1] for line in table.splitlines() if line.startswith("| `")]
    documented = {name for cell in first_column for name in re.findall(r"`([A-Z_]+)`", cell)}
    assert asked == documented


@pytest.mark.parametrize(("env", "message"), [
    pytest.param({"JOURNEY_STORE": "mongo"}, "JOURNEY_STORE='mongo' is not a store", id="store"),
    pytest.param({"JOURNEY_STORE": "postgres"}, "JOURNEY_STORE=postgres needs JOURNEY_POSTGRES_URL",
                 id="postgres-without-url"),
    pytest.param({"JOURNEY_EARLIEST": "last tuesday"}, "JOURNEY_EARLIEST/JOURNEY_LATEST: earliest",
                 id="earliest"),
    pytest.param({"JOURNEY_EARLIEST": "2030-01-01T00:00:00Z", "JOURNEY_LATEST": "2020-01-01T00:00:00Z"},
                 "JOURNEY_EARLIEST/JOURNEY_LATEST", id="empty-range"),
    pytest.param({"JOURNEY_COMPLAINT_DAYS": "soon"}, "JOURNEY_COMPLAINT_DAYS", id="complaint-days"),
    pytest.param({"JOURNEY_PARSE_PROCESS": "sometimes"}, "JOURNEY_PARSE_PROCESS", id="parse-process"),
])
def test_settings_that_mean_nothing_stop_the_command_when_it_starts(
        monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str) -> None:
    for name in ("JOURNEY_STORE", "JOURNEY_POSTGRES_URL", "JOURNEY_EARLIEST", "JOURNEY_LATEST"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit, match=message):
        Settings.load("/tmp/x")


def test_a_command_with_a_bad_setting_says_so_and_exits_2(monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    from journey.cli import main

    monkeypatch.setenv("JOURNEY_STORE", "mongo")
    assert main(["--data-dir", "/tmp/x", "status"]) == 2
    assert "journey status: JOURNEY_STORE='mongo' is not a store" in capsys.readouterr().err


@pytest.mark.parametrize(("value", "chosen", "workers"), [
    ("", None, None), ("auto", None, None), ("on", True, 1), ("OFF", False, 0), ("0", False, 0)])
def test_the_parse_process_is_on_off_or_decided_by_the_append(
        value: str, chosen: bool | None, workers: int | None) -> None:
    settings = Settings.load("/tmp/x", {"JOURNEY_PARSE_PROCESS": value})
    assert settings.parse_process is chosen
    assert settings.parse_workers == workers
