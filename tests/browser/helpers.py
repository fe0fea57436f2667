"""What the browser tests do alike."""


def sign_in(page, base_url: str, email: str, password: str) -> None:
    """Sign in through the login form and wait for the home page."""
    page.goto(base_url + "/login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("input[type=submit]")
    page.wait_for_url(base_url + "/")
