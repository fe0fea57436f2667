"""What the browser tests do alike."""


def sign_in(page, base_url: str, email: str, password: str) -> None:
    """Sign in through the login form and wait for the home page."""
    page.goto(base_url + "/login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("input[type=submit]")
    page.wait_for_url(base_url + "/")


def open_account_menu(page) -> None:
    """Open the header's account menu (the e-mail at the top right), which holds Team, Account and Sign out."""
    if not page.locator("header details.account-menu[open]").count():
        page.click("header .account-menu summary")


def no_sideways_scroll(page) -> bool:
    """The page does not scroll sideways (wide tables scroll inside their own box)."""
    return page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")


def filter_bar_rows(page) -> int:
    """How many rows the history's filter bar and its actions (Download CSV, Sync past invoices, Payouts) take:
    the distinct vertical centres of their visible controls, not counting the title's row (where the actions
    may sit, beside the title)."""
    return page.evaluate("""() => {
        const controls = [...document.querySelectorAll('form.filters[role=search] > *, .history-actions > *')]
            .filter(el => el.offsetParent !== null);
        const title = document.querySelector('main h1').getBoundingClientRect();
        const tops = [];
        for (const el of controls) {
            const box = el.getBoundingClientRect(), middle = box.top + box.height / 2;
            if (middle > title.top && middle < title.bottom) continue;
            if (!tops.some(top => Math.abs(top - middle) < box.height / 2)) tops.push(middle);
        }
        return tops.length;
    }""")


def history_actions(page) -> list[str]:
    """The history's actions beside its title or filter bar, as their visible words."""
    return [text.strip() for text in page.locator(".history-actions > *:visible").all_inner_texts()]
