"""Sessions the server can end (sign-out, sign out everywhere, a new password, idle and absolute
timeouts) and sign-in limits that hold under concurrency and without Redis."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from portal import create_app
from portal.auth import services
from portal.auth.limits import counted_address
from portal.extensions import db
from portal.queue import redis_connection

from .helpers import PASSWORD, csrf_token, login

NEW_PASSWORD = "a completely new passphrase"
OFFLINE_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1


def signed_in(client) -> bool:
    return client.get("/").status_code == 200


def copy_session(source, target) -> None:
    target.set_cookie("session", source.get_cookie("session").value)


def sign_out(client, path: str = "/logout"):
    return client.post(path, data={"csrf_token": csrf_token(client, "/account")}, follow_redirects=True)


def change_password(client, current: str, new: str, again: str | None = None):
    token = csrf_token(client, "/account")
    data = {"current_password": current, "new_password": new, "new_password_again": new if again is None else again,
            "csrf_token": token}
    return client.post("/account", data=data)


def move_session_clock(client, **seconds_back: int) -> None:
    with client.session_transaction() as session:
        for key, back in seconds_back.items():
            session[key] -= back


@pytest.fixture
def offline_app(base_config, migrated_database):
    """The app as a web process sees it with Redis stopped. (Flask-Limiter's storage is left as it is: the
    extension is one object, bound to the app made last, and the `app` fixture resets it afterwards.)"""
    app = create_app({**base_config, "REDIS_URL": OFFLINE_REDIS})
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


# Sessions ---------------------------------------------------------------------------------------------


def test_a_copied_session_cookie_stops_working_after_sign_out(app, account):
    browser, thief = app.test_client(), app.test_client()
    login(browser, account.email)
    assert signed_in(browser)
    copy_session(browser, thief)
    assert signed_in(thief)  # a copied cookie works while the session lives
    page = sign_out(browser).get_data(as_text=True)
    assert "You are signed out." in page
    assert not signed_in(thief)
    assert not signed_in(browser)


def test_a_session_cookie_kept_from_before_sign_out_cannot_be_replayed(app, account):
    client = app.test_client()
    login(client, account.email)
    signed_in(client)
    kept = client.get_cookie("session").value
    sign_out(client)
    client.set_cookie("session", kept)
    response = client.get("/connections")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login?next=")


def test_after_a_password_change_other_sessions_end_and_this_one_stays(app, account):
    laptop, phone = app.test_client(), app.test_client()
    login(laptop, account.email)
    login(phone, account.email)
    assert signed_in(laptop) and signed_in(phone)

    response = change_password(laptop, PASSWORD, NEW_PASSWORD)
    assert response.status_code == 302
    page = laptop.get(response.headers["Location"]).get_data(as_text=True)
    assert "Your password is changed. Your other sessions are signed out." in page
    assert signed_in(laptop)

    response = phone.get("/connections", follow_redirects=True)
    assert response.request.path == "/login"
    assert "You were signed out: this session was ended" in response.get_data(as_text=True)
    assert "Please sign in to continue." not in response.get_data(as_text=True)

    assert login(app.test_client(), account.email, PASSWORD).status_code == 200  # the old password is refused
    assert login(app.test_client(), account.email, NEW_PASSWORD).status_code == 302


@pytest.mark.parametrize(
    "current, new, again, error",
    [
        ("not my password!", NEW_PASSWORD, None, "The current password is not right."),
        (PASSWORD, NEW_PASSWORD, "a different new passphrase", "The two new passwords are not the same."),
        (PASSWORD, "short", None, "Passwords need at least 12 characters."),
    ],
)
def test_a_password_change_needs_the_current_password_and_a_new_one_typed_twice(app, client, account, current, new, again, error):
    login(client, account.email)
    response = change_password(client, current, new, again)
    assert response.status_code == 200
    assert error in response.get_data(as_text=True)
    assert signed_in(client)
    assert login(app.test_client(), account.email, PASSWORD).status_code == 302  # unchanged


def test_sign_out_everywhere_ends_every_session(app, account):
    laptop, phone = app.test_client(), app.test_client()
    login(laptop, account.email)
    login(phone, account.email)
    page = laptop.get("/account").get_data(as_text=True)
    assert "Sign out everywhere" in page
    page = sign_out(laptop, "/account/sign-out-everywhere").get_data(as_text=True)
    assert "You are signed out everywhere" in page
    assert not signed_in(laptop)
    assert not signed_in(phone)
    assert login(phone, account.email).status_code == 302  # signing in again works
    assert signed_in(phone)


def test_a_password_reset_from_the_command_line_ends_the_users_sessions(app, client, account):
    login(client, account.email)
    assert signed_in(client)
    result = app.test_cli_runner().invoke(args=["user", "reset-password", account.email, "--password", NEW_PASSWORD])
    assert result.exit_code == 0, result.output
    assert "their sessions are signed out" in result.output
    assert not signed_in(client)


def test_an_idle_session_ends_and_the_sign_in_page_says_why(client, account):
    login(client, account.email)
    move_session_clock(client, seen_at=59 * 60, signed_in_at=59 * 60)
    assert signed_in(client)  # 59 minutes idle: still signed in (and seen now)
    move_session_clock(client, seen_at=60 * 60)
    response = client.get("/connections")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login?next=")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "You were signed out after 60 minutes without activity." in page
    assert "Please sign in to continue." not in page
    assert not signed_in(client)


def test_a_polling_fragment_of_an_ended_session_sends_the_whole_page_to_sign_in(client, account):
    login(client, account.email)
    move_session_clock(client, seen_at=61 * 60)
    response = client.get("/history/rows", headers={"HX-Request": "true", "HX-Current-URL": "http://localhost/history?status=failed"})
    assert response.status_code == 200 and response.get_data(as_text=True) == ""  # nothing swapped into the page
    assert response.headers["HX-Redirect"] == "/login?next=%2Fhistory%3Fstatus%3Dfailed"
    page = client.get(response.headers["HX-Redirect"]).get_data(as_text=True)
    assert "You were signed out after 60 minutes without activity." in page


def test_the_idle_timeout_is_configuration(app, client, account):
    app.config["SESSION_IDLE_MINUTES"] = 5
    login(client, account.email)
    move_session_clock(client, seen_at=5 * 60 + 1)
    page = client.get("/", follow_redirects=True).get_data(as_text=True)
    assert "You were signed out after 5 minutes without activity." in page


def test_a_session_ends_hours_after_sign_in_however_active(app, client, account):
    login(client, account.email)
    move_session_clock(client, signed_in_at=12 * 3600 - 60)
    assert signed_in(client)
    move_session_clock(client, signed_in_at=60)  # 12 hours since sign-in, seen a moment ago
    page = client.get("/", follow_redirects=True).get_data(as_text=True)
    assert "You were signed out 12 hours after signing in. Please sign in again." in page
    assert not signed_in(client)
    app.config["SESSION_MAX_HOURS"] = 1
    login(client, account.email)
    move_session_clock(client, signed_in_at=3600)
    assert "1 hour after signing in" in client.get("/", follow_redirects=True).get_data(as_text=True)


def test_last_seen_is_written_at_most_once_a_minute(client, account):
    login(client, account.email)
    client.get("/")  # the first page after signing in stores its form token
    assert "Set-Cookie" not in client.get("/").headers  # the cookie is not rewritten on every request
    assert "Set-Cookie" not in client.get("/connections").headers
    move_session_clock(client, seen_at=90)
    assert "Set-Cookie" in client.get("/").headers
    with client.session_transaction() as session:
        assert abs(session["seen_at"] - time.time()) < 5
    assert "Set-Cookie" not in client.get("/").headers


def test_a_session_from_before_session_versions_signs_in_again(client, account):
    login(client, account.email)
    with client.session_transaction() as session:
        del session["session_version"]
    assert not signed_in(client)


# Sign-in limits ---------------------------------------------------------------------------------------


def count_password_checks(monkeypatch) -> list:
    """Each check of a real user's password, as it happens (thread-safe: list.append)."""
    checks = []
    verify = services.verify_password

    def counted(password_hash, password):
        checks.append(password)
        return verify(password_hash, password)

    monkeypatch.setattr(services, "verify_password", counted)
    return checks


@pytest.mark.parametrize("redis", ["up", "down"])
def test_concurrent_wrong_passwords_get_no_more_checks_than_the_limit(request, monkeypatch, account, redis):
    app = request.getfixturevalue("app" if redis == "up" else "offline_app")
    checks = count_password_checks(monkeypatch)
    clients = [app.test_client() for _ in range(20)]
    tokens = [csrf_token(client) for client in clients]
    start = threading.Barrier(len(clients))
    answers = [None] * len(clients)

    def guess(n):
        start.wait()
        response = clients[n].post("/login", data={"email": account.email, "password": f"wrong guess {n}", "csrf_token": tokens[n]})
        answers[n] = (response.status_code, response.get_data(as_text=True))

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert len(checks) <= 5
    refused = [body for status, body in answers if status == 429]
    tried = [body for status, body in answers if status == 200]
    assert len(tried) == len(checks) and len(refused) == 20 - len(checks)
    assert all("Invalid e-mail or password." in body for body in tried)
    assert all("Too many attempts. Try again in 15 minutes." in body for body in refused)
    assert len(checks) == 5  # the counter is exact: exactly the limit got through


def test_a_right_password_gives_its_attempt_back(app, client, account, monkeypatch):
    for _ in range(3):
        assert login(client, account.email, "wrong password!").status_code == 200
    assert login(client, account.email).status_code == 302
    sign_out(client)
    checks = count_password_checks(monkeypatch)
    # Still 3 counted: two more wrong ones are checked, and then the sixth attempt is refused.
    assert login(client, account.email, "wrong password!").status_code == 200
    assert login(client, account.email, "wrong password!").status_code == 200
    assert login(client, account.email).status_code == 429
    assert len(checks) == 2


def test_the_lockout_says_how_many_minutes_are_left(app, client, account):
    for _ in range(5):
        login(client, account.email, "wrong password!")
    redis = redis_connection(app)
    keys = list(redis.scan_iter(match=f"{app.config['REDIS_KEY_PREFIX']}:signin:account:*"))
    assert len(keys) == 1 and account.email not in keys[0].decode()  # no e-mail addresses in Redis
    redis.pexpire(keys[0], 11 * 60 * 1000 + 5000)  # 11 min 5 s left: "12 minutes"
    body = login(client, account.email).get_data(as_text=True)
    assert "Too many attempts. Try again in 12 minutes." in body
    assert " per " not in body
    redis.pexpire(keys[0], 20 * 1000)
    assert "Too many attempts. Try again in 1 minute." in login(client, account.email).get_data(as_text=True)
    redis.delete(keys[0])
    assert login(client, account.email).status_code == 302  # the window over, the right password works


def test_someone_elsewhere_cannot_lock_the_owner_out(app, account):
    attacker, owner = app.test_client(), app.test_client()
    attacker.environ_base["REMOTE_ADDR"] = "203.0.113.9"
    owner.environ_base["REMOTE_ADDR"] = "198.51.100.7"
    for _ in range(5):
        login(attacker, account.email, "wrong password!")
    assert login(attacker, account.email).status_code == 429
    assert login(owner, account.email).status_code == 302


def test_one_address_guessing_at_many_accounts_is_stopped(app, account):
    app.config["SIGNIN_ATTEMPTS_PER_ADDRESS"] = 4
    for n in range(4):
        assert login(app.test_client(), f"guess{n}@acme.test", "wrong password!").status_code == 200
    response = login(app.test_client(), account.email)
    assert response.status_code == 429
    assert "Too many attempts. Try again in 15 minutes." in response.get_data(as_text=True)


def test_ipv6_clients_are_counted_by_their_64():
    assert counted_address("2001:db8:1:2:aaaa::1") == counted_address("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert counted_address("2001:db8:1:3::1") != counted_address("2001:db8:1:2::1")
    assert counted_address("::ffff:203.0.113.9") == counted_address("203.0.113.9") == "203.0.113.9"
    assert counted_address(None) == "unknown"


def test_guessing_the_current_password_on_the_account_page_is_limited(client, account, monkeypatch):
    login(client, account.email)
    checks = count_password_checks(monkeypatch)
    for _ in range(5):
        assert "The current password is not right." in change_password(client, "wrong password!", NEW_PASSWORD).get_data(as_text=True)
    response = change_password(client, PASSWORD, NEW_PASSWORD)
    assert response.status_code == 429
    assert "Too many attempts. Try again in 15 minutes." in response.get_data(as_text=True)
    assert len(checks) == 5
    assert signed_in(client)


def test_with_redis_stopped_sign_in_works_with_limits_in_memory(offline_app, account, caplog):
    client = offline_app.test_client()
    with caplog.at_level(logging.WARNING, logger="portal.auth.limits"):
        assert login(client, account.email).status_code == 302
    assert signed_in(client)
    assert any("counted in this process's memory" in record.getMessage() and "Redis is unreachable" in record.getMessage()
               for record in caplog.records)
    sign_out(client)
    for _ in range(5):
        assert login(client, account.email, "wrong password!").status_code == 200
    response = login(client, account.email)
    assert response.status_code == 429  # the same rules, kept in memory
    assert "Too many attempts. Try again in 15 minutes." in response.get_data(as_text=True)
