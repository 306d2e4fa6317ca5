"""Screenshots of the department console for docs/console.md (docs/console/*.png).

Builds a demo ledger in a temporary directory (the same scenario as tests/browser), starts a
real `journey serve`, signs in through the page in Debian's headless Chromium and saves the
main pages, and the recording forms of two desks. Run once after changing the console:

    .venv/bin/python scripts/console_screenshots.py [--customers 400] [--out docs/console]
        [--only record-objection.png --only audit-as-of.png ...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402

from tests.browser import scenario  # noqa: E402

#: (file, hash route, selector to wait for, full page?)
PAGES = [
    ("customer.png", "#/customer/+34600900001", "#verdict-banner", True),
    ("customer-case.png", "#/customer/C-900004", "#verdict-banner", True),
    ("case.png", "#/case/K-S4", "#clocks", True),
    ("inbox.png", "#/inbox", "#inbox-list", False),
    ("cases.png", "#/cases?overdue=1", "#cases-page", False),
]

#: The auditors' and admins' pages: (file, role, hash route, selector to wait for, full page?).
DESK_PAGES = [
    ("audit-as-of.png", "auditor",
     "#/audit/as-of?ref=C-900001&at=2026-03-09T12%3A00%3A00%2B01%3A00&mode=occurred", "#asof-banner", True),
    ("admin-tokens.png", "admin", "#/admin/tokens", "#tokens-table", False),
]


def _objection(page: Any) -> None:
    """The care desk hears "don't call me again": the form, filled in, before Record."""
    page.fill("dialog [name=evidence]", "No me llaméis más con ofertas, por favor.")
    page.fill("dialog [name=agent]", "CC-21")


def _denied_call(page: Any) -> None:
    """Sales about to log a commercial call to the customer who objected: the verdict says no."""
    page.check("dialog .field-direction input[value='call.outbound']")
    page.check("dialog .field-purpose input[value=commercial]")
    page.fill("dialog [name=campaign]", "fibra-autumn")
    page.fill("dialog [name=occurred_at]", "2026-11-04T11:00")
    page.fill("dialog [name=agent]", "A-40")
    page.wait_for_selector("dialog .form-verdict[data-verdict=denied]")


#: (file, desk, route, button that opens the form, how to fill it, viewport)
FORMS = [
    ("record-objection.png", "customer_care", "#/customer/C-900005", "#rec-objection", _objection,
     (1366, 900)),
    ("record-call-denied.png", "sales", "#/customer/+34600900001", "#rec-call", _denied_call, (1366, 1150)),
    ("record-phone.png", "customer_care", "#/customer/C-900005", "#rec-objection", _objection, (390, 844)),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=400)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "console")
    parser.add_argument("--only", action="append", default=[], metavar="FILE",
                        help="save only this picture (repeatable; default: every one)")
    args = parser.parse_args()
    known = {"login.png", *(p[0] for p in PAGES), "hidden-technician.png", "hidden-analyst.png",
             *(p[0] for p in DESK_PAGES),
             *(f[0] for f in FORMS)}
    unknown = sorted(set(args.only) - known)
    if unknown:
        print(f"--only: no picture called {', '.join(unknown)} (known: {', '.join(sorted(known))})",
              file=sys.stderr)
        return 2

    def wanted(name: str) -> bool:
        return not args.only or name in args.only

    if not scenario.chromium_available():
        print(f"{scenario.CHROMIUM} is missing: run scripts/ensure-chromium.sh", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="console-shots-") as tmp:
        data_dir = Path(tmp) / "ledger"
        print(f"building a demo ledger ({args.customers} customers) in {data_dir}", file=sys.stderr)
        scenario.build_ledger(data_dir, customers=args.customers)
        clerk = scenario.create_token(data_dir, "clerk-ana", "stores", "stores")
        tech = scenario.create_token(data_dir, "tech-tom", "technical_service", "technical_service")
        analyst = scenario.create_token(data_dir, "analyst-eva", "analyst")
        desks = {"customer_care": scenario.create_token(data_dir, "care-carla", "customer_care",
                                                        "customer_care"),
                 "sales": scenario.create_token(data_dir, "sales-sam", "sales", "sales"),
                 "auditor": scenario.create_token(data_dir, "auditor-ines", "auditor"),
                 "admin": scenario.create_token(data_dir, "admin-pau", "admin")}
        with scenario.serve(data_dir, Path(tmp) / "serve.log") as base, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=scenario.CHROMIUM, args=["--no-sandbox"])
            context = browser.new_context(viewport={"width": 1366, "height": 900})
            page = context.new_page()
            page.goto(base + "/")
            page.wait_for_selector("#login-form")
            if wanted("login.png"):
                page.screenshot(path=str(args.out / "login.png"))
            scenario.sign_in(page, base, clerk)
            for name, route, ready, full in PAGES:
                if not wanted(name):
                    continue
                page.goto(f"{base}/console/{route}")
                page.wait_for_selector(ready)
                page.wait_for_timeout(300)
                page.screenshot(path=str(args.out / name), full_page=full)
                print(f"saved {args.out / name}", file=sys.stderr)
            context.close()
            # Roles: the technical service (no national ids) and an analyst (no personal data).
            for name, secret, route, ready in [
                ("hidden-technician.png", tech, "#/customer/C-900001", "#customer-head"),
                ("hidden-analyst.png", analyst, "#/inbox", "#inbox-list"),
            ]:
                if not wanted(name):
                    continue
                context = browser.new_context(viewport={"width": 1366, "height": 700})
                page = context.new_page()
                scenario.sign_in(page, base, secret, route)
                page.wait_for_selector(ready)
                page.wait_for_timeout(300)
                page.screenshot(path=str(args.out / name))
                print(f"saved {args.out / name}", file=sys.stderr)
                context.close()
            # The recording forms, in Madrid's time zone (the times typed in are Madrid's).
            for name, role, route, button, prepare, (width, height) in FORMS:
                if not wanted(name):
                    continue
                context = browser.new_context(viewport={"width": width, "height": height},
                                              timezone_id="Europe/Madrid", locale="en-GB",
                                              is_mobile=width < 600, has_touch=width < 600)
                page = context.new_page()
                scenario.sign_in(page, base, desks[role], route)
                page.click(button)
                page.wait_for_selector("dialog.record-dialog[open]")
                prepare(page)
                page.wait_for_timeout(300)
                page.screenshot(path=str(args.out / name))
                print(f"saved {args.out / name}", file=sys.stderr)
                context.close()
            for name, role, route, ready, full in DESK_PAGES:
                if not wanted(name):
                    continue
                context = browser.new_context(viewport={"width": 1366, "height": 900})
                page = context.new_page()
                scenario.sign_in(page, base, desks[role], route)
                page.wait_for_selector(ready)
                page.wait_for_timeout(300)
                page.screenshot(path=str(args.out / name), full_page=full)
                print(f"saved {args.out / name}", file=sys.stderr)
                context.close()
            browser.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
