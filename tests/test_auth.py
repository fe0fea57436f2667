from urllib.parse import quote

import pytest
from argon2 import PasswordHasher

from portal import create_app
from portal.extensions import db
from portal.models import User

from .helpers import PASSWORD, csrf_token, login


def test_login_lands_on_the_merchants_start_page(client, account):
    response = login(client, account.email)
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    page = client.get("/").get_data(as_text=True)
    assert account.merchant_name in page
    assert "Getting set up" in page


def test_pages_need_a_login(client):
    response = client.get("/connections")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


@pytest.mark.parametrize("email, password", [("owner@acme.test", "wrong password!"), ("nobody@acme.test", PASSWORD)])
def test_login_errors_do_not_say_which_part_was_wrong(client, account, email, password):
    response = login(client, email, password)
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Invalid e-mail or password." in body
    assert "unknown" not in body.lower()
    assert client.get("/").status_code == 302  # still signed out


def test_email_is_matched_without_regard_to_case_or_spaces(client, account):
    assert login(client, "  Owner@ACME.test ").status_code == 302


def test_passwords_are_hashed_with_argon2id(app, account):
    with app.app_context():
        stored = db.session.get(User, account.user_id).password_hash
    assert stored.startswith("$argon2id$")
    assert "m=19456,t=2,p=1" in stored
    assert PASSWORD not in stored


def test_password_is_rehashed_on_login_when_the_parameters_change(app, client, account):
    app.config["ARGON2_TIME_COST"] = 3
    assert login(client, account.email).status_code == 302
    with app.app_context():
        stored = db.session.get(User, account.user_id).password_hash
    assert "m=19456,t=3,p=1" in stored
    assert PasswordHasher().verify(stored, PASSWORD)


def test_repeated_failed_logins_lock_the_account_for_a_while(client, account):
    for _ in range(5):
        assert login(client, account.email, "wrong password!").status_code == 200
    response = login(client, account.email)  # even the right password waits now
    assert response.status_code == 429
    assert "Too many attempts. Try again in 15 minutes." in response.get_data(as_text=True)
    assert client.get("/").status_code == 302  # not signed in


def test_the_account_limit_is_per_account(client, account, other_account):
    for _ in range(5):
        login(client, account.email, "wrong password!")
    assert login(client, other_account.email).status_code == 302


def test_repeated_failed_logins_from_one_address_are_limited(app, client, account):
    app.config["SIGNIN_ATTEMPTS_PER_ADDRESS"] = 3
    for n in range(3):
        assert login(client, f"guess{n}@acme.test", "wrong password!").status_code == 200
    assert login(client, account.email).status_code == 429


def test_successful_logins_do_not_count_towards_the_limit(client, account):
    for _ in range(7):
        assert login(client, account.email).status_code == 302
        client.post("/logout", data={"csrf_token": csrf_token(client, "/")})


def test_limits_are_shared_through_redis(app, account, base_config):
    """Two web processes share the counters: they are kept in the configured Redis, not in memory."""
    other_process = create_app(dict(base_config))
    for _ in range(5):
        login(app.test_client(), account.email, "wrong password!")
    assert login(other_process.test_client(), account.email).status_code == 429
    with other_process.app_context():
        db.session.remove()
        db.engine.dispose()


def test_next_redirects_within_the_site(client, account):
    response = login(client, account.email, next_url=quote("/connections?tab=1"))
    assert response.headers["Location"] == "/connections?tab=1"


@pytest.mark.parametrize(
    "target",
    ["https://evil.example/", "//evil.example/", "/\\evil.example", "javascript:alert(1)", "http:/evil.example", " //evil.example", "/\t/evil.example"],
)
def test_next_never_leaves_the_site(client, account, target):
    response = login(client, account.email, next_url=quote(target, safe=""))
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


def test_logout_needs_a_post_with_a_csrf_token(client, account):
    login(client, account.email)
    assert client.get("/logout").status_code == 405
    assert client.post("/logout").status_code == 400
    assert client.get("/").status_code == 200  # still signed in
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    assert client.get("/").status_code == 302


def test_login_without_csrf_token_is_refused(client, account):
    response = client.post("/login", data={"email": account.email, "password": PASSWORD})
    assert response.status_code == 400
    assert "security token" in response.get_data(as_text=True)
    assert client.get("/").status_code == 302
