"""Every screen, at a desktop's 1400 px and a phone's 390 px, against `make demo` (Stripe and e-conomic are the
local doubles, so every screen has content): the navigation on one row at 1400 px, no sideways page scroll at
390 px, the history's filter bar on one row with its actions (Download CSV, Sync past invoices, Payouts) beside
it or beside the title, and axe-core finding no serious or critical WCAG 2 A/AA violation.

axe-core is vendored for these tests only (tests/browser/vendor). The portal's CSP allows scripts from its own
origin only, so the test serves axe.min.js at a path of the portal's origin (page.route) and adds it by URL."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import create_engine, insert, select

from launch.demo import DEMO_EMAIL, DEMO_PASSWORD
from portal.models import Merchant, StripeAccount, SyncRun

from ..live import running_portal
from .helpers import filter_bar_rows, history_actions, sign_in

pytestmark = pytest.mark.browser

AXE = Path(__file__).parent / "vendor" / "axe.min.js"
AXE_PATH = "/__tests__/axe.min.js"  # answered by the test (page.route), never by the portal
WIDE, DESKTOP_MIN, NARROW = {"width": 1400, "height": 900}, {"width": 1024, "height": 768}, {"width": 390, "height": 844}
HISTORY_ACTIONS = ["Download CSV", "Sync past invoices", "Payouts"]  # an admin's (the demo's login is the owner)
# The screens the README shows (`make screenshots` writes them to docs/screenshots/, see readme_screenshot).
README_SCREENS = ("home", "connections", "rules", "mappings", "history", "invoice", "payouts")
FAILED_INVOICE = "in_1ScreensFailedRun"
FAILED_ERROR = "e-conomic answered 400: Customer 5099 does not exist. Check Customer & product settings, then press Sync again."


def insert_failed_run(database_path: Path) -> None:
    """A run that failed, for the invoice page's error state and the history's failed filter."""
    engine = create_engine(f"sqlite:///{database_path}")
    now = datetime.now(timezone.utc)
    with engine.begin() as connection:
        merchant_id = connection.scalar(select(Merchant.id))
        account_id = connection.scalar(select(StripeAccount.id).where(StripeAccount.merchant_id == merchant_id))
        connection.execute(insert(SyncRun.__table__), dict(
            merchant_id=merchant_id, stripe_account_id=account_id, stripe_invoice_id=FAILED_INVOICE,
            stripe_invoice_number="DEMO-FAIL-0001", customer_name="Kastrup Kaffe ApS with a rather long company name",
            customer_email="accounts.payable.department@kastrup-kaffe-with-a-long-domain.dk", document_type="booked_invoice",
            trigger="paid", currency="DKK", total_minor=1234500, status="failed", attempts=3, last_error=FAILED_ERROR,
            created_at=now - timedelta(hours=2), updated_at=now - timedelta(hours=1)))
    engine.dispose()


def serve_axe(page, base_url: str) -> None:
    page.route(base_url + AXE_PATH, lambda route: route.fulfill(path=str(AXE), content_type="application/javascript"))


def axe_violations(page, base_url: str) -> list[str]:
    """The serious and critical WCAG 2 A/AA violations axe-core finds on the page, one line each."""
    if not page.evaluate("typeof window.axe === 'object'"):
        page.add_script_tag(url=base_url + AXE_PATH)
    results = page.evaluate("""async () => {
        const results = await axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa']}});
        return results.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                             targets: v.nodes.slice(0, 5).map(n => n.target.join(' '))}));
    }""")
    return [f"{v['impact']}: {v['id']} ({v['help']}) at {json.dumps(v['targets'])}"
            for v in results if v["impact"] in ("serious", "critical")]


def nav_rows(page) -> list[str]:
    """The header's items (brand, task groups, account menu) that do not sit on the first task group's row."""
    return page.evaluate("""() => {
        const links = [...document.querySelectorAll('header .main-nav a')];
        if (!links.length) return [];
        const first = links[0].getBoundingClientRect();
        const middle = first.top + first.height / 2;
        const items = [document.querySelector('header .brand'), ...links,
                       document.querySelector('header .account-menu summary')].filter(Boolean);
        return items.filter(el => {
            const box = el.getBoundingClientRect();
            return box.top > middle || box.bottom < middle || Math.abs(box.top - first.top) > box.height;
        }).map(el => el.textContent.trim());
    }""")


def page_overflow(page) -> dict | None:
    """None when the page does not scroll sideways; else its width and the widest elements, for the message."""
    return page.evaluate("""() => {
        const width = window.innerWidth, scroll = document.documentElement.scrollWidth;
        if (scroll <= width) return null;
        const wide = [...document.querySelectorAll('body *')]
            .filter(el => el.getBoundingClientRect().right > width + 1)
            .slice(0, 8).map(el => el.tagName.toLowerCase() + (el.className ? '.' + String(el.className).split(' ').join('.') : '')
                                   + ' → ' + Math.round(el.getBoundingClientRect().right));
        return {scrollWidth: scroll, wide};
    }""")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("screens")
    with running_portal(tmp_path, module="launch.demo") as portal:
        yield portal, tmp_path


def make_content(page, base_url: str, database_path: Path) -> dict[str, str]:
    """A synced invoice and its payment, a held one, a failed one and a payout; returns their invoice pages."""
    page.goto(base_url + "/history")
    page.click("text=Send a test invoice (invoice.paid)")
    page.locator("#history-rows tr", has_text="Customer payment").locator(".status-succeeded").wait_for(timeout=60000)
    synced = page.locator("#history-rows tr", has_text="Booked invoice").locator("a[href*='/history/invoices/']").first
    synced_url = synced.get_attribute("href")
    page.goto(base_url + "/history")
    page.click("button:has-text('exempt from VAT')")
    for _ in range(120):
        page.goto(base_url + "/history?status=held")
        held = page.locator("#history-rows a[href*='/history/invoices/']")
        if held.count():
            break
        page.wait_for_timeout(500)
    held_url = held.first.get_attribute("href")
    page.goto(base_url + "/history/payouts")
    page.click("button:has-text('Pay out')")
    insert_failed_run(database_path)
    return {"synced": synced_url, "held": held_url, "failed": f"/history/invoices/{FAILED_INVOICE}"}


def test_every_screen_fits_a_desktop_and_a_phone_and_axe_finds_nothing_serious(demo, browser, screenshots,
                                                                                readme_screenshot):
    portal, tmp_path = demo
    base = portal.base_url
    context = browser.new_context(viewport=WIDE)
    page = context.new_page()
    page.set_default_timeout(30000)
    serve_axe(page, base)
    problems: list[str] = []
    try:
        # Signed out: the sign-in page, and its error state.
        for size in (WIDE, NARROW):
            page.set_viewport_size(size)
            page.goto(base + "/login")
            check(page, base, f"sign-in {size['width']}", size, problems, screenshots)
            page.fill("#email", DEMO_EMAIL)
            page.fill("#password", "not the password")
            page.click("input[type=submit]")
            page.locator("small.error").wait_for()
            check(page, base, f"sign-in-error {size['width']}", size, problems, screenshots)

        page.set_viewport_size(WIDE)
        sign_in(page, base, DEMO_EMAIL, DEMO_PASSWORD)
        invoices = make_content(page, base, tmp_path / "instance" / "portal.db")
        screens = [
            ("home", "/"), ("connections", "/connections"), ("rules", "/rules"), ("mappings", "/mappings"),
            ("journal-entries", "/settings/journals"), ("customer-product", "/customer-product-settings"),
            ("history", "/history"), ("history-failed", "/history?status=failed"), ("history-held", "/history?status=held"),
            ("invoice", invoices["synced"]), ("invoice-held", invoices["held"]), ("invoice-failed", invoices["failed"]),
            ("payouts", "/history/payouts"), ("backfill", "/history/backfill"), ("team", "/team"), ("audit-log", "/audit"),
            ("account", "/account"), ("not-found", "/history/invoices/in_nobody_knows"),
        ]
        for size in (WIDE, NARROW):
            page.set_viewport_size(size)
            for name, path in screens:
                page.goto(base + path)
                check(page, base, f"{name} {size['width']}", size, problems, screenshots)
                if size is WIDE and name in README_SCREENS:
                    readme_screenshot(page, name)
            # A form's error state: the account page with a wrong current password.
            page.goto(base + "/account")
            page.fill("#current_password", "not the password")
            page.fill("#new_password", "a new password for the test")
            page.fill("#new_password_again", "a new password for the test")
            page.click("input[value='Change password']")
            page.locator("small.error").first.wait_for()
            check(page, base, f"account-error {size['width']}", size, problems, screenshots)
            # The account menu, open: it fits the phone too.
            page.goto(base + "/")
            page.click("header .account-menu summary")
            page.locator("header .account-menu a:text-is('Account')").wait_for()
            check(page, base, f"account-menu {size['width']}", size, problems, screenshots)

        # From 1024 px: the navigation and the filter bar still on one row.
        page.set_viewport_size(DESKTOP_MIN)
        for path in ("/history", "/history?status=failed"):
            page.goto(base + path)
            if nav_rows(page):
                problems.append(f"{path} at 1024 px: navigation wraps: {nav_rows(page)}")
            if filter_bar_rows(page) != 1:
                problems.append(f"{path} at 1024 px: the filter bar and its actions take {filter_bar_rows(page)} rows")
            if history_actions(page) != HISTORY_ACTIONS:
                problems.append(f"{path} at 1024 px: the history's actions are {history_actions(page)}")
        screenshots(page, "history-1024", full_page=False)
    finally:
        context.close()
    assert not problems, "\n".join(problems)


def check(page, base: str, name: str, size: dict, problems: list[str], shoot) -> None:
    page.wait_for_load_state("load")
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    if size is WIDE:
        wrapped = nav_rows(page)
        if wrapped:
            problems.append(f"{name}: navigation not on one row: {wrapped}")
        if page.locator("form.filters[role=search]").count():
            if filter_bar_rows(page) != 1:
                problems.append(f"{name}: the filter bar and its actions take {filter_bar_rows(page)} rows")
            if history_actions(page) != HISTORY_ACTIONS:
                problems.append(f"{name}: the history's actions are {history_actions(page)}")
    if size is NARROW:
        overflow = page_overflow(page)
        if overflow:
            problems.append(f"{name}: the page scrolls sideways: {overflow}")
    for violation in axe_violations(page, base):
        problems.append(f"{name}: axe {violation}")
    shoot(page, slug, full_page=False)
