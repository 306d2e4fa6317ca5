"""Settings: the one place the environment is read, and what a bad value says."""

from __future__ import annotations

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
