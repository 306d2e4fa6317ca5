"""Fixtures of the console's browser tests: a ledger, `journey serve`, tokens, Chromium.

The tests drive Debian's /usr/bin/chromium with Playwright for Python (no browser download;
scripts/ensure-chromium.sh installs the package). Without it they are skipped, unless
JOURNEY_REQUIRE_BROWSER=1 (CI, scripts/test.sh): then they fail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser import scenario

REQUIRE = os.environ.get("JOURNEY_REQUIRE_BROWSER") == "1"


def _unavailable(reason: str) -> None:
    if REQUIRE:
        pytest.fail(f"{reason} (JOURNEY_REQUIRE_BROWSER=1; run scripts/ensure-chromium.sh)", pytrace=False)
    pytest.skip(f"{reason}: install it with scripts/ensure-chromium.sh (or set JOURNEY_REQUIRE_BROWSER=1 to fail)")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not scenario.chromium_available():
        _unavailable(f"{scenario.CHROMIUM} is missing")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Playwright for Python is not installed (pip install -e '.[test]')")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=scenario.CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture(scope="session")
def console_ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("console") / "ledger"  # journey demo creates it
    scenario.build_ledger(data_dir, customers=200)
    return data_dir


@pytest.fixture(scope="session")
def tokens(console_ledger: Path) -> dict[str, str]:
    """Secrets by role: a store clerk, a technician, an analyst."""
    return {
        "stores": scenario.create_token(console_ledger, "clerk-ana", "stores", "stores"),
        "technical_service": scenario.create_token(console_ledger, "tech-tom", "technical_service",
                                                   "technical_service"),
        "analyst": scenario.create_token(console_ledger, "analyst-eva", "analyst"),
    }


@pytest.fixture(scope="session")
def server(browser: Any, console_ledger: Path, tokens: dict[str, str],
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("console-serve") / "serve.log"
    with scenario.serve(console_ledger, log) as base:
        yield base


@pytest.fixture
def page(browser: Any, server: str) -> Iterator[Any]:
    """A fresh browser context (no cookies); fails the test on any script error in the page."""
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    context.set_default_timeout(15_000)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda error: errors.append(str(error)))
    yield pg
    context.close()
    assert not errors, f"script errors in the console: {errors}"
