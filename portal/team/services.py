"""The merchant's team: invitations (one-time links), roles, removing users. Plain functions; the views
commit. Rules: the owner is changed only by handing ownership on, and nobody changes or removes themself,
so a merchant always keeps exactly one owner."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update

from ..audit import acting_as
from ..auth.services import AccountError, normalise_email, user_create, user_get_by_email, user_sessions_revoke
from ..extensions import db
from ..crypto import secret_digest
from ..models import Invitation, Role, User, as_utc, utcnow

INVITATION_HOURS = 72
INVITABLE_ROLES = (Role.ADMIN, Role.MEMBER)  # the owner hands ownership on; nobody is invited as owner


class TeamChangeRefused(AccountError):
    """A change to the team that is not allowed, with the reason in the merchant's words."""


class InvitationGone(AccountError):
    """An invitation link that cannot be used: unknown (404), or used or expired (410)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class NewInvitation:
    invitation: Invitation
    token: str  # shown once in the link, never stored


def team_members(merchant_id: int) -> list[User]:
    """The merchant's users: the owner first, then admins, then members, each by e-mail."""
    users = db.session.scalars(select(User).where(User.merchant_id == merchant_id))
    return sorted(users, key=lambda user: (-Role(user.role).rank, user.email))


def invitations_pending(merchant_id: int) -> list[Invitation]:
    """Invitations not accepted yet, expired ones included (so they can be revoked or sent again)."""
    return list(db.session.scalars(
        select(Invitation).where(Invitation.merchant_id == merchant_id, Invitation.accepted_at.is_(None))
        .order_by(Invitation.created_at.desc(), Invitation.id.desc())
    ))


def invitation_expired(invitation: Invitation, now: datetime | None = None) -> bool:
    return (now or utcnow()) >= as_utc(invitation.expires_at)


def invitation_create(inviter: User, email: str, role: Role | str) -> NewInvitation:
    """A one-time link for `email` to join the inviter's merchant with `role`; an earlier pending link for
    the same e-mail stops working."""
    email = normalise_email(email)
    if "@" not in email or email.startswith("@") or email.endswith("@"):
        raise TeamChangeRefused(f"{email!r} is not an e-mail address.")
    role = _role(role)
    if role not in INVITABLE_ROLES:
        raise TeamChangeRefused("Invite people as admin or member; the owner can hand ownership on from this page.")
    if user_get_by_email(email) is not None:
        raise TeamChangeRefused(f"{email} has a login already.")
    for earlier in db.session.scalars(select(Invitation).where(
            Invitation.merchant_id == inviter.merchant_id, Invitation.email == email, Invitation.accepted_at.is_(None))):
        db.session.delete(earlier)
    token = secrets.token_urlsafe(32)
    invitation = Invitation(
        merchant_id=inviter.merchant_id, email=email, role=role.value, token_hash=secret_digest(token),
        invited_by_id=inviter.id, invited_by_email=inviter.email,
        expires_at=utcnow() + timedelta(hours=INVITATION_HOURS),
    )
    db.session.add(invitation)
    db.session.flush()
    return NewInvitation(invitation, token)


def invitation_for_token(token: str) -> Invitation:
    """The invitation the link is for, if it can still be used; else InvitationGone saying why."""
    invitation = db.session.scalar(select(Invitation).where(Invitation.token_hash == secret_digest(token)))
    if invitation is None:
        raise InvitationGone("This invitation link is not known: it may have been revoked, or replaced by a newer "
                             "one. Ask whoever invited you for a new link.", 404)
    if invitation.accepted_at is not None:
        raise InvitationGone("This invitation link was used already. Sign in with the password chosen then, "
                             "or ask an admin for a new link.", 410)
    if invitation_expired(invitation):
        raise InvitationGone(f"This invitation link expired (links work for {INVITATION_HOURS} hours). "
                             "Ask whoever invited you for a new one.", 410)
    return invitation


def invitation_accept(token: str, password: str) -> User:
    """The invitee's new user, with the invitation's role and the password chosen; the link is used up."""
    invitation = invitation_for_token(token)
    with acting_as(invitation.email):
        # Spent first, in one conditional UPDATE: of two people using the link at once, the second waits for the
        # first's row lock and then finds it spent. A refused password rolls the spending back.
        spent = db.session.execute(update(Invitation).where(Invitation.id == invitation.id, Invitation.accepted_at.is_(None))
                                   .values(accepted_at=utcnow()).execution_options(synchronize_session=False)).rowcount
        if not spent:
            raise InvitationGone("This invitation link was used already. Sign in with the password chosen then, "
                                 "or ask an admin for a new link.", 410)
        user = user_create(invitation.merchant, invitation.email, password, role=Role(invitation.role))
        db.session.flush()
    return user


def invitation_of(merchant_id: int, invitation_id: int) -> Invitation | None:
    """One of the merchant's invitations (another merchant's do not exist here)."""
    return db.session.scalar(select(Invitation).where(Invitation.id == invitation_id, Invitation.merchant_id == merchant_id))


def invitation_revoke(invitation: Invitation) -> None:
    if invitation.accepted_at is not None:
        raise TeamChangeRefused(f"The invitation for {invitation.email} was accepted already.")
    db.session.delete(invitation)
    db.session.flush()


def team_member(merchant_id: int, user_id: int) -> User | None:
    """A user of the merchant's (another merchant's users do not exist here)."""
    return db.session.scalar(select(User).where(User.id == user_id, User.merchant_id == merchant_id))


def role_change(actor: User, target: User, role: Role | str) -> bool:
    """Make `target` an admin or a member. Whoever loses admin rights is signed out everywhere. True when
    the role changed."""
    role = _role(role)
    _may_change(actor, target, "change your own role")
    if role is Role.OWNER:
        raise TeamChangeRefused("Only the owner can make someone the owner, by handing ownership on.")
    if Role(target.role) is role:
        return False
    demoted = not role.at_least(Role(target.role))
    target.role = role.value
    if demoted:
        user_sessions_revoke(target)
    db.session.flush()
    return True


def ownership_transfer(actor: User, target: User) -> None:
    """The owner hands ownership to another user of the team, and stays on as an admin."""
    if Role(actor.role) is not Role.OWNER:
        raise TeamChangeRefused("Only the owner can hand ownership on.")
    if target.id == actor.id:
        raise TeamChangeRefused("You are the owner already.")
    target.role = Role.OWNER.value
    actor.role = Role.ADMIN.value
    db.session.flush()


def user_remove(actor: User, target: User) -> str:
    """Remove `target` from the team; their sessions end with their login. Their e-mail, for the message."""
    _may_change(actor, target, "remove yourself")
    email = target.email
    user_sessions_revoke(target)
    db.session.delete(target)
    db.session.flush()
    return email


def _may_change(actor: User, target: User, what: str) -> None:
    if target.id == actor.id:
        raise TeamChangeRefused(f"You cannot {what}; ask another admin.")
    if Role(target.role) is Role.OWNER:
        raise TeamChangeRefused(f"{target.email} is the owner: nobody else can change or remove them. "
                                "The owner can hand ownership on first.")


def _role(value: Role | str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise TeamChangeRefused(f"{value!r} is not a role.") from None

