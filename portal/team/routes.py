"""The Team page (users, roles, invitations) and the invitation link an invitee opens."""

from __future__ import annotations

from flask import abort, flash, make_response, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user

from ..auth.forms import AcceptInvitationForm
from ..auth.services import MIN_PASSWORD_LENGTH, AccountError
from ..auth.sessions import session_begin
from ..extensions import db
from ..models import Role
from ..public_urls import public_url_for
from . import bp
from .forms import InviteForm
from .services import (
    INVITATION_HOURS,
    InvitationGone,
    TeamChangeRefused,
    invitation_accept,
    invitation_create,
    invitation_expired,
    invitation_for_token,
    invitation_of,
    invitation_revoke,
    invitations_pending,
    ownership_transfer,
    role_change,
    team_member,
    team_members,
    user_remove,
)


def _team_page(form: InviteForm, status: int = 200):
    merchant_id = current_user.merchant_id
    return render_template(
        "team/index.html", form=form, users=team_members(merchant_id), invitations=invitations_pending(merchant_id),
        expired=invitation_expired, roles=(Role.ADMIN, Role.MEMBER), hours=INVITATION_HOURS,
    ), status


@bp.route("/team")
@login_required
def index():
    return _team_page(InviteForm())


@bp.route("/team/invite", methods=["POST"])
@login_required
def invite():
    form = InviteForm()
    if not form.validate_on_submit():
        return _team_page(form, 400)
    try:
        new = invitation_create(current_user._get_current_object(), form.email.data, form.role.data)
    except TeamChangeRefused as refusal:
        form.email.errors.append(str(refusal))
        return _team_page(form, 400)
    db.session.commit()
    link = public_url_for("team.invitation", token=new.token)
    response = make_response(render_template("team/invited.html", invitation=new.invitation, link=link, hours=INVITATION_HOURS))
    response.headers["Cache-Control"] = "no-store"  # the link is shown this once
    return response


@bp.route("/team/invitations/<int:invitation_id>/revoke", methods=["POST"], endpoint="invitation_revoke")
@login_required
def invitation_revoke_view(invitation_id: int):
    invitation = invitation_of(current_user.merchant_id, invitation_id) or abort(404)

    def revoke() -> str:
        invitation_revoke(invitation)
        return f"The invitation for {invitation.email} is revoked; its link no longer works."
    return _act(revoke)


@bp.route("/team/users/<int:user_id>/role", methods=["POST"], endpoint="role_change")
@login_required
def role_change_view(user_id: int):
    target = team_member(current_user.merchant_id, user_id) or abort(404)

    def change() -> str:
        changed = role_change(current_user._get_current_object(), target, request.form.get("role", ""))
        if not changed:
            return f"{target.email} is {Role(target.role).label.lower()} already."
        return f"{target.email} is now {Role(target.role).label.lower()}."
    return _act(change)


@bp.route("/team/users/<int:user_id>/make-owner", methods=["POST"], endpoint="ownership_transfer")
@login_required
def ownership_transfer_view(user_id: int):
    target = team_member(current_user.merchant_id, user_id) or abort(404)

    def transfer() -> str:
        ownership_transfer(current_user._get_current_object(), target)
        return f"{target.email} is now the owner; you are an admin."
    return _act(transfer)


@bp.route("/team/users/<int:user_id>/remove", methods=["POST"], endpoint="user_remove")
@login_required
def user_remove_view(user_id: int):
    target = team_member(current_user.merchant_id, user_id) or abort(404)

    def remove() -> str:
        email = user_remove(current_user._get_current_object(), target)
        return f"{email} is removed from the team and signed out everywhere."
    return _act(remove)


def _act(change) -> object:
    """Run one change to the team: commit it and say what was done, or change nothing and say why."""
    try:
        done = change()
    except TeamChangeRefused as refusal:
        db.session.rollback()
        flash(f"Nothing was changed: {refusal}", "error")
    else:
        db.session.commit()
        flash(done, "success")
    return redirect(url_for("team.index"))


@bp.route("/invite/<token>", methods=["GET", "POST"])
def invitation(token: str):
    """The link an invitee was given: choose a password, join the team, signed in."""
    try:
        invited = invitation_for_token(token)
    except InvitationGone as gone:
        return render_template("error.html", title="This invitation cannot be used", message=str(gone)), gone.status
    form = AcceptInvitationForm()
    if form.validate_on_submit():
        try:
            user = invitation_accept(token, form.password.data)
        except InvitationGone as gone:
            db.session.rollback()
            return render_template("error.html", title="This invitation cannot be used", message=str(gone)), gone.status
        except AccountError as error:
            db.session.rollback()
            form.password.errors.append(str(error))
        else:
            db.session.commit()
            session.clear()  # whoever was signed in on this browser before, it is the invitee now
            login_user(user)
            session_begin(user)
            flash(f"Welcome to {user.merchant.name}'s Invoice Sync. You are signed in as {user.email}.", "success")
            return redirect(url_for("main.home"))
    response = make_response(render_template("team/invitation.html", form=form, invitation=invited, min_length=MIN_PASSWORD_LENGTH),
                             400 if form.errors else 200)
    response.headers["Cache-Control"] = "no-store"
    return response
