"""Connecting e-conomic: e-conomic's own app-install flow ("Connect e-conomic"), pasting tokens instead,
and disconnecting.

The install flow: `economic_install` keeps a single-use state (its hash, bound to the merchant and the user,
for 15 minutes) and sends the merchant to e-conomic's grant page with the app's public token and a
`redirectUrl` back to `economic_return` carrying the state. When the merchant accepts, e-conomic sends them
back to that URL with the Agreement Grant Token appended as `token`. The return spends the state (once,
even under a race), reads `/self` with the grant token and the server's App Secret Token, and only if
e-conomic accepts them stores both, encrypted, with the company and agreement they open.
"""

from __future__ import annotations

import re
import secrets
from datetime import timedelta
from urllib.parse import urlencode

from flask import Response, current_app, flash, make_response, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from sqlalchemy import delete, select, update
from wtforms import PasswordField, SubmitField
from wtforms.validators import Length, Optional, Regexp

from ..extensions import db
from ..crypto import secret_digest
from ..models import Connection, EconomicInstallState, as_utc, utcnow
from ..public_urls import public_url_for
from ..sync.economic import EconomicError
from . import bp
from .services import (
    CheckResult,
    connection_economic_connect,
    connection_economic_disconnect,
    connection_for,
    economic_agreement_of,
    economic_client,
    mask_secret,
)
from .sync_config import economic_choices_forget

STATE_LIFETIME = timedelta(minutes=15)
SPENT_STATES_KEPT = timedelta(days=1)  # a replay within a day is told "already used", not "not valid"
# The languages of e-conomic's grant page (its `locale` parameter); English is its default.
GRANT_PAGE_LOCALES = ("da-DK", "sv-SE", "nb-NO", "en-GB")
TOKEN_SHAPE = re.compile(r"[^\s]{1,255}")
TOKEN_RULES = [Optional(), Length(max=255), Regexp(r"^\S+$", message="Tokens contain no spaces.")]

TRY_AGAIN = "Nothing was changed; press Connect e-conomic to try again."
NOT_VALID = f"That link back from e-conomic is not valid (it was changed, or it did not come from this portal). {TRY_AGAIN}"
USED = f"That link back from e-conomic was already used. {TRY_AGAIN}"
EXPIRED = f"That link back from e-conomic expired: finish connecting within 15 minutes. {TRY_AGAIN}"
FOREIGN = f"That link back from e-conomic belongs to another user's connection attempt. {TRY_AGAIN}"
NO_TOKEN = f"e-conomic sent no Agreement Grant Token back (was access declined?). {TRY_AGAIN}"
BAD_TOKEN = f"The Agreement Grant Token e-conomic sent back is not a token. {TRY_AGAIN}"
NOT_SET_UP = ("This portal is not set up to connect through e-conomic's app page; "
              "paste your e-conomic tokens under Connections instead.")


class EconomicTokensForm(FlaskForm):
    """Pasting tokens: write-only, a blank field keeps what is stored."""

    economic_app_secret_token = PasswordField("e-conomic App Secret Token", validators=TOKEN_RULES)
    economic_agreement_grant_token = PasswordField("e-conomic Agreement Grant Token", validators=TOKEN_RULES)
    submit = SubmitField("Check and save e-conomic tokens")


class InstallRefused(Exception):
    """Why a return from e-conomic's grant page changes nothing, in the merchant's words."""


# -- reads ---------------------------------------------------------------------------------------------

def economic_install_available(config) -> bool:
    """Whether this server has an app in e-conomic to install (else merchants paste their tokens)."""
    return bool(config["ECONOMIC_APP_PUBLIC_TOKEN"] and config["ECONOMIC_APP_SECRET_TOKEN"])


def economic_connection_view(connection: Connection | None, config) -> dict:
    """What templates/settings/_economic_connection.html shows: the connection's state, and the forms."""
    connection = connection or Connection()
    return {
        "connected": bool(connection.economic_app_secret_token and connection.economic_agreement_grant_token),
        "company_name": connection.economic_company_name,
        "agreement_number": connection.economic_agreement_number,
        "connected_at": connection.economic_connected_at,
        "checked_at": connection.economic_checked_at,
        "check_ok": connection.economic_check_ok,
        "check_message": connection.economic_check_message,
        "install_available": economic_install_available(config),
        "stored": {name: mask_secret(getattr(connection, name)) for name in Connection.SECRET_FIELDS
                   if name.startswith("economic_")},
        "form": EconomicTokensForm(formdata=None),
    }


# -- install states ------------------------------------------------------------------------------------

def economic_install_state_create(merchant_id: int, user_id: int) -> str:
    """A new single-use state for this merchant and user; only its hash is stored. The caller commits."""
    now = utcnow()
    db.session.execute(delete(EconomicInstallState).where(EconomicInstallState.merchant_id == merchant_id,
                                                          EconomicInstallState.expires_at < now - SPENT_STATES_KEPT))
    state = secrets.token_urlsafe(32)
    db.session.add(EconomicInstallState(merchant_id=merchant_id, user_id=user_id, state_hash=secret_digest(state),
                                        created_at=now, expires_at=now + STATE_LIFETIME))
    return state


def economic_install_state_check(state: str, merchant_id: int, user_id: int) -> EconomicInstallState:
    """The stored state `state` names, if this user of this merchant may still use it; else InstallRefused."""
    record = db.session.scalar(select(EconomicInstallState).where(EconomicInstallState.state_hash == secret_digest(state)))
    if not state or record is None:
        raise InstallRefused(NOT_VALID)
    if record.merchant_id != merchant_id or record.user_id != user_id:
        raise InstallRefused(FOREIGN)
    if record.used_at is not None:
        raise InstallRefused(USED)
    if as_utc(record.expires_at) <= utcnow():
        raise InstallRefused(EXPIRED)
    return record


def economic_install_state_use(record: EconomicInstallState) -> None:
    """Spend the state: one conditional UPDATE, so of two returns racing with it only one gets through."""
    spent = db.session.execute(
        update(EconomicInstallState)
        .where(EconomicInstallState.id == record.id, EconomicInstallState.used_at.is_(None))
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False))
    if spent.rowcount != 1:
        raise InstallRefused(USED)


def economic_install_url(install_url: str, app_public_token: str, redirect_url: str, locale: str) -> str:
    """e-conomic's grant page for this app, sending the merchant back to `redirect_url`."""
    query = urlencode({"appPublicToken": app_public_token, "locale": locale, "redirectUrl": redirect_url})
    return install_url + ("&" if "?" in install_url else "?") + query


# -- views ---------------------------------------------------------------------------------------------

def _to_connections() -> Response:
    return _go(url_for("settings.connections"))


def _go(location: str) -> Response:
    """Redirect; an HTMX request is sent on with HX-Redirect (a browser navigation, so no CSP form-action
    stands between the Connections page and e-conomic's grant page)."""
    if request.headers.get("HX-Request"):
        response = make_response("", 200)
        response.headers["HX-Redirect"] = location
        response.vary.add("HX-Request")
        return response
    return redirect(location)


def _connect(connection: Connection, app_secret_token: str, agreement_grant_token: str) -> None:
    """Store the tokens if e-conomic's `/self` accepts them, flashing what happened; commits or rolls back."""
    config = current_app.config
    client = economic_client(app_secret_token, agreement_grant_token, config["ECONOMIC_API_URL"], config["HTTP_TIMEOUT_SECONDS"])
    try:
        me = client.get_self()
    except EconomicError as error:
        db.session.rollback()
        flash(f"e-conomic did not accept the tokens, so nothing was stored. {error}", "error")
        return
    result = connection_economic_connect(connection, app_secret_token, agreement_grant_token, me)
    db.session.commit()
    economic_choices_forget(connection.merchant_id)  # the lists came from the agreement connected before
    flash(result.message, "success")


@bp.route("/connections/economic/install", methods=["POST"])
@login_required
def economic_install():
    config = current_app.config
    if not economic_install_available(config):
        flash(NOT_SET_UP, "error")
        return _to_connections()
    state = economic_install_state_create(current_user.merchant_id, current_user.id)
    db.session.commit()
    locale = request.accept_languages.best_match(GRANT_PAGE_LOCALES, default="en-GB")
    return _go(economic_install_url(config["ECONOMIC_INSTALL_URL"], config["ECONOMIC_APP_PUBLIC_TOKEN"],
                                    public_url_for("settings.economic_return", state=state), locale))


@bp.route("/connections/economic/return")
@login_required
def economic_return():
    token = request.args.get("token", "")
    try:
        record = economic_install_state_check(request.args.get("state", ""), current_user.merchant_id, current_user.id)
        if not token.strip():
            raise InstallRefused(NO_TOKEN)
        if not TOKEN_SHAPE.fullmatch(token):
            raise InstallRefused(BAD_TOKEN)
        if not economic_install_available(current_app.config):
            raise InstallRefused(NOT_SET_UP)
        economic_install_state_use(record)
    except InstallRefused as refused:
        db.session.rollback()
        flash(str(refused), "error")
        return redirect(url_for("settings.connections"))
    db.session.commit()  # the state is spent, whatever e-conomic answers next
    _connect(connection_for(current_user.merchant), current_app.config["ECONOMIC_APP_SECRET_TOKEN"], token)
    return redirect(url_for("settings.connections"))


@bp.route("/connections/economic/tokens", methods=["POST"])
@login_required
def economic_tokens():
    form = EconomicTokensForm()
    if not form.validate_on_submit():
        for field, errors in form.errors.items():
            label = getattr(form, field).label.text if hasattr(form, field) else field
            for error in errors:
                flash(f"{label}: {error} Nothing was stored.", "error")
        return redirect(url_for("settings.connections"))
    connection = connection_for(current_user.merchant)
    app_secret = ((form.economic_app_secret_token.data or "").strip() or connection.economic_app_secret_token
                  or current_app.config["ECONOMIC_APP_SECRET_TOKEN"])
    grant = (form.economic_agreement_grant_token.data or "").strip() or connection.economic_agreement_grant_token
    if not (app_secret and grant):
        db.session.rollback()
        flash("Paste both e-conomic tokens: the App Secret Token and the Agreement Grant Token.", "error")
        return redirect(url_for("settings.connections"))
    _connect(connection, app_secret, grant)
    return redirect(url_for("settings.connections"))


@bp.route("/connections/economic/tokens/test", methods=["POST"])
@login_required
def economic_tokens_test():
    """"Test these tokens": asks e-conomic's `/self` about the tokens typed into the paste form (a blank field: the
    stored one, as saving would use it), storing nothing; answers the result in place."""
    form = EconomicTokensForm()
    connection = connection_for(current_user.merchant)
    typed_secret = (form.economic_app_secret_token.data or "").strip()
    typed_grant = (form.economic_agreement_grant_token.data or "").strip()
    app_secret = typed_secret or connection.economic_app_secret_token or current_app.config["ECONOMIC_APP_SECRET_TOKEN"]
    grant = typed_grant or connection.economic_agreement_grant_token
    db.session.rollback()  # nothing is stored, not even an empty connection row
    if not form.validate():
        message = " ".join(f"{getattr(form, name).label.text}: {error}" for name, errors in form.errors.items()
                           if hasattr(form, name) for error in errors)
        return render_template("settings/_check_result.html", result=CheckResult(False, message or "Paste the tokens again."))
    if not (typed_secret or typed_grant):
        result = CheckResult(False, "Paste the tokens first: this tests the tokens in the boxes, without saving them.")
    elif not (app_secret and grant):
        result = CheckResult(False, "Paste both e-conomic tokens: the App Secret Token and the Agreement Grant Token.")
    else:
        config = current_app.config
        client = economic_client(app_secret, grant, config["ECONOMIC_API_URL"], config["HTTP_TIMEOUT_SECONDS"])
        try:
            name, number = economic_agreement_of(client.get_self())
        except EconomicError as error:
            result = CheckResult(False, f"e-conomic did not accept these tokens: {error} Nothing was saved.")
        else:
            agreement = f" (agreement {number})" if number else ""
            result = CheckResult(True, f"e-conomic accepts these tokens: they open {name or 'your company'}{agreement}. "
                                       "Not saved yet: press Check and save e-conomic tokens to use them.")
    return render_template("settings/_check_result.html", result=result)


@bp.route("/connections/economic/disconnect", methods=["POST"])
@login_required
def economic_disconnect():
    connection = connection_for(current_user.merchant)
    if not (connection.economic_app_secret_token or connection.economic_agreement_grant_token):
        db.session.rollback()
        flash("e-conomic is not connected.", "info")
        return redirect(url_for("settings.connections"))
    connection_economic_disconnect(connection)
    db.session.commit()
    economic_choices_forget(connection.merchant_id)
    flash("Disconnected from e-conomic: its tokens are deleted here, and nothing is synced until you connect again. "
          "To withdraw the access in e-conomic as well, remove the app under Settings › Apps in e-conomic.", "success")
    return redirect(url_for("settings.connections"))
