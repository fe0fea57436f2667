"""Invoice Sync: copies Stripe invoices into e-conomic. `create_app()` builds the web app."""

from __future__ import annotations

import os
import time
from pathlib import Path
from urllib.parse import urlsplit

from flask import Flask, jsonify, render_template, request
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from werkzeug.middleware.proxy_fix import ProxyFix

from .config import load_config
from .crypto import SecretBox
from .extensions import INTAKE_ENGINE, csrf, db, intake_engine_bind, login_manager, migrate, talisman

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# No inline script or style, no eval: HTMX is configured for this in templates/base.html.
CONTENT_SECURITY_POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "connect-src": "'self'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
    "base-uri": "'self'",
    "object-src": "'none'",
}

# The portal's main navigation, grouped by task and in the order merchants set things up: each item is
# (endpoint, label, the endpoint prefixes of its screens). Rules & mappings holds the rules, field mappings and
# journal entries, switched between by the tabs on those pages (templates/settings/_tabs.html).
NAVIGATION = (
    ("settings.connections", "Connections", ("settings.connections", "settings.economic_")),
    ("settings.rules", "Rules & mappings", ("settings.rules", "settings.mapping", "settings.journals")),
    ("settings.customer_product", "Customer & product settings", ("settings.customer_product",)),
    ("history.index", "Sync history", ("history.",)),
)


def _content_security_policy(config) -> dict[str, str]:
    """The policy, letting the Connect e-conomic form go to e-conomic's grant page when the server has the
    app's tokens (without it, a browser blocks the redirect there after the form's POST)."""
    policy = dict(CONTENT_SECURITY_POLICY)
    if config["ECONOMIC_APP_PUBLIC_TOKEN"] and config["ECONOMIC_INSTALL_URL"]:
        install = urlsplit(config["ECONOMIC_INSTALL_URL"])
        policy["form-action"] += f" {install.scheme}://{install.netloc}"
    return policy


def create_app(test_config: dict | None = None) -> Flask:
    instance_path = os.environ.get("INSTANCE_PATH") or str(PROJECT_ROOT / "instance")
    app = Flask(
        __name__,
        instance_path=os.path.abspath(instance_path),
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder=str(PROJECT_ROOT / "static"),
    )
    os.makedirs(app.instance_path, exist_ok=True)
    app.config.update(load_config(app.instance_path))
    if test_config:
        app.config.update(test_config)

    app.extensions["secret_box"] = SecretBox(app.config["ENCRYPTION_KEYS"])
    if app.config["TRUSTED_PROXIES"]:
        hops = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)

    app.config["SQLALCHEMY_BINDS"] = {**app.config.get("SQLALCHEMY_BINDS", {}),
                                      INTAKE_ENGINE: intake_engine_bind(app.config["SQLALCHEMY_DATABASE_URI"])}
    db.init_app(app)
    _ping_connections_left_idle(app)
    _tune_sqlite(app)
    migrate.init_app(app, db, directory=str(PROJECT_ROOT / "migrations"), render_as_batch=True)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please sign in to continue."
    login_manager.login_message_category = "info"
    csrf.init_app(app)
    talisman.init_app(
        app,
        force_https=app.config["FORCE_HTTPS"],
        strict_transport_security=app.config["FORCE_HTTPS"],
        session_cookie_secure=app.config["SESSION_COOKIE_SECURE"],
        session_cookie_http_only=True,
        content_security_policy=_content_security_policy(app.config),
        frame_options="DENY",
        referrer_policy="same-origin",
    )

    from . import models  # noqa: F401  (so migrations and `db` see every table)
    from .audit import audit_listen
    from .auth import bp as auth_bp
    from .auth.access import ADMIN, ENDPOINT_ACCESS, access_init
    from .auth.cli import merchant_cli, user_cli
    from .cli import runs_cli, secrets_cli
    from .history import bp as history_bp
    from .main import bp as main_bp
    from .settings import bp as settings_bp
    from .team import bp as team_bp
    from .webhooks import bp as webhooks_bp

    app.register_blueprint(auth_bp)
    app.register_blueprint(main_bp)
    app.register_blueprint(settings_bp)
    app.register_blueprint(webhooks_bp)
    app.register_blueprint(history_bp)
    app.register_blueprint(team_bp)
    if app.config["DEMO_STRIPE_CONTROL_URL"]:
        from .demo_routes import bp as demo_bp

        app.register_blueprint(demo_bp)
    app.cli.add_command(merchant_cli)
    app.cli.add_command(user_cli)
    app.cli.add_command(secrets_cli)
    app.cli.add_command(runs_cli)

    access_init(app)  # every endpoint classified public, member or admin, checked before each request
    audit_listen()
    _register_error_pages(app)
    from . import templating

    templating.register(app)

    @app.context_processor
    def navigation():
        admin = current_user.is_authenticated and current_user.is_admin
        here = request.endpoint or ""
        items = [(endpoint, label, "page" if here == endpoint else "true" if here.startswith(screens) else None)
                 for endpoint, label, screens in NAVIGATION
                 if endpoint in app.view_functions and (admin or ENDPOINT_ACCESS.get(endpoint) is not ADMIN)]
        return {"navigation": items, "is_admin": admin}

    return app


def _ping_connections_left_idle(app: Flask) -> None:
    """Check a pooled connection (of every engine) before use when it sat idle for DATABASE_PING_AFTER_IDLE_SECONDS.

    SQLAlchemy's `pool_pre_ping` checks on every checkout: one more round trip per request, a large
    share of a webhook delivery's cost. Connections that die do so while idle (a database restart, a
    firewall's timeout); raising DisconnectionError makes the pool replace one with a fresh connection.
    """
    with app.app_context():
        engines = list(db.engines.values())
    for engine in engines:
        _ping_if_idle(app, engine)


def _ping_if_idle(app: Flask, engine) -> None:
    @event.listens_for(engine, "connect")
    def fresh(dbapi_connection, record):
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkin")
    def idle(dbapi_connection, record):
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def ping_if_idle_long(dbapi_connection, record, proxy):
        if time.monotonic() - record.info.get("idle_since", 0.0) < app.config["DATABASE_PING_AFTER_IDLE_SECONDS"]:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            raise DisconnectionError(f"a pooled connection died while idle: {error}") from error


def _tune_sqlite(app: Flask) -> None:
    """SQLite serves the web app and the worker at once: WAL lets readers and one writer overlap,
    busy_timeout waits for a lock instead of failing, synchronous=NORMAL is WAL's safe setting."""
    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        return
    with app.app_context():
        engines = list(db.engines.values())

    def set_pragmas(dbapi_connection, record):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    for engine in engines:
        event.listen(engine, "connect", set_pragmas)


def _register_error_pages(app: Flask) -> None:
    def page(status: int, title: str, message: str):
        template = "_error_fragment.html" if request.headers.get("HX-Request") else "error.html"
        return render_template(template, status=status, title=title, message=message), status

    @app.errorhandler(CSRFError)
    def csrf_error(error):
        return page(400, "Form expired", "This form was sent without a valid security token. Reload the page and try again.")

    @app.errorhandler(404)
    def not_found(error):
        if request.blueprint == "webhooks":
            return jsonify(error="Unknown webhook URL."), 404
        return page(404, "Not found", "There is nothing here, or it belongs to another account.")

    @app.errorhandler(413)
    def too_large(error):
        if request.blueprint == "webhooks":
            return jsonify(error="Body too large."), 413
        return page(413, "Too large", "The request was larger than this site accepts.")

