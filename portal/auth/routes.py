"""Sign in, sign out, the account page (change password, sign out everywhere), and confirming the password
again before changing connections."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user

from ..extensions import db
from . import bp
from .forms import ChangePasswordForm, ConfirmPasswordForm, LoginForm
from .limits import signin_attempt_begin, signin_attempt_refund
from .passwords import verify_password
from .recent_password import RECENT_PASSWORD_MINUTES, password_confirmed_now
from .services import MIN_PASSWORD_LENGTH, WrongPassword, user_authenticate, user_change_password, user_sessions_revoke
from .sessions import session_begin, session_reissue


def safe_next_url(target: str | None) -> str | None:
    """`target` when it is a path on this site; None for anything that could leave it."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    if any(ord(char) < 32 or ord(char) == 127 for char in target):  # browsers drop tabs and newlines
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated:
        return redirect(url_for("main.home"))
    form = LoginForm()
    next_url = safe_next_url(request.values.get("next"))
    if form.validate_on_submit():
        attempt = signin_attempt_begin(form.email.data, request.remote_addr)
        if not attempt.allowed:
            return render_template("auth/login.html", form=form, next_url=next_url, refusal=attempt.refusal), 429
        user = user_authenticate(form.email.data, form.password.data)
        if user is None:
            form.password.errors.append("Invalid e-mail or password.")
        else:
            signin_attempt_refund(attempt)
            db.session.commit()  # keeps a rehashed password and the last sign-in time
            session.clear()  # a fresh session on sign-in: nothing carried over from before
            login_user(user)
            session_begin(user)
            return redirect(next_url or url_for("main.home"))
    return render_template("auth/login.html", form=form, next_url=next_url)


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    _sign_out_everywhere()
    flash("You are signed out.", "info")
    return redirect(url_for("auth.login"))


@bp.route("/account", methods=["GET", "POST"])
@login_required
def account():
    user = current_user._get_current_object()
    form = ChangePasswordForm()
    status = 200
    if form.validate_on_submit():
        attempt = signin_attempt_begin(user.email, request.remote_addr)  # the current password is guessed as at sign-in
        if not attempt.allowed:
            form.current_password.errors.append(attempt.refusal)
            status = 429
        else:
            try:
                user_change_password(user, form.current_password.data, form.new_password.data)
            except WrongPassword as error:
                form.current_password.errors.append(str(error))
            else:
                signin_attempt_refund(attempt)
                db.session.commit()
                session_reissue(user)
                flash("Your password is changed. Your other sessions are signed out.", "success")
                return redirect(url_for("auth.account"))
    return render_template("auth/account.html", form=form, min_length=MIN_PASSWORD_LENGTH), status


@bp.route("/confirm-password", methods=["GET", "POST"])
@login_required
def confirm_password():
    """The password again, before changing connections; then back to the page the change is made on."""
    user = current_user._get_current_object()
    form = ConfirmPasswordForm()
    next_url = safe_next_url(request.values.get("next"))
    status = 200
    if form.validate_on_submit():
        attempt = signin_attempt_begin(user.email, request.remote_addr)  # guessed as at sign-in, so limited alike
        if not attempt.allowed:
            form.password.errors.append(attempt.refusal)
            status = 429
        elif not verify_password(user.password_hash, form.password.data):
            form.password.errors.append("That is not your password.")
        else:
            signin_attempt_refund(attempt)
            password_confirmed_now()
            flash(f"Password confirmed: for the next {RECENT_PASSWORD_MINUTES} minutes you can change connections. "
                  "Press the button again.", "success")
            return redirect(next_url or url_for("main.home"))
    return render_template("auth/confirm_password.html", form=form, next_url=next_url), status


@bp.route("/account/sign-out-everywhere", methods=["POST"])
@login_required
def sign_out_everywhere():
    _sign_out_everywhere()
    flash("You are signed out everywhere: on this device and every other.", "info")
    return redirect(url_for("auth.login"))


def _sign_out_everywhere() -> None:
    """Signing out ends every copy of this session, wherever it was copied: so every session of the user's."""
    user_sessions_revoke(current_user._get_current_object())
    db.session.commit()
    logout_user()
    session.clear()
