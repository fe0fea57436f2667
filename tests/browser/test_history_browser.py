"""The Sync history as a ledger, in a real browser against `make demo`: the filter bar on one row at 1400 px
and fitting a 390 px phone, the demo's test invoice in the list within seconds with number, customer and
amount (and the cards refreshed with it), an invoice the rules left alone listed as Not synced, and a
backfill whose bar's value is the percentage it prints, with the dates kept after a refusal."""

import re
from datetime import date, timedelta

import pytest

from launch.demo import DEMO_EMAIL, DEMO_PASSWORD

from ..live import running_portal
from .helpers import filter_bar_rows, no_sideways_scroll, sign_in

pytestmark = pytest.mark.browser

WIDE, DESKTOP_MIN, NARROW = {"width": 1400, "height": 900}, {"width": 1024, "height": 800}, {"width": 390, "height": 844}


def flashed_number(page) -> str:
    return re.search(r"DEMO-\d{4}", page.locator(".flash-success").inner_text()).group(0)


def test_the_ledger_the_demo_invoice_an_ignored_one_and_a_backfill(tmp_path, page, screenshots):
    with running_portal(tmp_path, module="launch.demo") as portal:
        base = portal.base_url
        page.set_viewport_size(WIDE)
        sign_in(page, base, DEMO_EMAIL, DEMO_PASSWORD)
        page.goto(base + "/history")
        assert filter_bar_rows(page) == 1, "the filter bar wraps at 1400 px"
        assert page.locator("form.filters input[type=search]").bounding_box()["width"] >= 200  # not squeezed

        # The demo's paid test invoice: in the list within seconds, with number, customer and amount.
        page.click("text=Send a test invoice (invoice.paid)")
        number = flashed_number(page)
        invoice_row = page.locator("#history-rows tr", has_text="Booked invoice")
        invoice_row.locator(".status-succeeded").wait_for(timeout=45000)
        cells = invoice_row.locator("td")
        assert number in cells.nth(0).inner_text()
        assert cells.nth(1).inner_text().strip(), "no customer on the row"
        assert re.fullmatch(r"[\d,]+\.\d\d DKK", cells.nth(2).inner_text().strip()), cells.nth(2).inner_text()
        made = cells.nth(3).locator("a")
        assert re.fullmatch(r"Booked invoice \d+", made.inner_text().strip()) and made.get_attribute("target") == "_blank"
        assert "✓ Succeeded" in cells.nth(4).inner_text()
        moment = cells.nth(5).locator("time")
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", moment.get_attribute("datetime"))
        assert "Europe/Copenhagen" in moment.get_attribute("title") and moment.inner_text().startswith("today ")
        # The cards came with the rows (no reload): today's succeeded count is there.
        page.locator("#history-overview .status-succeeded").wait_for(timeout=45000)
        assert page.locator("#history-overview .status-queued").count() == 0 or \
            page.locator("#history-rows .status-queued").count() > 0
        screenshots(page, "history-1400")

        # invoice.sent under the demo's Paid rule: not synced, and listed so, with its number and customer.
        page.click("text=Send a test invoice (invoice.sent)")
        ignored_number = flashed_number(page)
        ignored_row = page.locator("#history-rows tr", has_text=ignored_number)
        ignored_row.locator(".status-ignored").wait_for(timeout=45000)
        text = ignored_row.inner_text()
        assert "Not synced" in text and "DKK" in text and "Paid" in text, text
        assert ignored_row.locator("td").nth(1).inner_text().strip()
        page.locator("#history-overview .status-ignored", has_text="1 ignored").wait_for(timeout=45000)

        # From 1024 px the filter bar stays on one row; on a phone it wraps, and nothing scrolls sideways.
        page.set_viewport_size(DESKTOP_MIN)
        assert filter_bar_rows(page) == 1, "the filter bar wraps at 1024 px"
        page.set_viewport_size(NARROW)
        page.reload()
        assert no_sideways_scroll(page), "the history scrolls sideways at 390 px"
        screenshots(page, "history-390")
        page.set_viewport_size(WIDE)

        # Backfill: a refused range keeps the dates entered; a good one fills its bar to the percentage shown.
        page.goto(base + "/history/backfill")
        today = date.fromisoformat(page.locator("input[name=to]").get_attribute("max"))
        page.fill("input[name=from]", today.isoformat())
        page.fill("input[name=to]", (today - timedelta(days=3)).isoformat())
        page.click("button:has-text('Start backfill')")
        assert "The start date is after the end date." in page.locator(".flash-error").inner_text()
        assert page.locator("input[name=from]").input_value() == today.isoformat()
        assert page.locator("input[name=to]").input_value() == (today - timedelta(days=3)).isoformat()
        page.fill("input[name=from]", (today - timedelta(days=3)).isoformat())
        page.fill("input[name=to]", today.isoformat())
        page.click("button:has-text('Start backfill')")
        backfill = page.locator(".backfill").first
        backfill.locator(".status-succeeded").wait_for(timeout=30000)  # done: HTMX swapped the finished fragment in
        bar = backfill.locator("progress")
        words = backfill.locator(".backfill-counts").inner_text()
        percent = int(re.search(r"\((\d+) %\)", words).group(1))
        assert bar.get_attribute("max") == "100" and int(bar.get_attribute("value")) == percent == 100
        listed, to_sync, before, not_synced = (int(n) for n in re.search(
            r"(\d+) invoices? in the range: (\d+) to sync · (\d+) synced before · (\d+) not synced", words).groups())
        assert listed == to_sync + before + not_synced and listed >= 2, words
        screenshots(page, "backfill")
        unexpected = [error for error in page.console_errors if "422" not in error]  # the refused range's answer
        assert not unexpected, unexpected
