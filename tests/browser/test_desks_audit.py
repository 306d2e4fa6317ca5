"""The auditors' and admins' pages in a real headless Chromium against a real `journey serve`.

An auditor reads a customer as the ledger knew them at an instant and as it had happened,
downloads a subject-access export and forgets a person behind a typed confirmation; an admin
creates a token (its secret shown once), revokes it, and reads the ledger's status. The pages
show only to the roles they are for, and fit a 390 px wide phone.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser import scenario

pytestmark = pytest.mark.browser

#: Somebody of this module's own to forget (the other modules' customers stay as they are).
FORGET_NUMBER = "C-777001"
FORGET_NAME = "Olga Olvido Prueba"


@pytest.fixture(scope="module")
def desk_tokens(console_ledger: Path) -> dict[str, str]:
    return {
        "auditor": scenario.create_token(console_ledger, "auditor-ines", "auditor"),
        "admin": scenario.create_token(console_ledger, "admin-pau", "admin"),
        "stores": scenario.create_token(console_ledger, "clerk-desk", "stores", "stores"),
    }


def _call(server: str, secret: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(server + path, data=data, method=method, headers={
        "Authorization": f"Bearer {secret}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


@pytest.fixture(scope="module")
def somebody(server: str, desk_tokens: dict[str, str]) -> str:
    fact = {"type": "customer.registered", "id": "desk-forget-1", "source": "crm",
            "customer": {"customer_id": FORGET_NUMBER}, "occurred_at": "2026-04-01T10:00:00+02:00",
            "department": "sales", "agent": "A-9",
            "data": {"name": FORGET_NAME, "phone": "+34611777001", "email": "olga.olvido@example.es"}}
    status, answer = _call(server, desk_tokens["admin"], "POST", "/api/facts", fact)
    assert status == 201, answer
    return FORGET_NUMBER


@pytest.fixture
def phone(browser: Any, server: str) -> Iterator[Any]:
    """A page 390 px wide, like a phone's."""
    context = browser.new_context(viewport={"width": 390, "height": 844})
    context.set_default_timeout(15_000)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda error: errors.append(str(error)))
    yield pg
    context.close()
    assert not errors, f"script errors in the console: {errors}"


def _fits(page: Any) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], f"the page is {width} px wide"


def _nav(page: Any) -> list[str]:
    return [t.strip() for t in page.locator("nav.main-nav a:visible").all_inner_texts()]


def test_each_role_sees_its_own_pages_in_the_navigation(page: Any, server: str,
                                                        desk_tokens: dict[str, str]) -> None:
    scenario.sign_in(page, server, desk_tokens["stores"])
    assert "Audit" not in _nav(page) and "Admin" not in _nav(page)
    page.click("#logout")
    page.wait_for_selector("#login-form")
    scenario.sign_in(page, server, desk_tokens["auditor"])
    assert "Audit" in _nav(page) and "Admin" not in _nav(page)
    page.goto(f"{server}/console/#/admin/tokens")
    page.wait_for_selector("#forbidden")  # the page is the server's to refuse, too
    page.click("#logout")
    page.wait_for_selector("#login-form")
    scenario.sign_in(page, server, desk_tokens["admin"])
    assert {"Audit", "Admin"} <= set(_nav(page))


def test_the_auditor_reads_a_customer_as_recorded_and_as_it_had_happened(
        page: Any, server: str, desk_tokens: dict[str, str]) -> None:
    scenario.sign_in(page, server, desk_tokens["auditor"])
    page.click("nav.main-nav a[data-page=audit]")
    page.click("#audit-page a[href='#/audit/as-of']")
    page.fill("#asof-ref", "C-900001")
    page.fill("#asof-at", "2026-03-09T12:00")
    page.check("input[name=asof-mode][value=occurred]")
    page.click("#asof-show")
    page.wait_for_selector("#asof-banner[data-mode=occurred]")
    assert page.inner_text("#customer-name") == "Ramón Ortega Gil"
    assert "As it had happened" in page.inner_text("#asof-banner")
    # The store visit of 8 March was recorded later: it is there, and listed as late.
    assert "store.visit" in page.inner_text("#asof-late")
    assert page.locator("#timeline li.event[data-type='store.visit']").count() == 1
    assert page.locator("#timeline li.event[data-type='identity.linked']").count() == 0  # 1 October
    assert page.is_hidden("#show-older")  # only that instant's events, never today's
    # As recorded, the ledger knew him then, but not the store visit: it was recorded later.
    page.check("input[name=asof-mode][value=recorded]")
    page.click("#asof-show")
    page.wait_for_selector("#asof-banner[data-mode=recorded]")
    assert page.inner_text("#customer-name") == "Ramón Ortega Gil"
    assert page.locator("#timeline li.event[data-type='store.visit']").count() == 0
    assert page.locator("#timeline li.event[data-type='customer.registered']").count() == 1
    # Before anything was recorded, the ledger knew nobody.
    page.fill("#asof-at", "2020-01-01T00:00")
    page.click("#asof-show")
    page.wait_for_selector("#asof-nobody")
    assert "Nobody known as “C-900001”" in page.inner_text("#asof-nobody")
    # A later instant, as recorded: everything recorded by now.
    page.fill("#asof-at", "2099-01-01T00:00")
    page.click("#asof-show")
    page.wait_for_selector("#asof-banner[data-mode=recorded]")
    assert page.inner_text("#customer-name") == "Ramón Ortega Gil"
    assert page.locator("#timeline li.event[data-type='identity.linked']").count() == 1


def test_the_auditor_asks_the_contact_policy_of_a_past_day(page: Any, server: str,
                                                          desk_tokens: dict[str, str]) -> None:
    scenario.sign_in(page, server, desk_tokens["auditor"], "#/audit/contact")
    page.wait_for_selector("#contact-form")
    page.fill("#contact-ref", "+34600900001")
    page.fill("#contact-at", "2026-03-12T11:00")
    page.check("input[name=contact-axis][value=occurred]")
    page.click("#contact-ask")
    page.wait_for_selector("#contact-verdict")
    # Ramón said "don't call me again" on 11 March (the demo's first story).
    assert page.get_attribute("#contact-verdict", "data-verdict") == "denied"
    assert page.locator("#contact-verdict li[data-code=objection]").count() == 1


def test_the_auditor_verifies_the_ledger(page: Any, server: str, desk_tokens: dict[str, str]) -> None:
    scenario.sign_in(page, server, desk_tokens["auditor"], "#/audit/verify")
    page.wait_for_selector("#verify-start")
    page.click("#verify-start")
    page.wait_for_selector("#verify-state[data-state=done]", timeout=120_000)
    assert page.get_attribute("#verify-state", "data-intact") == "yes"
    assert page.inner_text("#verify-verdict") == "INTACT"
    assert "auditor-ines" in page.inner_text("#verify-state")


def test_the_auditor_downloads_an_export_then_forgets_behind_a_typed_confirmation(
        phone: Any, server: str, desk_tokens: dict[str, str], somebody: str, tmp_path: Path) -> None:
    page = phone
    scenario.sign_in(page, server, desk_tokens["auditor"], f"#/audit/person?ref={somebody}")
    page.wait_for_selector("#forget-panel")
    assert FORGET_NAME in page.inner_text("#person-who")
    _fits(page)
    with page.expect_download() as download:
        page.click("#export-download")
    saved = tmp_path / "export.json"
    download.value.save_as(saved)
    export = json.loads(saved.read_text(encoding="utf-8"))
    assert export["summary"]["name"] == FORGET_NAME and export["raw_events"]

    button = page.locator("#forget-button")
    page.fill("#forget-reason", "art. 17 request, ticket 77")
    assert button.is_disabled()
    page.fill("#forget-confirm", "C-900001")  # somebody else
    assert button.is_disabled()
    page.fill("#forget-confirm", "olga  olvido PRUEBA")
    assert button.is_enabled()
    page.click("#forget-button")
    page.wait_for_selector("#forget-done")
    assert "key(s) destroyed" in page.inner_text("#forget-done")
    page.click("#forget-tombstone")
    page.wait_for_selector("#forgotten")
    assert FORGET_NAME not in page.inner_text("main")
    status, _ = _call(server, desk_tokens["auditor"], "GET", f"/api/customers/{somebody}")
    assert status == 404


def test_the_admin_creates_a_token_sees_its_secret_once_and_revokes_it(
        phone: Any, server: str, desk_tokens: dict[str, str]) -> None:
    page = phone
    scenario.sign_in(page, server, desk_tokens["admin"], "#/admin/tokens")
    page.wait_for_selector("#tokens-table")
    page.fill("#token-name", "desk-new-clerk")
    page.select_option("#token-role", "customer_care")
    page.click("#token-create")
    page.wait_for_selector("#secret-box")
    secret = page.input_value("#new-secret")
    assert re.fullmatch(r"jt_[A-Za-z0-9_\-]+", secret)
    assert "will not be shown again" in page.inner_text("#secret-box")
    assert page.is_visible("#copy-secret")
    row = page.locator("tr.token-row[data-name='desk-new-clerk']")
    row.wait_for()
    assert row.get_attribute("data-state") == "active"
    _fits(page)
    assert _call(server, secret, "GET", "/api/me")[1]["role"] == "customer_care"
    # Shown once: the list and a reload never show it again.
    page.reload()
    page.wait_for_selector("#tokens-table")
    assert page.locator("#secret-box").count() == 0
    assert secret not in page.content()

    row = page.locator("tr.token-row[data-name='desk-new-clerk']")
    row.locator("button.revoke").click()
    row.locator("button.revoke.armed").click()  # the second click revokes
    page.wait_for_selector("tr.token-row[data-name='desk-new-clerk'][data-state=revoked]")
    assert _call(server, secret, "GET", "/api/me")[0] == 401


def test_the_admin_reads_the_ledgers_status(phone: Any, server: str, desk_tokens: dict[str, str]) -> None:
    page = phone
    scenario.sign_in(page, server, desk_tokens["admin"], "#/admin/status")
    page.wait_for_selector("#positions")
    _, status = _call(server, desk_tokens["admin"], "GET", "/api/status")
    head = int(page.inner_text("#store-head .stat-value"))
    assert 0 < head <= status["store_position"]
    assert int(page.inner_text("#projection-position .stat-value")) <= head
    assert page.inner_text("#quarantined-count .stat-value") == "0"
    assert "Nothing is quarantined" in page.inner_text("#quarantine")
    _fits(page)
