"""The team in a real browser: the owner invites a member, the member opens the link in a fresh browser,
chooses a password and sees the history but no settings; a settings page answers with the admins-only
page. Neither page scrolls sideways at 1280 px nor at 390 px."""

import pytest

from ..live import running_portal
from .helpers import no_sideways_scroll, open_account_menu, sign_in

pytestmark = pytest.mark.browser

OWNER = "owner@team.test"
PASSWORD = "a long browser test password"
MEMBER = "member@team.test"
MEMBER_PASSWORD = "the member's own passphrase"
WIDE, NARROW = {"width": 1280, "height": 900}, {"width": 390, "height": 844}


@pytest.fixture
def portal(tmp_path):
    env = {"PORTAL_ADMIN_EMAIL": OWNER, "PORTAL_ADMIN_PASSWORD": PASSWORD, "PORTAL_MERCHANT_NAME": "Team Shop ApS"}
    with running_portal(tmp_path, env) as running:
        yield running


def test_invite_a_member_who_sees_the_history_but_no_settings(portal, page, browser, screenshots):
    shoot = screenshots
    sign_in(page, portal.base_url, OWNER, PASSWORD)
    open_account_menu(page)
    page.click("header nav a:text-is('Team')")
    page.fill("#email", MEMBER)
    page.check("input[name=role][value=member]")
    page.click("input[value='Make an invitation link']")
    link = page.input_value("#invitation-link")
    assert link.startswith(portal.base_url + "/invite/")
    shoot(page, "invitation-link")
    for size in (WIDE, NARROW):
        page.set_viewport_size(size)
        page.goto(portal.base_url + "/team")
        assert no_sideways_scroll(page), size
        assert MEMBER in page.content()
    shoot(page, "team-narrow")

    context = browser.new_context(viewport=WIDE)  # the invitee: another browser, nobody signed in
    invitee = context.new_page()
    try:
        invitee.goto(link)
        assert "Join Team Shop ApS" in invitee.locator("article header").inner_text()
        invitee.fill("#password", MEMBER_PASSWORD)
        invitee.fill("#password_again", MEMBER_PASSWORD)
        invitee.click("input[value=Join]")
        invitee.wait_for_url(portal.base_url + "/")
        nav = invitee.locator("header nav")
        assert nav.locator("text=Sync history").count() == 1
        for label in ("Rules & mappings", "Connections", "Team"):
            assert nav.locator(f"a:text-is('{label}')").count() == 0, label
        invitee.click("nav >> text=Sync history")
        assert invitee.locator("h1").inner_text() == "Sync history"
        shoot(invitee, "member-history")

        response = invitee.goto(portal.base_url + "/rules")
        assert response.status == 403
        assert invitee.locator("h1").inner_text() == "Admins only"
        assert OWNER in invitee.locator("article").inner_text()
        for size in (WIDE, NARROW):
            invitee.set_viewport_size(size)
            invitee.goto(portal.base_url + "/rules")
            assert no_sideways_scroll(invitee), size
        shoot(invitee, "admins-only-narrow")

        used = invitee.goto(link)  # the link worked once
        assert used.status == 410
    finally:
        context.close()
    assert page.console_errors == []
