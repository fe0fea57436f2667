"""Merchant and user services, shared by the sign-in views, the CLI and first-start bootstrap."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import func, select

from ..extensions import db
from ..models import Merchant, Role, StripeAccount, User, utcnow
from .passwords import burn_verification_time, hash_password, needs_rehash, verify_password

MIN_PASSWORD_LENGTH = 12


class AccountError(ValueError):
    """A request about merchants or users that cannot be carried out, with a message for people."""


class WrongPassword(AccountError):
    """The password given to confirm a change is not the user's."""


def normalise_email(email: str) -> str:
    return email.strip().lower()


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"Passwords need at least {MIN_PASSWORD_LENGTH} characters.")


def merchant_create(name: str) -> Merchant:
    name = name.strip()
    if not name:
        raise AccountError("A merchant needs a name.")
    merchant = Merchant(name=name)
    # Every merchant starts with one Stripe account to connect (its webhook URL is ready to copy); more can
    # be added on the Connections page.
    merchant.stripe_accounts.append(StripeAccount())
    db.session.add(merchant)
    db.session.flush()
    return merchant


def user_get_by_email(email: str) -> User | None:
    return db.session.scalar(select(User).where(User.email == normalise_email(email)))


def user_create(merchant: Merchant, email: str, password: str, role: Role = Role.MEMBER) -> User:
    email = normalise_email(email)
    if "@" not in email or email.startswith("@") or email.endswith("@"):
        raise AccountError(f"{email!r} is not an e-mail address.")
    if user_get_by_email(email) is not None:
        raise AccountError(f"A user with the e-mail {email} exists already.")
    check_password_strength(password)
    user = User(merchant=merchant, email=email, password_hash=hash_password(password), role=Role(role).value)
    db.session.add(user)
    db.session.flush()
    return user


def user_set_password(user: User, password: str) -> None:
    """A new password (the account page, `flask user reset-password`): every session of the user's ends."""
    check_password_strength(password)
    user.password_hash = hash_password(password)
    user_sessions_revoke(user)


def user_change_password(user: User, current_password: str, new_password: str) -> None:
    """The user's own change of password, which needs the current one."""
    if not verify_password(user.password_hash, current_password):
        raise WrongPassword("The current password is not right.")
    user_set_password(user, new_password)


def user_sessions_revoke(user: User) -> None:
    """End every session of the user's, on every device: each holds the session version it was signed in
    with, and the user's version moves past it. Raised in SQL, so two revocations at once both count."""
    user.session_version = User.session_version + 1
    db.session.flush()  # `user.session_version` reads the new value from here on


def user_authenticate(email: str, password: str) -> User | None:
    """The user for these credentials, or None; which part was wrong is never told apart."""
    user = user_get_by_email(email)
    if user is None:
        burn_verification_time(password)
        return None
    if not verify_password(user.password_hash, password):
        return None
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.last_login_at = utcnow()
    return user


def generate_password() -> str:
    return secrets.token_urlsafe(15)


@dataclass
class FirstLogin:
    merchant: Merchant
    user: User
    password: str | None  # only set when we generated it, so it can be shown once


def bootstrap_first_admin(email: str | None, password: str | None, merchant_name: str | None) -> FirstLogin | None:
    """On a database without users, create the first merchant and its owner; else do nothing."""
    if db.session.scalar(select(func.count()).select_from(User)):
        return None
    merchant = merchant_create(merchant_name or "My company")
    generated = None
    if not password:
        password = generated = generate_password()
    user = user_create(merchant, email or "admin@example.com", password, role=Role.OWNER)
    db.session.commit()
    return FirstLogin(merchant=merchant, user=user, password=generated)
