"""Who may open what: every endpoint of the app, classified in one table, checked before every request.

- PUBLIC: anyone (the sign-in page, static files, Stripe's webhook, an invitation link).
- MEMBER: any signed-in user of the merchant (the history, Sync again, their own account).
- ADMIN: admins and the owner (settings, connections, the team, the audit log).

An endpoint missing from ENDPOINT_ACCESS is refused to everyone (and raises in debug and tests), so a
new page cannot be forgotten open. Endpoints in RECENT_PASSWORD (those that change connections) also
need the password confirmed in the last few minutes for a POST; without it, the user is sent to confirm
it and comes back to the page to press again.
"""

from __future__ import annotations

import enum
from urllib.parse import urlsplit

from flask import Flask, current_app, flash, make_response, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from ..extensions import db, login_manager
from ..models import Role, User
from .recent_password import RECENT_PASSWORD_MINUTES, password_confirmed_recently


class Access(str, enum.Enum):
    PUBLIC = "public"
    MEMBER = "member"
    ADMIN = "admin"

    def __str__(self) -> str:
        return self.value


PUBLIC, MEMBER, ADMIN = Access.PUBLIC, Access.MEMBER, Access.ADMIN

ENDPOINT_ACCESS: dict[str, Access] = {
    "static": PUBLIC,
    "auth.login": PUBLIC,
    "webhooks.stripe_event": PUBLIC,  # verified by Stripe's signature instead
    "team.invitation": PUBLIC,  # the one-time link is the credential
    # Every signed-in user.
    "main.home": MEMBER,
    "auth.logout": MEMBER,
    "auth.account": MEMBER,
    "auth.sign_out_everywhere": MEMBER,
    "auth.confirm_password": MEMBER,
    "history.index": MEMBER,
    "history.rows": MEMBER,
    "history.invoice": MEMBER,
    "history.payouts": MEMBER,
    "history.export_csv": MEMBER,
    "history.sync_again": MEMBER,
    "history.sync_now": MEMBER,  # "Sync this invoice now" on an ignored event: Sync again's twin
    "history.retry_failed": MEMBER,  # "Retry all failed": Sync again for each failed run
    "demo.send_invoice": MEMBER,
    "demo.payout": MEMBER,
    # Decisions about what is booked: admins.
    "history.book_anyway": ADMIN,
    "history.credit_note": ADMIN,
    "history.backfill": ADMIN,
    "history.backfill_status": ADMIN,
    # Settings and connections.
    "settings.rules": ADMIN,
    "settings.mappings": ADMIN,
    "settings.mapping_row_edit": ADMIN,
    "settings.mapping_preview": ADMIN,
    "settings.customer_product": ADMIN,
    "settings.journals": ADMIN,
    "settings.connections": ADMIN,
    "settings.connection_test": ADMIN,
    "settings.stripe_account_create": ADMIN,
    "settings.stripe_account_key": ADMIN,
    "settings.stripe_account_signing_secret": ADMIN,
    "settings.stripe_account_settings": ADMIN,
    "settings.stripe_account_disconnect_view": ADMIN,
    "settings.stripe_account_check": ADMIN,
    "settings.stripe_key_test": ADMIN,  # checks a typed key, stores nothing
    "settings.stripe_webhook_endpoint": ADMIN,
    "settings.economic_install": ADMIN,
    "settings.economic_return": ADMIN,
    "settings.economic_tokens": ADMIN,
    "settings.economic_tokens_test": ADMIN,  # checks typed tokens, stores nothing
    "settings.economic_disconnect": ADMIN,
    # The team and the audit log.
    "team.index": ADMIN,
    "team.invite": ADMIN,
    "team.invitation_revoke": ADMIN,
    "team.role_change": ADMIN,
    "team.ownership_transfer": ADMIN,
    "team.user_remove": ADMIN,
    "team.audit_log": ADMIN,
}

# Endpoints that change connections: a POST needs the password confirmed in the last few minutes.
RECENT_PASSWORD: frozenset[str] = frozenset({
    "settings.connections",
    "settings.stripe_account_create",
    "settings.stripe_account_key",
    "settings.stripe_account_signing_secret",
    "settings.stripe_account_settings",
    "settings.stripe_account_disconnect_view",
    "settings.stripe_webhook_endpoint",
    "settings.economic_install",
    "settings.economic_tokens",
    "settings.economic_disconnect",
})


class UnclassifiedEndpoint(RuntimeError):
    """An endpoint nobody put in ENDPOINT_ACCESS: a programming error, refused to everyone."""


def access_init(app: Flask) -> None:
    app.before_request(access_check)
    app.jinja_env.globals["may_open"] = may_open


def may_open(endpoint: str) -> bool:
    """Whether the signed-in user may open the endpoint: templates link only to what answers."""
    access = ENDPOINT_ACCESS.get(endpoint)
    if access is PUBLIC:
        return True
    if access is None or not current_user.is_authenticated:
        return False
    return access is MEMBER or current_user.is_admin


def access_check():
    """Before every request: None to go ahead, or the answer that refuses it."""
    endpoint = request.endpoint
    if endpoint is None or request.method == "OPTIONS":  # no such page (404/405 follow), or a CORS preflight
        return None
    access = ENDPOINT_ACCESS.get(endpoint)
    if access is None:
        message = f"The endpoint {endpoint!r} is not classified in portal/auth/access.py ENDPOINT_ACCESS."
        if current_app.debug or current_app.testing:
            raise UnclassifiedEndpoint(message)
        current_app.logger.error(message)
        return _refusal("Not available", "This page is not available.")
    if access is PUBLIC:
        return None
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    if access is ADMIN and not current_user.is_admin:
        return _admins_only()
    if endpoint in RECENT_PASSWORD and request.method == "POST" and not password_confirmed_recently():
        return _confirm_password_first()
    return None


def admin_emails(merchant_id: int) -> list[str]:
    """The e-mails of the merchant's owner and admins, the owner first."""
    users = db.session.scalars(
        select(User).where(User.merchant_id == merchant_id, User.role.in_((Role.OWNER.value, Role.ADMIN.value)))
        .order_by(User.id)
    )
    return [user.email for user in sorted(users, key=lambda user: -Role(user.role).rank)]


def _admins_only():
    emails = admin_emails(current_user.merchant_id)
    ask = f" Ask {_either(emails)} if something needs changing." if emails else ""
    message = f"Only admins can change settings, connections and users; your role is {Role(current_user.role).label.lower()}.{ask}"
    if request.headers.get("HX-Request"):
        # htmx does not swap a 403: show the whole page again, with the message on it.
        flash(message, "error")
        response = make_response(render_template("_error_fragment.html", status=403, title="Admins only", message=message), 403)
        current_url = _same_site_path(request.headers.get("HX-Current-URL"))
        response.headers["HX-Redirect"] = current_url or url_for("main.home")
        response.vary.add("HX-Request")
        return response
    return _refusal("Admins only", message)


def _refusal(title: str, message: str):
    template = "_error_fragment.html" if request.headers.get("HX-Request") else "error.html"
    return render_template(template, status=403, title=title, message=message), 403


def _confirm_password_first():
    flash(f"Changing connections needs your password again (it is asked again after {RECENT_PASSWORD_MINUTES} "
          "minutes). Confirm it, then press the button again.", "info")
    target = url_for("auth.confirm_password", next=_page_to_return_to())
    if request.headers.get("HX-Request"):
        response = make_response("")
        response.headers["HX-Redirect"] = target
        response.vary.add("HX-Request")
        return response
    return redirect(target)


def _page_to_return_to() -> str:
    """The page the button was pressed on (it is shown again after confirming), else this page's address."""
    came_from = _same_site_path(request.headers.get("HX-Current-URL") or request.referrer)
    if came_from:
        return came_from
    rule = request.url_rule
    if rule is not None and "GET" in (rule.methods or ()):
        return request.full_path.rstrip("?")
    return url_for("main.home")


def _same_site_path(url: str | None) -> str | None:
    """The path (and query) of `url` when it is on this site, else None."""
    if not url:
        return None
    parts = urlsplit(url)
    if parts.netloc and parts.netloc != request.host:
        return None
    if parts.scheme and parts.scheme not in ("http", "https"):
        return None
    path = parts.path or "/"
    if not path.startswith("/") or path.startswith("//"):
        return None
    return path + (f"?{parts.query}" if parts.query else "")


def _either(emails: list[str]) -> str:
    return emails[0] if len(emails) == 1 else ", ".join(emails[:-1]) + " or " + emails[-1]
