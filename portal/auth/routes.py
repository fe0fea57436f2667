"""Sign in and sign out."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import current_app, flash, g, redirect, render_template, request, session, url_for
from flask_limiter.util import get_remote_address
from flask_login import current_user, login_required, login_user, logout_user

from ..extensions import db, limiter, login_manager
from ..models import User
from . import bp
from .forms import LoginForm
from .services import normalise_email, user_authenticate


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


def _failed_login(response) -> bool:
    return bool(g.get("login_failed"))


def _account_key() -> str:
    return "login-account:" + normalise_email(request.form.get("email", ""))


def _address_key() -> str:
    return "login-address:" + get_remote_address()


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(
    lambda: current_app.config["LOGIN_LIMIT_PER_ACCOUNT"],
    key_func=_account_key,
    methods=["POST"],
    deduct_when=_failed_login,
)
@limiter.limit(
    lambda: current_app.config["LOGIN_LIMIT_PER_ADDRESS"],
    key_func=_address_key,
    methods=["POST"],
    deduct_when=_failed_login,
)
def login():
    if current_user.is_authenticated:
        return redirect(url_for("main.home"))
    form = LoginForm()
    next_url = safe_next_url(request.values.get("next"))
    if form.validate_on_submit():
        user = user_authenticate(form.email.data, form.password.data)
        if user is None:
            g.login_failed = True
            form.password.errors.append("Invalid e-mail or password.")
        else:
            db.session.commit()  # keeps a rehashed password and the last sign-in time
            session.clear()  # a fresh session on sign-in: nothing carried over from before
            login_user(user)
            return redirect(next_url or url_for("main.home"))
    elif request.method == "POST":
        g.login_failed = True
    return render_template("auth/login.html", form=form, next_url=next_url)


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    logout_user()
    session.clear()
    flash("You are signed out.", "info")
    return redirect(url_for("auth.login"))


@login_manager.user_loader
def load_user(user_id: str):
    return db.session.get(User, int(user_id)) if user_id.isdigit() else None
