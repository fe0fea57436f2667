"""`make demo` in a real browser, past the invoice: send a paid test invoice, press Pay out, and read on the
Payouts page how the payout adds up and what was entered in e-conomic's journal."""

import re

import pytest

from launch.demo import DEMO_EMAIL, DEMO_PASSWORD

from ..live import running_portal
from .helpers import sign_in

pytestmark = pytest.mark.browser

WIDE, NARROW = {"width": 1280, "height": 900}, {"width": 390, "height": 844}


def test_send_a_paid_invoice_pay_out_and_read_the_payout(tmp_path, page, screenshots):
    with running_portal(tmp_path, module="launch.demo") as portal:
        page.set_viewport_size(WIDE)
        sign_in(page, portal.base_url, DEMO_EMAIL, DEMO_PASSWORD)
        page.click("nav >> text=Sync history")
        page.click("text=Send a test invoice (invoice.paid)")
        number = re.search(r"DEMO-\d{4}", page.locator(".flash-success").inner_text()).group(0)
        # The invoice is booked, then its payment entered against it: two rows, both succeeded.
        page.locator("#history-rows tr", has_text="Customer payment").locator(".status-succeeded").wait_for(timeout=30000)
        invoice_row = page.locator("#history-rows tr", has_text="Booked invoice")
        assert number in invoice_row.inner_text() and "Succeeded" in invoice_row.inner_text()

        page.click("text=Payouts")
        page.click("button:has-text('Pay out')")
        assert "watch its entries appear below" in page.locator(".flash-success").inner_text()
        payout = page.locator("article.payout").first
        for _ in range(60):  # the Payouts page does not poll: reload until the worker has entered it
            if payout.locator(".status-succeeded").count():
                break
            page.wait_for_timeout(500)
            page.reload()
            payout = page.locator("article.payout").first
        assert payout.locator(".status-succeeded").count() == 1, payout.inner_text()
        totals = payout.locator("table.payout-totals").inner_text()
        assert "Charges" in totals and "− Stripe's fees" in totals and "= payout" in totals
        entries = payout.locator("table.timeline").first.inner_text()
        assert "7220" in entries and "5820" in entries and "5830" in entries  # fees and bank, against the Stripe balance
        payout.locator("summary").click()
        assert number in payout.locator("details table").inner_text()  # the charge, linked to its invoice
        screenshots(page, "payouts")

        page.set_viewport_size(NARROW)
        page.reload()
        assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth"), \
            "the Payouts page scrolls sideways at 390 px"
        screenshots(page, "payouts-390")
