"""Connect e-conomic through e-conomic's own app-install flow, against the fake e-conomic's grant page: the
round trip stores the grant token (encrypted) with the server's App Secret Token and shows the agreement;
a return that was tampered with, replayed, expired, started by someone else or carries no usable token
changes nothing and says why. Pasting tokens is checked with e-conomic first; Disconnect forgets them."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from sqlalchemy import text

from doubles.economic import GRANT_PAGE, FakeEconomic
from portal.auth.services import user_create
from portal.extensions import db
from portal.models import Connection, EconomicInstallState, Merchant, Role, utcnow
from portal.settings.economic_connect import (
    EXPIRED,
    FOREIGN,
    NO_TOKEN,
    NOT_SET_UP,
    NOT_VALID,
    USED,
    InstallRefused,
    economic_install_state_check,
    economic_install_state_create,
    economic_install_state_use,
)

from .helpers import PASSWORD, csrf_token, login

APP_PUBLIC_TOKEN = "pubToken-InvoiceSync-1"
APP_SECRET_TOKEN = "serverAppSecret-0123456789"
CONNECTED = "Connected to e-conomic as Fake ApS (agreement 123456)."
_HIDDEN = re.compile(r"<input type='hidden' name='(\w+)' value='([^']*)'>")


@pytest.fixture
def fake():
    with FakeEconomic(app_secret_token=APP_SECRET_TOKEN, app_public_token=APP_PUBLIC_TOKEN) as fake:
        yield fake


@pytest.fixture
def installable(app, fake):
    """The portal, set up with an app in (the fake) e-conomic."""
    app.config.update(ECONOMIC_API_URL=fake.url, ECONOMIC_INSTALL_URL=fake.url + GRANT_PAGE,
                      ECONOMIC_APP_PUBLIC_TOKEN=APP_PUBLIC_TOKEN, ECONOMIC_APP_SECRET_TOKEN=APP_SECRET_TOKEN)
    return app


@pytest.fixture
def signed_in(client, account):
    assert login(client, account.email).status_code == 302
    return client


def start_install(client) -> str:
    """Press Connect e-conomic: where the portal sends the browser (e-conomic's grant page)."""
    response = client.post("/connections/economic/install", data={"csrf_token": csrf_token(client, "/connections")})
    assert response.status_code == 302
    return response.headers["Location"]


def accept(grant_page_url: str) -> str:
    """Open e-conomic's grant page and press Accept: where e-conomic sends the browser back."""
    page = requests.get(grant_page_url, timeout=10)
    assert page.status_code == 200
    assert "Invoice Sync</strong> wants access to <strong>Fake ApS</strong> (agreement 123456)" in page.text
    fields = {name: html.unescape(value) for name, value in _HIDDEN.findall(page.text)}
    answer = requests.post(urlsplit(grant_page_url)._replace(query="").geturl(), data=fields, allow_redirects=False, timeout=10)
    assert answer.status_code == 302
    return answer.headers["Location"]


def come_back(client, return_url: str) -> str:
    """Follow e-conomic's redirect back into the portal; the Connections page it lands on, as text."""
    parts = urlsplit(return_url)
    response = client.get(f"{parts.path}?{parts.query}")
    assert response.status_code == 302 and response.headers["Location"].endswith("/connections")
    return html.unescape(client.get("/connections").get_data(as_text=True))


def with_query(url: str, **changes: str | None) -> str:
    parts = urlsplit(url)
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    for name, value in changes.items():
        if value is None:
            query.pop(name, None)
        else:
            query[name] = value
    return parts._replace(query="&".join(f"{name}={value}" for name, value in query.items())).geturl()


def words(page: str) -> str:
    """A page's text without its tags, spaces collapsed."""
    return re.sub(r" ([,.)])", r"\1", " ".join(re.sub(r"<[^>]+>", " ", page).split()))


def stored(app, merchant_id: int) -> Connection | None:
    with app.app_context():
        connection = db.session.scalar(db.select(Connection).where(Connection.merchant_id == merchant_id))
        if connection is not None:
            db.session.expunge(connection)
        return connection


def connect_through_the_fake(client) -> str:
    return come_back(client, accept(start_install(client)))


# -- the round trip ------------------------------------------------------------------------------------

def test_connect_round_trip_stores_the_grant_encrypted_and_shows_the_agreement(installable, fake, signed_in, account):
    grant_page = start_install(signed_in)
    parts = urlsplit(grant_page)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == fake.url + GRANT_PAGE
    query = parse_qs(parts.query)
    assert query["appPublicToken"] == [APP_PUBLIC_TOKEN]
    assert query["locale"] == ["en-GB"]
    redirect_url = urlsplit(query["redirectUrl"][0])
    assert f"{redirect_url.scheme}://{redirect_url.netloc}{redirect_url.path}" == "http://localhost/connections/economic/return"
    assert len(parse_qs(redirect_url.query)["state"][0]) >= 40
    assert APP_SECRET_TOKEN not in grant_page

    return_url = accept(grant_page)
    grant = parse_qs(urlsplit(return_url).query)["token"][0]
    assert parse_qs(urlsplit(return_url).query)["state"] == parse_qs(redirect_url.query)["state"]  # e-conomic kept it
    assert grant in fake.grant_tokens and grant != "grant"

    page = come_back(signed_in, return_url)
    assert CONNECTED in page
    assert "Agreement Fake ApS, agreement 123456 Connected today " in words(page)  # a short local time (the `when` filter)
    assert "Last check passed" in words(page)
    assert grant not in page and APP_SECRET_TOKEN not in page
    connection = stored(installable, account.merchant_id)
    assert (connection.economic_agreement_grant_token, connection.economic_app_secret_token) == (grant, APP_SECRET_TOKEN)
    assert (connection.economic_company_name, connection.economic_agreement_number) == ("Fake ApS", 123456)
    assert connection.economic_connected_at is not None and connection.economic_check_ok is True
    with installable.app_context():
        raw = db.session.execute(text("SELECT economic_agreement_grant_token, economic_app_secret_token FROM connections")).one()
        assert all(value.startswith("gAAAAA") for value in raw)  # Fernet: encrypted at rest
        hashes = db.session.scalars(db.select(EconomicInstallState.state_hash)).all()
        assert parse_qs(redirect_url.query)["state"][0] not in hashes  # only the state's hash is kept


def test_the_grant_page_speaks_the_merchants_language(installable, signed_in):
    response = signed_in.post("/connections/economic/install", data={"csrf_token": csrf_token(signed_in, "/connections")},
                              headers={"Accept-Language": "da-DK,da;q=0.9,en;q=0.8"})
    assert parse_qs(urlsplit(response.headers["Location"]).query)["locale"] == ["da-DK"]


def test_an_htmx_press_is_sent_on_with_hx_redirect(installable, fake, signed_in):
    response = signed_in.post("/connections/economic/install",
                              headers={"HX-Request": "true", "X-CSRFToken": csrf_token(signed_in, "/connections")})
    assert response.status_code == 200
    assert response.headers["HX-Redirect"].startswith(fake.url + GRANT_PAGE + "?")


def test_the_return_needs_a_signed_in_user(installable, client, account):
    response = client.get("/connections/economic/return?state=abc&token=def")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


# -- returns that change nothing -----------------------------------------------------------------------

def test_a_replayed_return_is_refused_and_changes_nothing(installable, fake, signed_in, account):
    return_url = accept(start_install(signed_in))
    assert CONNECTED in come_back(signed_in, return_url)
    before = stored(installable, account.merchant_id)

    other_grant = fake.grant()  # even with a token e-conomic would take
    page = come_back(signed_in, with_query(return_url, token=other_grant))
    assert USED in page
    after = stored(installable, account.merchant_id)
    assert after.economic_agreement_grant_token == before.economic_agreement_grant_token
    assert after.economic_connected_at == before.economic_connected_at


def test_a_return_in_another_merchants_session_is_refused(installable, app, signed_in, account, other_account):
    return_url = accept(start_install(signed_in))
    intruder = app.test_client()
    login(intruder, other_account.email)
    page = come_back(intruder, return_url)
    assert FOREIGN in page
    assert stored(installable, other_account.merchant_id) is None or not stored(installable, other_account.merchant_id).economic_agreement_grant_token
    assert stored(installable, account.merchant_id) is None
    # The merchant who started it can still finish.
    assert CONNECTED in come_back(signed_in, return_url)


def test_a_return_for_another_user_of_the_same_merchant_is_refused(installable, app, signed_in, account):
    with app.app_context():
        user_create(db.session.get(Merchant, account.merchant_id), "colleague@acme.test", PASSWORD, role=Role.ADMIN)
        db.session.commit()
    return_url = accept(start_install(signed_in))
    colleague = app.test_client()
    assert login(colleague, "colleague@acme.test").status_code == 302
    assert FOREIGN in come_back(colleague, return_url)
    assert stored(installable, account.merchant_id) is None


@pytest.mark.parametrize("tamper", ["changed", "missing", "empty"])
def test_a_tampered_state_is_refused_and_changes_nothing(installable, signed_in, account, tamper):
    return_url = accept(start_install(signed_in))
    state = parse_qs(urlsplit(return_url).query)["state"][0]
    new_state = {"changed": state[:-2] + ("AA" if not state.endswith("AA") else "BB"), "missing": None, "empty": ""}[tamper]
    page = come_back(signed_in, with_query(return_url, state=new_state))
    assert NOT_VALID in page
    assert stored(installable, account.merchant_id) is None


def test_an_expired_state_is_refused(installable, signed_in, account):
    return_url = accept(start_install(signed_in))
    with installable.app_context():
        db.session.execute(db.update(EconomicInstallState).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    assert EXPIRED in come_back(signed_in, return_url)
    assert stored(installable, account.merchant_id) is None


def test_a_return_without_a_token_is_refused(installable, signed_in, account):
    return_url = accept(start_install(signed_in))
    assert NO_TOKEN in come_back(signed_in, with_query(return_url, token=None))
    assert NO_TOKEN in come_back(signed_in, with_query(return_url, token=""))
    assert stored(installable, account.merchant_id) is None


def test_a_token_e_conomic_refuses_stores_nothing_and_says_why(installable, fake, signed_in, account):
    return_url = accept(start_install(signed_in))
    fake.revoke_grant(parse_qs(urlsplit(return_url).query)["token"][0])  # e.g. the app was removed meanwhile
    page = come_back(signed_in, return_url)
    assert "e-conomic did not accept the tokens, so nothing was stored." in page
    assert "e-conomic answered 401: The app secret token or the agreement grant token is not valid." in page
    assert stored(installable, account.merchant_id) is None


def test_two_returns_racing_with_one_state_let_only_one_through(installable, account):
    with installable.app_context():
        state = economic_install_state_create(account.merchant_id, account.user_id)
        db.session.commit()
        first = economic_install_state_check(state, account.merchant_id, account.user_id)
        second = economic_install_state_check(state, account.merchant_id, account.user_id)  # read before either spent it
        economic_install_state_use(first)
        with pytest.raises(InstallRefused) as refused:
            economic_install_state_use(second)
        assert str(refused.value) == USED


# -- pasting tokens, no app configured, disconnecting --------------------------------------------------

def paste(client, **tokens):
    return client.post("/connections/economic/tokens", data={"csrf_token": csrf_token(client, "/connections"), **tokens})


def test_pasted_tokens_are_checked_with_e_conomic_before_they_are_stored(installable, fake, signed_in, account):
    response = paste(signed_in, economic_app_secret_token=APP_SECRET_TOKEN, economic_agreement_grant_token="wrong-grant")
    assert response.status_code == 302
    page = html.unescape(signed_in.get("/connections").get_data(as_text=True))
    assert "e-conomic did not accept the tokens, so nothing was stored. e-conomic answered 401" in page
    assert stored(installable, account.merchant_id) is None

    paste(signed_in, economic_app_secret_token=APP_SECRET_TOKEN, economic_agreement_grant_token="grant")
    page = html.unescape(signed_in.get("/connections").get_data(as_text=True))
    assert CONNECTED in page
    connection = stored(installable, account.merchant_id)
    assert (connection.economic_app_secret_token, connection.economic_agreement_grant_token) == (APP_SECRET_TOKEN, "grant")
    assert connection.economic_agreement_number == 123456


def test_a_malformed_pasted_token_is_refused_before_asking_e_conomic(installable, fake, signed_in, account):
    calls = len(fake.requests)
    paste(signed_in, economic_app_secret_token="has spaces in it", economic_agreement_grant_token="grant")
    page = html.unescape(signed_in.get("/connections").get_data(as_text=True))
    assert "e-conomic App Secret Token: Tokens contain no spaces. Nothing was stored." in page
    assert len(fake.requests) == calls
    assert stored(installable, account.merchant_id) is None


def test_without_app_tokens_there_is_no_connect_button_and_pasting_is_the_way(app, fake, signed_in, account):
    app.config.update(ECONOMIC_API_URL=fake.url, ECONOMIC_APP_PUBLIC_TOKEN="", ECONOMIC_APP_SECRET_TOKEN="")
    page = signed_in.get("/connections").get_data(as_text=True)
    assert "Connect e-conomic" not in page and "/connections/economic/install" not in page
    assert "Paste tokens instead" not in page  # not tucked away: the only way
    assert 'id="economic_agreement_grant_token"' in page
    response = signed_in.post("/connections/economic/install", data={"csrf_token": csrf_token(signed_in, "/connections")})
    assert response.status_code == 302 and response.headers["Location"].endswith("/connections")
    assert NOT_SET_UP in html.unescape(signed_in.get("/connections").get_data(as_text=True))
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count(EconomicInstallState.id))) == 0
    # Pasting the fake's own tokens connects.
    paste(signed_in, economic_app_secret_token=APP_SECRET_TOKEN, economic_agreement_grant_token="grant")
    assert CONNECTED in html.unescape(signed_in.get("/connections").get_data(as_text=True))


def test_with_app_tokens_the_page_offers_connect_and_tucks_pasting_away(installable, signed_in):
    page = html.unescape(signed_in.get("/connections").get_data(as_text=True))
    assert "Agreement not connected" in words(page)
    assert ">Connect e-conomic</button>" in page
    assert "<summary>Paste tokens instead</summary>" in page
    assert "Disconnect e-conomic" not in page


def test_disconnect_removes_the_tokens_and_the_agreement(installable, signed_in, account):
    connect_through_the_fake(signed_in)
    signed_in.post("/connections/economic/disconnect", data={"csrf_token": csrf_token(signed_in, "/connections")})
    page = html.unescape(signed_in.get("/connections").get_data(as_text=True))
    assert "Disconnected from e-conomic" in page and "Agreement not connected" in words(page)
    connection = stored(installable, account.merchant_id)
    assert connection.economic_app_secret_token is None and connection.economic_agreement_grant_token is None
    assert connection.economic_company_name is None and connection.economic_agreement_number is None


def test_test_connection_records_the_connections_live_state(installable, fake, signed_in, account):
    connect_through_the_fake(signed_in)
    fake.revoke_grant(stored(installable, account.merchant_id).economic_agreement_grant_token)
    answer = signed_in.post("/connections/test/economic",
                            headers={"HX-Request": "true", "X-CSRFToken": csrf_token(signed_in, "/connections")})
    assert "e-conomic answered 401" in answer.get_data(as_text=True)
    connection = stored(installable, account.merchant_id)
    assert connection.economic_check_ok is False and "401" in connection.economic_check_message
    page = words(html.unescape(signed_in.get("/connections").get_data(as_text=True)))
    assert "Last check failed" in page and "e-conomic answered 401" in page


# -- the fake's grant page -----------------------------------------------------------------------------

def test_the_fakes_grant_page_refuses_an_unknown_app(fake):
    page = requests.get(fake.url + GRANT_PAGE, params={"appPublicToken": "someone-else", "redirectUrl": "https://x.test/back"},
                        timeout=10)
    assert page.status_code == 404 and "The app was not found" in page.text
    answer = requests.post(fake.url + GRANT_PAGE, data={"appPublicToken": "someone-else", "redirectUrl": "https://x.test/back"},
                           allow_redirects=False, timeout=10)
    assert answer.status_code == 404 and fake.grant_tokens == {"grant"}


def test_the_fakes_grant_page_appends_the_token_to_the_redirect_urls_own_query(fake):
    answer = requests.post(fake.url + GRANT_PAGE, data={"appPublicToken": APP_PUBLIC_TOKEN,
                                                        "redirectUrl": "https://portal.test/back?state=s1"},
                           allow_redirects=False, timeout=10)
    location = urlsplit(answer.headers["Location"])
    assert (location.netloc, location.path) == ("portal.test", "/back")
    query = parse_qs(location.query)
    assert query["state"] == ["s1"] and query["token"][0] in fake.grant_tokens
    me = requests.get(fake.url + "/self", headers={"X-AppSecretToken": APP_SECRET_TOKEN,
                                                   "X-AgreementGrantToken": query["token"][0]}, timeout=10)
    assert me.status_code == 200 and me.json()["agreementNumber"] == 123456
