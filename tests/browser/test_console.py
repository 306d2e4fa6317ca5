"""The department console (issue #7) in a real headless Chromium against a real `journey serve`.

A store clerk signs in through the page, finds customers by phone, e-mail, @handle and customer
number, reads the contact verdict, the timeline across departments, a case with its transfers
and clocks, and the social inbox; roles that may not see a field see it hidden.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.browser import scenario

pytestmark = pytest.mark.browser


def search(page: Any, text: str) -> None:
    page.fill("#search", text)
    page.press("#search", "Enter")


def test_sign_in_rejects_a_bad_token_then_accepts_a_good_one(page: Any, server: str,
                                                              tokens: dict[str, str]) -> None:
    page.goto(server + "/")  # / redirects to the console
    page.wait_for_selector("#login-form")
    assert "/console/" in page.url
    page.fill("#token", "jt_not-a-real-token")
    page.click("#login-button")
    page.wait_for_function("document.querySelector('#login-error').textContent.length > 0")
    assert "not accepted" in page.inner_text("#login-error")
    page.fill("#token", tokens["stores"])
    page.click("#login-button")
    page.wait_for_selector("#user .user-name")
    assert "clerk-ana" in page.inner_text("#user")
    assert page.is_visible("#home-search")
    # Signing out brings the form back, and the cookie is gone: a reload asks again.
    page.click("#logout")
    page.wait_for_selector("#login-form")
    page.reload()
    page.wait_for_selector("#login-form")


def test_a_sign_in_link_signs_in_and_leaves_no_token_in_the_address(page: Any, server: str,
                                                                      tokens: dict[str, str]) -> None:
    """What `journey demo --serve` prints: /console/#token=SECRET opens the console signed in."""
    page.goto(f"{server}/console/#token={tokens['stores']}")
    page.wait_for_selector("#user .user-name")
    assert "clerk-ana" in page.inner_text("#user")
    assert tokens["stores"] not in page.url
    page.click("#logout")
    page.wait_for_selector("#login-form")
    # A bad link is not an error page: the sign-in form asks for a token.
    page.goto(f"{server}/console/#token=jt_not-a-real-token")
    page.reload()
    page.wait_for_selector("#login-form")


@pytest.mark.parametrize(("typed", "name", "number"), [
    ("+34600900001", "Ramón Ortega Gil", "C-900001"),
    ("600 900 001", "Ramón Ortega Gil", "C-900001"),
    ("lucia.romero@example.es", "Lucía Romero Díaz", "C-900005"),
    ("@lucia_s5", "Lucía Romero Díaz", "C-900005"),
    ("C-900004", "Rocío Molina Sanz", "C-900004"),
])
def test_search_leads_to_the_customer_page(page: Any, server: str, tokens: dict[str, str],
                                           typed: str, name: str, number: str) -> None:
    scenario.sign_in(page, server, tokens["stores"])
    search(page, typed)
    page.wait_for_selector("#customer-name")
    assert page.inner_text("#customer-name") == name
    assert number in page.inner_text("#customer-head")
    assert page.url.split("#", 1)[1].startswith("/customer/")
    # The page is linkable: opening its address again shows the same customer.
    page.goto(page.url)
    page.reload()
    page.wait_for_selector("#customer-name")
    assert page.inner_text("#customer-name") == name


def test_unknown_customer_says_so(page: Any, server: str, tokens: dict[str, str]) -> None:
    scenario.sign_in(page, server, tokens["stores"])
    search(page, "+34699999999")
    page.wait_for_selector("#not-found")
    assert "Nobody found" in page.inner_text("#not-found")


def test_verdict_banner_denies_the_customer_who_objected(page: Any, server: str,
                                                         tokens: dict[str, str]) -> None:
    scenario.sign_in(page, server, tokens["stores"], "#/customer/+34600900001")
    page.wait_for_selector("#verdict-banner")
    banner = page.inner_text("#verdict-banner")
    assert "DENIED" in banner
    assert "objected" in banner.lower()
    assert page.get_attribute("#verdict", "data-verdict") == "denied"
    for channel in ("phone", "sms", "email", "letter"):
        tile = page.inner_text(f'.channel-verdict[data-channel="{channel}"]')
        assert "DENIED" in tile and "objected" in tile.lower(), (channel, tile)
    # The objection is also on the attention line and among consents and objections.
    assert "Objection" in page.inner_text("#attention")
    assert "in force" in page.inner_text("#consents")
    # His objection is to commercial contact: service contact (his bill, his line) is allowed.
    page.click(".purpose-toggle button:has-text('Service')")
    page.wait_for_function("document.querySelector('#verdict .verdict-headline').textContent.includes('Service')")
    assert "ALLOWED" in page.inner_text("#verdict-banner")


def test_timeline_spans_departments_and_marks_the_late_event(page: Any, server: str,
                                                            tokens: dict[str, str]) -> None:
    scenario.sign_in(page, server, tokens["stores"], "#/customer/C-900001")
    page.wait_for_selector("#timeline li.event")
    departments = set(page.eval_on_selector_all(
        "#timeline li.event", "els => els.map(e => e.dataset.department).filter(Boolean)"))
    assert {"sales", "customer_care", "outsourced_callcenter", "stores"} <= departments
    # Day headings, local times, an icon per event, a department badge per event.
    assert page.locator("#timeline .day-title").count() >= 5
    assert "Monday 9 March 2026" in page.inner_text("#timeline")
    assert page.locator("#timeline li.event .ev-icon svg").count() == page.locator("#timeline li.event").count()
    assert page.locator("#timeline li.event .dept-outsourced_callcenter").count() >= 1
    late = page.locator("#timeline li.event.late")
    assert late.count() == 1
    text = late.inner_text()
    assert "RECORDED LATE" in text and "store MAD01" in text and "12:30" in text
    # The department filter narrows the timeline to one department.
    page.click('.dept-filter button[data-dept="stores"]')
    shown = set(page.eval_on_selector_all("#timeline li.event", "els => els.map(e => e.dataset.department)"))
    assert shown == {"stores"}
    # No JSON anywhere on the page.
    assert '{"' not in page.inner_text("main")


def test_show_older_pages_through_a_long_history(page: Any, server: str, tokens: dict[str, str]) -> None:
    scenario.sign_in(page, server, tokens["stores"], f"#/customer/{scenario.BUSY_CUSTOMER}")
    page.wait_for_selector("#timeline li.event")
    assert page.locator("#timeline li.event").count() == 50
    assert f"of {scenario.BUSY_EVENTS}" in page.inner_text(".timeline-count")
    page.click("#show-older")
    page.wait_for_function(f"document.querySelectorAll('#timeline li.event').length === {scenario.BUSY_EVENTS}")
    assert page.is_hidden("#show-older")
    assert "Registered as Marta Busy Llamadas" in page.inner_text("#timeline")


def test_case_page_shows_transfers_clocks_and_contradictions(page: Any, server: str,
                                                             tokens: dict[str, str]) -> None:
    scenario.sign_in(page, server, tokens["stores"])
    search(page, "K-S4")
    page.wait_for_selector("#case-head")
    assert "Case K-S4" in page.inner_text("#case-head")
    assert "charged twice for fibra in April" in page.inner_text("#case-head")
    transfers = page.inner_text("#transfers")
    assert "Transfers (1)" in transfers
    assert re.search(r"Customer care.*Sales", transfers, re.S)
    assert "discount needs sales approval" in transfers
    clocks = page.inner_text("#clocks").lower()  # labels are upper-cased by the style sheet
    for words in ("Opened", "4 May 2026, 10:00", "Answer due", "19 May 2026, 10:00", "answered in time",
                  "First answer", "12 May 2026, 12:30", "after 8 days 2 h", "not resolved"):
        assert words.lower() in clocks, words
    assert "20% discount" in page.inner_text("#contradictions")
    assert "BROKEN" in page.inner_text("#case-promises")
    assert page.locator("#case-history li.event").count() == 3
    # The tracking key the customer was given opens the same case; the customer link works.
    page.goto(server + "/console/#/case/9SSZ9-AJF8V")
    page.wait_for_function("document.querySelector('#case-head') && document.querySelector('#case-head').textContent.includes('K-S4')")
    page.click("#case-customer")
    page.wait_for_selector("#customer-name")
    assert page.inner_text("#customer-name") == "Rocío Molina Sanz"
    assert "K-S4" in page.inner_text("#open-cases")
    assert "BROKEN" in page.inner_text("#promises")


def test_overdue_cases_and_promises_lists(page: Any, server: str, tokens: dict[str, str]) -> None:
    scenario.sign_in(page, server, tokens["stores"], "#/cases?overdue=1")
    page.wait_for_selector("#cases-page")
    rows = page.locator("#cases-page tbody tr")
    assert rows.count() >= 1
    assert "OVERDUE" in rows.first.inner_text()
    page.click("nav.main-nav a[data-page=promises]")
    page.wait_for_selector("#promises-page")
    assert "Promises not kept" in page.inner_text("#promises-page")


def test_inbox_lists_unanswered_tweets_oldest_first(page: Any, server: str, tokens: dict[str, str]) -> None:
    scenario.sign_in(page, server, tokens["stores"], "#/inbox")
    page.wait_for_selector("#inbox-list")
    items = page.locator("#inbox-list li.mention-card")
    assert items.count() >= 2
    text = page.inner_text("#inbox-list")
    assert "three days without internet, anyone there?" in text
    assert "still no internet and no answer. Day six." in text
    # The reply answered the third tweet: it is not waiting.
    assert "I am cancelling my contract." not in text
    assert "waiting" in items.first.inner_text()
    # Filter by network.
    page.click("nav.tabs a:has-text('Twitter/X')")
    page.wait_for_function("location.hash === '#/inbox/twitter'")
    page.wait_for_selector("#inbox-list")
    networks = set(page.eval_on_selector_all("#inbox-list li.mention-card", "els => els.map(e => e.dataset.network)"))
    assert networks == {"twitter"}
    # From the inbox to the customer.
    page.click("#inbox-list li.mention-card:has-text('three days without internet') a.customer-link")
    page.wait_for_selector("#customer-name")
    assert page.inner_text("#customer-name") == "Lucía Romero Díaz"
    assert "not answered" in page.inner_text("#attention")


def test_fields_a_role_may_not_see_are_shown_hidden(page: Any, server: str, tokens: dict[str, str]) -> None:
    # The technical service may not see national ids: the linked DNI reads "hidden for your role".
    scenario.sign_in(page, server, tokens["technical_service"], "#/customer/C-900001")
    page.wait_for_selector("#customer-head")
    head = page.inner_text("#customer-head")
    assert "national id" in head and "hidden for your role" in head
    assert scenario.NATIONAL_ID not in page.content()
    assert "+34600900001" in head  # contact data it may see
    assert "[hidden]" not in page.inner_text("main")


def test_store_clerk_sees_the_national_id(page: Any, server: str, tokens: dict[str, str]) -> None:
    scenario.sign_in(page, server, tokens["stores"], "#/customer/C-900001")
    page.wait_for_selector("#customer-head")
    assert scenario.NATIONAL_ID in page.inner_text("#customer-head")
    assert "hidden for your role" not in page.inner_text("#customer-head")


def test_analyst_sees_lists_without_personal_data_and_no_customer_pages(
        page: Any, server: str, tokens: dict[str, str]) -> None:
    scenario.sign_in(page, server, tokens["analyst"], "#/cases?overdue=1")
    page.wait_for_selector("#cases-page tbody tr")
    first = page.locator("#cases-page tbody tr").first.inner_text()
    assert "hidden for your role" in first
    assert "[hidden]" not in page.inner_text("main")
    page.goto(server + "/console/#/inbox")
    page.wait_for_selector("#inbox-list")
    assert "three days without internet" not in page.inner_text("#inbox-list")
    assert "hidden for your role" in page.inner_text("#inbox-list")
    page.goto(server + "/console/#/customer/C-900001")
    page.wait_for_selector("#forbidden")
    assert "Your role may not see this" in page.inner_text("#forbidden")


def test_warranty_by_serial_without_the_invoice(page: Any, server: str, tokens: dict[str, str]) -> None:
    scenario.sign_in(page, server, tokens["stores"], "#/warranty")
    page.fill("#warranty-search", "SNR58T20A4K")
    page.press("#warranty-search", "Enter")
    page.wait_for_selector("#warranty-page .warranty-card")
    card = page.inner_text("#warranty-page .warranty-card")
    assert "IN WARRANTY" in card and "Smartphone Galaxy A55" in card and "Jordi Puig Castells" in card
    assert "APPROVED" in page.inner_text("#claims")


def test_lists_page_through_every_row_and_filter_by_state(page: Any, server: str,
                                                          tokens: dict[str, str]) -> None:
    """More cases than fit a page: "1-100 of N", next shows the rest, previous comes back; the
    state tabs say how many are in each state, and the promises not kept include broken ones."""
    scenario.sign_in(page, server, tokens["stores"], "#/cases")
    page.wait_for_selector("#cases-page #cases-pager")
    match = re.fullmatch(r"1-100 of (\d+)", page.inner_text("#cases-pager .pager-range"))
    assert match, page.inner_text("#cases-pager")
    total = int(match.group(1))
    assert total > 100  # the demo's cases do not fit one page
    assert page.locator("#cases-page tbody tr").count() == 100
    first = page.locator("#cases-page tbody tr").first.inner_text()
    assert page.locator("#cases-pager .pager-prev").count() == 0
    page.click("#cases-pager .pager-next")
    page.wait_for_function("location.hash.includes('offset=100')")
    page.wait_for_selector(f"#cases-pager .pager-range:has-text('101-{total} of {total}')")
    assert page.locator("#cases-page tbody tr").count() == total - 100
    assert page.locator("#cases-pager .pager-next").count() == 0
    page.click("#cases-pager .pager-prev")
    page.wait_for_selector("#cases-pager .pager-range:has-text('1-100 of')")
    assert page.locator("#cases-page tbody tr").first.inner_text() == first
    # The state tabs: each says how many; open and resolved make up all of them.
    tabs = {a.get_attribute("data-state"): a.inner_text() for a in page.locator("#case-states a").all()}
    numbers = {k: int(re.search(r"\((\d+)\)", v).group(1)) for k, v in tabs.items()}  # type: ignore[union-attr]
    assert numbers[""] == total == numbers["open"] + numbers["resolved"]
    page.click("#case-states a[data-state=resolved]")
    page.wait_for_function("location.hash.includes('status=resolved')")
    page.wait_for_selector("#cases-page tbody tr")
    statuses = {t.strip().split()[0] for t in page.locator("#cases-page td.flags").all_inner_texts()}
    assert statuses == {"RESOLVED"}
    # Promises: the default list is those not kept, broken ones among them.
    page.click("nav.main-nav a[data-page=promises]")
    page.wait_for_selector("#promises-page #promise-states")
    assert "Promises not kept" in page.inner_text("#promises-page h1")
    rows = page.locator("#promises-page tbody tr").all_inner_texts()
    assert any("BROKEN" in r for r in rows) and any("OVERDUE" in r for r in rows)
    assert all("KEPT" not in r for r in rows)


# ---------------------------------------------------------------- a phone's width

#: Every element that reaches past the viewport's sides, or is cut off by an ancestor that
#: hides what overflows it (overflow hidden/clip). An ancestor that scrolls (overflow auto or
#: scroll) is a deliberate way to show a wide thing and is not counted.
OVERFLOWING = """() => {
  const width = document.documentElement.clientWidth;
  const name = (el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
    + (typeof el.className === 'string' && el.className ? '.' + el.className.trim().split(/\\s+/).join('.') : '');
  const found = [];
  for (const el of document.querySelectorAll('body *')) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.height === 0 || getComputedStyle(el).visibility === 'hidden') continue;
    let left = 0, right = width, scrolled = false;
    for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
      const o = getComputedStyle(a).overflowX;
      if (o === 'auto' || o === 'scroll') { scrolled = true; break; }
      if (o === 'hidden' || o === 'clip') {
        const ar = a.getBoundingClientRect();
        left = Math.max(left, ar.left); right = Math.min(right, ar.right);
      }
    }
    if (scrolled) continue;
    if (r.left < left - 1 || r.right > right + 1) {
      found.push(`${name(el)} ${Math.round(r.left)}..${Math.round(r.right)} (room ${Math.round(left)}..${Math.round(right)})`);
    }
  }
  return { page: document.documentElement.scrollWidth, width, found: found.slice(0, 12) };
}"""

PHONE = {"width": 390, "height": 844}


@pytest.fixture
def phone(browser: Any, server: str) -> Any:
    """A page 390 px wide, the width of a common phone held upright."""
    context = browser.new_context(viewport=PHONE, device_scale_factor=1, is_mobile=True, has_touch=True)
    context.set_default_timeout(15_000)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda error: errors.append(str(error)))
    yield pg
    context.close()
    assert not errors, f"script errors in the console: {errors}"


def assert_fits(page: Any, what: str) -> None:
    page.wait_for_load_state("networkidle")
    result = page.evaluate(OVERFLOWING)
    assert result["page"] <= result["width"], (what, result)
    assert not result["found"], (what, result)


@pytest.mark.parametrize(("route", "ready"), [
    ("#/", "#home-search"),
    ("#/customer/+34600900001", "#verdict-banner"),
    ("#/customer/C-900002", "#timeline li.event"),
    ("#/customer/C-900005", "#timeline li.event"),
    ("#/case/K-S4", "#clocks"),
    ("#/cases?overdue=1", "#cases-page tbody tr"),
    ("#/cases", "#cases-page tbody tr"),
    ("#/promises?all=1", "#promises-page"),
    ("#/inbox", "#inbox-list"),
    ("#/warranty/SNR58T20A4K", "#warranty-page .warranty-card"),
])
def test_every_page_fits_a_phone_390_px_wide(phone: Any, server: str, tokens: dict[str, str],
                                             route: str, ready: str) -> None:
    scenario.sign_in(phone, server, tokens["stores"], route)
    phone.wait_for_selector(ready)
    assert_fits(phone, route)
    # The navigation and the verdict are whole: every link can be seen and tapped.
    for link in phone.locator("nav.main-nav a:visible").all():  # a role's own pages only
        box = link.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], link.inner_text()


def test_sign_in_form_fits_a_phone(phone: Any, server: str) -> None:
    phone.goto(server + "/console/")
    phone.wait_for_selector("#login-form")
    assert_fits(phone, "sign in")


# ---------------------------------------------------------------- words people read

#: A count of one with a plural noun ("1 replies"), or a code a person does not read.
ONE_WITH_A_PLURAL = re.compile(r"\b1 (replies|mentions|events|cases|transfers|reasons|promises|answers|notes|"
                               r"contacts|days|facts|changes|open cases|resolved cases)\b")
CODES = re.compile(r"\b(customer_care|outsourced_callcenter|social_media|technical_service|customer_id|"
                   r"national_id|not_interested|third_party)\b|system: ")


def test_the_tab_title_follows_the_page(page: Any, server: str, tokens: dict[str, str]) -> None:
    scenario.sign_in(page, server, tokens["stores"], "#/customer/C-900001")
    page.wait_for_selector("#customer-name")
    assert page.title() == "Ramón Ortega Gil · Customer console"
    for nav, title in (("cases", "Cases"), ("promises", "Promises"), ("inbox", "Social inbox"),
                       ("warranty", "Warranty lookup"), ("search", "Find a customer")):
        page.click(f"nav.main-nav a[data-page={nav}]")
        page.wait_for_function(f"document.title === '{title} · Customer console'")
        assert "Ramón" not in page.title()
    search(page, "K-S4")
    page.wait_for_selector("#case-head")
    assert page.title() == "Case K-S4 · Customer console"


def test_a_search_asks_the_server_once(page: Any, server: str, tokens: dict[str, str]) -> None:
    """A name, or anything that names nobody, is one request and one "nobody found": no
    question per channel about a person who is not there."""
    scenario.sign_in(page, server, tokens["stores"])
    asked: list[tuple[int, str]] = []
    page.on("response", lambda r: asked.append((r.status, r.url)) if "/api/" in r.url else None)
    search(page, "Ana García")
    page.wait_for_selector("#not-found")
    page.wait_for_load_state("networkidle")
    assert len(asked) == 1 and asked[0][0] == 404 and "can-contact" not in asked[0][1], asked
    assert "Nobody found for “Ana García”" in page.inner_text("#not-found")
    assert "not by name" in page.inner_text("#not-a-name")
    # Somebody found: the customer, then one verdict per channel, all answered, none missing.
    asked.clear()
    search(page, "+34600900001")
    page.wait_for_selector("#verdict-banner")
    page.wait_for_load_state("networkidle")
    assert [status for status, _ in asked] == [200] * 6, asked
    assert sum("can-contact" in url for _, url in asked) == 5


@pytest.mark.parametrize(("route", "ready"), [
    ("#/customer/+34600900001", "#verdict-banner"),
    ("#/customer/C-900002", "#contact-changes"),
    ("#/customer/C-900005", "#social"),
    ("#/case/K-S4", "#clocks"),
])
def test_pages_speak_in_words_not_codes(page: Any, server: str, tokens: dict[str, str], route: str,
                                        ready: str) -> None:
    scenario.sign_in(page, server, tokens["stores"], route)
    page.wait_for_selector(ready)
    page.wait_for_load_state("networkidle")
    text = page.inner_text("main")
    assert not ONE_WITH_A_PLURAL.search(text), ONE_WITH_A_PLURAL.search(text)
    assert not CODES.search(text), CODES.search(text)


def test_the_verdict_says_who_and_when_in_words(page: Any, server: str, tokens: dict[str, str]) -> None:
    scenario.sign_in(page, server, tokens["stores"], "#/customer/+34600900001")
    page.wait_for_selector("#verdict-banner")
    why = page.inner_text("#verdict")
    assert "objected to commercial contact on all channels on 2026-03-05 09:30 +01:00 (by customer care)" in why
    # One line per reason, whatever the channel's words in it ("by SMS", "by e-mail").
    lines = page.locator("#verdict .verdict-reasons li").all_inner_texts()
    objected = [line for line in lines if line.startswith("The customer objected")]
    assert len(objected) == 1 and "(Phone, SMS, E-mail, Letter, Social)" in objected[0], lines
