import re

from portal import create_app
from portal.extensions import db

from .helpers import login


def test_security_headers_and_a_strict_csp(client):
    response = client.get("/login")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"


def test_forms_post_only_to_the_portal_and_to_economics_grant_page_when_the_app_is_set_up(base_config, client):
    assert "form-action 'self';" in client.get("/login").headers["Content-Security-Policy"] + ";"
    installing = create_app({**base_config, "ECONOMIC_APP_PUBLIC_TOKEN": "public", "ECONOMIC_APP_SECRET_TOKEN": "secret",
                             "ECONOMIC_INSTALL_URL": "https://secure.e-conomic.com/secure/api1/requestaccess.aspx"})
    csp = installing.test_client().get("/login").headers["Content-Security-Policy"]
    assert "form-action 'self' https://secure.e-conomic.com;" in csp + ";"
    with installing.app_context():
        db.engine.dispose()


def test_pages_need_no_inline_script_or_style(client, account):
    login(client, account.email)
    for path in ("/", "/connections", "/login"):
        html = client.get(path).get_data(as_text=True)
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), path
        assert not re.search(r"\son[a-z]+=", html), path
        assert " style=" not in html and "<style" not in html, path


def test_htmx_is_configured_for_the_csp(client):
    html = client.get("/login").get_data(as_text=True)
    assert '"allowEval": false' in html
    assert '"includeIndicatorStyles": false' in html


def test_session_cookie_is_httponly_lax_and_secure_by_default(base_config, migrated_database):
    config = {k: v for k, v in base_config.items() if k != "SESSION_COOKIE_SECURE"}
    app = create_app(config)
    cookie = app.test_client().get("/login").headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" in cookie


def test_assets_are_served_locally(client):
    html = client.get("/login").get_data(as_text=True)
    assert "/static/vendor/htmx-2.0.11.min.js" in html
    assert "/static/vendor/pico-2.1.1.min.css" in html
    assert not re.search(r'(src|href)="(https?:)?//', html)
    asset = client.get("/static/vendor/htmx-2.0.11.min.js")
    assert asset.status_code == 200
    asset.close()


def test_unknown_pages_are_404(client, account):
    login(client, account.email)
    assert client.get("/no-such-page").status_code == 404
