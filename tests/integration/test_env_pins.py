"""The SQLite store's settings are the project's, whatever the shell that starts it exports."""

from __future__ import annotations

from pathlib import Path

import pytest
from eventsourcing.persistence import IntegrityError, Tracking

from tests.ledgers import open_journey


@pytest.mark.parametrize("name", ["SINGLE_ROW_TRACKING", "JOURNEY_SINGLE_ROW_TRACKING"])
def test_a_tracked_position_never_goes_backwards_whatever_the_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv(name, "n")
    monkeypatch.setenv("ORIGINATOR_ID_TYPE", "text")
    journey = open_journey(tmp_path)
    try:
        recorder = journey.app.recorder
        recorder.insert_tracking(Tracking("kafka:touchpoints:0", 500))
        with pytest.raises(IntegrityError):
            recorder.insert_tracking(Tracking("kafka:touchpoints:0", 300))
        assert recorder.max_tracking_id("kafka:touchpoints:0") == 500
        assert recorder.datastore.originator_id_type == "uuid"
    finally:
        journey.close()
