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
    """How many rows the history's filter bar takes (its visible controls' distinct vertical centres)."""
    return page.evaluate("""() => {
        const controls = [...document.querySelectorAll('form.filters[role=search] > *')].filter(el => el.offsetParent !== null);
        const tops = [];
        for (const el of controls) {
            const box = el.getBoundingClientRect();
            if (!tops.some(top => Math.abs(top - (box.top + box.height / 2)) < box.height / 2)) tops.push(box.top + box.height / 2);
        }
        return tops.length;
    }""")
