"""Signed-in sessions, checked on the server at every request.

The session (Flask's signed cookie) holds, besides Flask-Login's user id, the user's session version it
was signed in with, when it signed in and when it was last seen. The user loader lets a session act for
its user only while
- its version is the user's (signing out, "Sign out everywhere" and a new password raise the user's
  version, so a copy of the cookie stops working wherever it was copied),
- it was seen within SESSION_IDLE_MINUTES, and
- it signed in less than SESSION_MAX_HOURS ago.
Otherwise the request is signed out, and the sign-in page says why. Last-seen is written at most once a
minute, so most requests do not rewrite the cookie (idle time is therefore measured to within a minute).
"""

from __future__ import annotations

import enum
import time

from flask import current_app, flash, g, make_response, redirect, request, session
from flask_login import login_url

from ..extensions import db, login_manager
from ..models import User
from .recent_password import password_confirmed_now

VERSION = "session_version"
SIGNED_IN_AT = "signed_in_at"
SEEN_AT = "seen_at"
SEEN_REFRESH_SECONDS = 60


class SessionEnd(str, enum.Enum):
    """Why a session may no longer act for its user."""

    REVOKED = "revoked"  # signed out, signed out everywhere, or the password changed
    IDLE = "idle"
    TOO_OLD = "too_old"


def session_begin(user: User) -> None:
    """Bind the session just signed in (after `login_user`) to the user's session version; start its clocks."""
    now = int(time.time())
    session[VERSION] = user.session_version
    session[SIGNED_IN_AT] = now
    session[SEEN_AT] = now
    password_confirmed_now()  # the password was just given


def session_reissue(user: User) -> None:
    """Carry the current session over to the user's new session version (after changing the password
    here), so it stays signed in while every other session ends. Its sign-in time stays."""
    session[VERSION] = user.session_version
    session[SEEN_AT] = int(time.time())
    password_confirmed_now()  # the current password was just given


def session_check(user: User) -> SessionEnd | None:
    """Why this session may no longer act for `user`, or None; notes that it was seen, once a minute."""
    if session.get(VERSION) != user.session_version:
        return SessionEnd.REVOKED
    config = current_app.config
    now = time.time()
    signed_in_at, seen_at = session.get(SIGNED_IN_AT), session.get(SEEN_AT)
    if not isinstance(signed_in_at, int) or not isinstance(seen_at, int):
        return SessionEnd.REVOKED
    if now - signed_in_at >= config["SESSION_MAX_HOURS"] * 3600:
        return SessionEnd.TOO_OLD
    if now - seen_at >= config["SESSION_IDLE_MINUTES"] * 60:
        return SessionEnd.IDLE
    if now - seen_at >= SEEN_REFRESH_SECONDS:
        session[SEEN_AT] = int(now)
    return None


def session_end_message(reason: SessionEnd) -> str:
    config = current_app.config
    if reason is SessionEnd.IDLE:
        return f"You were signed out after {_count(config['SESSION_IDLE_MINUTES'], 'minute')} without activity."
    if reason is SessionEnd.TOO_OLD:
        return f"You were signed out {_count(config['SESSION_MAX_HOURS'], 'hour')} after signing in. Please sign in again."
    return "You were signed out: this session was ended (a sign-out, or a new password). Please sign in again."


def _count(number: int, unit: str) -> str:
    return f"{number} {unit}{'' if number == 1 else 's'}"


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    user = db.session.get(User, int(user_id)) if user_id.isdigit() else None
    if user is None:
        return None
    ended = session_check(user)
    if ended is not None:
        session.clear()
        g.session_ended = ended
        flash(session_end_message(ended), "info")
        return None
    return user


@login_manager.unauthorized_handler
def sign_in_first():
    """To the sign-in page, and back here afterwards; the page says why when a session just ended.

    An HTMX request (a polling fragment, an inline edit) sends the whole page there, rather than have
    the sign-in page swapped into a fragment of it."""
    if "session_ended" not in g:
        flash(login_manager.login_message, login_manager.login_message_category)
    if request.headers.get("HX-Request"):
        response = make_response("")
        response.headers["HX-Redirect"] = login_url(login_manager.login_view, next_url=request.headers.get("HX-Current-URL") or request.url)
        response.vary.add("HX-Request")
        return response
    return redirect(login_url(login_manager.login_view, next_url=request.url))
