"""The server's background duties: called every tick, under the Journey lock, failures logged."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from journey.api import duties as duties_module
from journey.api.app import create_app
from journey.api.service import Desk
from journey.bootstrap import Journey
from journey.config import Settings
from tests.api.conftest import SCENARIO, auth, make_tokens, record


def _wait(predicate: object, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError("timed out")


def test_duties_are_a_list_of_callables_taking_the_journey() -> None:
    assert isinstance(duties_module.DUTIES, list)
    assert all(callable(d) for d in duties_module.DUTIES)


def test_duties_run_every_tick_under_the_lock_and_survive_failures(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    desk = Desk(Settings(data_dir=tmp_path), tick_seconds=0.05)
    calls: list[tuple[str, bool]] = []

    def broken(journey: Journey) -> None:
        raise RuntimeError("snapshot disk full")

    def counting(journey: Journey) -> None:
        seen: list[bool] = []
        probe = threading.Thread(target=lambda: seen.append(desk.lock.acquire(blocking=False)))
        probe.start()
        probe.join()
        calls.append((threading.current_thread().name, seen[0]))

    desk._duties = [broken, counting]
    with caplog.at_level(logging.ERROR, logger="journey.api.duties"):
        desk.start()
        try:
            _wait(lambda: len(calls) >= 3)
        finally:
            desk.close()
    assert all(name == "journey-duties" and not other_got_lock for name, other_got_lock in calls)
    failures = [r for r in caplog.records if r.name == "journey.api.duties"]
    assert failures and "broken" in failures[0].getMessage()
    assert "snapshot disk full" in (failures[0].exc_text or "")
    count = len(calls)
    time.sleep(0.2)
    assert len(calls) == count  # stopped with the server


def test_the_app_runs_the_registered_duties_while_it_serves(tmp_path: Path) -> None:
    home = tmp_path / "ledger"
    record(home, SCENARIO[:2])
    secrets = make_tokens(home)
    positions: list[int] = []

    def duty(journey: Journey) -> None:
        positions.append(journey.projections.position())

    saved = list(duties_module.DUTIES)
    duties_module.DUTIES[:] = [duty]  # the list create_app reads by default, at every tick
    try:
        app = create_app(Settings(data_dir=home), tick_seconds=0.05)
        with TestClient(app) as client:
            _wait(lambda: len(positions) >= 2)
            assert client.get("/api/customers/C-1001", headers=auth(secrets["admin"])).status_code == 200
    finally:
        duties_module.DUTIES[:] = saved
    assert positions[-1] >= 2


def test_a_started_server_reads_views_and_timelines_ahead(tmp_path: Path) -> None:
    """Warm-up: the first read of each customer is served from memory, not from DuckDB."""
    home = tmp_path / "ledger"
    record(home, SCENARIO)
    secrets = make_tokens(home)
    app = create_app(Settings(data_dir=home), duties=[], tick_seconds=0.05)
    desk = app.state.desk
    with TestClient(app) as client:
        _wait(lambda: len(desk.reads.timelines) == 2)
        luis = client.get("/api/customers/C-1002", headers=auth(secrets["admin"])).json()
        assert luis["timeline"] == desk.reads.timelines[luis["customer_id"]][-50:]
