"""The team: invitation links (once, 72 hours), roles, removing users, and the owner nobody else can touch."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from portal.auth.services import user_create
from portal.extensions import db
from portal.models import Invitation, Merchant, Role, User
from portal.team import services as team_services

from .helpers import PASSWORD, csrf_token, login

NEW_PASSWORD = "a fine new passphrase"


def _add_user(app, account, email: str, role: Role) -> int:
    with app.app_context():
        user = user_create(db.session.get(Merchant, account.merchant_id), email, PASSWORD, role=role)
        db.session.commit()
        return user.id


def _invite(client, email: str, role: str = "member") -> str:
    token = csrf_token(client, "/team")
    response = client.post("/team/invite", data={"csrf_token": token, "email": email, "role": role})
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    link = re.search(r'value="(http://localhost/invite/[^"]+)"', response.get_data(as_text=True)).group(1)
    return link.removeprefix("http://localhost")


def _accept(client, path: str, password: str = NEW_PASSWORD):
    token = csrf_token(client, path)
    return client.post(path, data={"csrf_token": token, "password": password, "password_again": password})


def test_an_invitation_link_works_once_and_signs_the_invitee_in_with_the_role(app, client, account):
    login(client, account.email)
    path = _invite(client, "Nina@Acme.test", "member")
    with app.app_context():
        invitation = db.session.scalar(db.select(Invitation))
        assert invitation.email == "nina@acme.test" and invitation.role == "member"
        assert path.rsplit("/", 1)[1] not in invitation.token_hash  # only the hash is kept
    assert "nina@acme.test" in client.get("/team").get_data(as_text=True)  # pending, with its expiry

    invitee = app.test_client()
    page = invitee.get(path).get_data(as_text=True)
    assert "Acme ApS" in page and "nina@acme.test" in page
    response = _accept(invitee, path)
    assert response.headers["Location"] == "/"
    assert "Sync history" in invitee.get("/").get_data(as_text=True)
    assert invitee.get("/rules").status_code == 403
    with app.app_context():
        user = db.session.scalar(db.select(User).where(User.email == "nina@acme.test"))
        assert user.role == "member" and user.merchant_id == account.merchant_id
        assert db.session.scalar(db.select(Invitation)).accepted_at is not None

    again = app.test_client()
    used = again.get(path)
    assert used.status_code == 410 and "used already" in used.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(User)) == 2


def test_an_expired_or_unknown_link_is_refused_and_creates_nothing(app, client, account, monkeypatch):
    login(client, account.email)
    path = _invite(client, "late@acme.test")
    later = team_services.utcnow() + timedelta(hours=72, seconds=1)
    monkeypatch.setattr(team_services, "utcnow", lambda: later)
    invitee = app.test_client()
    response = invitee.get(path)
    assert response.status_code == 410 and "expired" in response.get_data(as_text=True)
    monkeypatch.undo()
    token = csrf_token(invitee, path)
    monkeypatch.setattr(team_services, "utcnow", lambda: later)
    response = invitee.post(path, data={"csrf_token": token, "password": NEW_PASSWORD, "password_again": NEW_PASSWORD})
    assert response.status_code == 410
    assert invitee.get("/invite/not-a-real-token").status_code == 404
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(User)) == 1


def test_a_weak_or_mismatched_password_keeps_the_link_usable(app, client, account):
    login(client, account.email)
    path = _invite(client, "weak@acme.test")
    invitee = app.test_client()
    response = _accept(invitee, path, "short")
    assert response.status_code == 400 and "at least 12 characters" in response.get_data(as_text=True)
    assert _accept(invitee, path).headers["Location"] == "/"


def test_a_revoked_invitation_link_no_longer_works(app, client, account):
    login(client, account.email)
    path = _invite(client, "gone@acme.test")
    with app.app_context():
        invitation_id = db.session.scalar(db.select(Invitation.id))
    token = csrf_token(client, "/team")
    client.post(f"/team/invitations/{invitation_id}/revoke", data={"csrf_token": token})
    assert app.test_client().get(path).status_code == 404


def test_inviting_someone_who_has_a_login_is_refused(client, account):
    login(client, account.email)
    token = csrf_token(client, "/team")
    response = client.post("/team/invite", data={"csrf_token": token, "email": account.email, "role": "admin"})
    assert response.status_code == 400 and "has a login already" in response.get_data(as_text=True)
    response = client.post("/team/invite", data={"csrf_token": token, "email": "x@acme.test", "role": "owner"})
    assert response.status_code == 400


def test_removing_a_user_ends_their_session(app, client, account):
    member_id = _add_user(app, account, "leaving@acme.test", Role.MEMBER)
    member = app.test_client()
    login(member, "leaving@acme.test")
    assert member.get("/history").status_code == 200
    login(client, account.email)
    response = client.post(f"/team/users/{member_id}/remove", data={"csrf_token": csrf_token(client, "/team")}, follow_redirects=True)
    assert "leaving@acme.test is removed" in response.get_data(as_text=True)
    assert member.get("/history").headers["Location"].startswith("/login")
    with app.app_context():
        assert db.session.get(User, member_id) is None


def test_demoting_an_admin_ends_their_sessions_and_their_admin_rights(app, client, account):
    admin_id = _add_user(app, account, "admin@acme.test", Role.ADMIN)
    admin = app.test_client()
    login(admin, "admin@acme.test")
    assert admin.get("/rules").status_code == 200
    login(client, account.email)
    client.post(f"/team/users/{admin_id}/role", data={"csrf_token": csrf_token(client, "/team"), "role": "member"})
    assert admin.get("/rules").headers["Location"].startswith("/login")
    login(admin, "admin@acme.test")
    assert admin.get("/rules").status_code == 403


def test_an_admin_cannot_remove_or_demote_the_owner_nor_change_themselves(app, client, account):
    _add_user(app, account, "admin@acme.test", Role.ADMIN)
    login(client, "admin@acme.test")
    token = csrf_token(client, "/team")
    for path, data in ((f"/team/users/{account.user_id}/remove", {}), (f"/team/users/{account.user_id}/role", {"role": "member"}),
                       (f"/team/users/{account.user_id}/make-owner", {})):
        page = client.post(path, data={"csrf_token": token, **data}, follow_redirects=True).get_data(as_text=True)
        assert "Nothing was changed" in page, path
    with app.app_context():
        admin = db.session.scalar(db.select(User).where(User.email == "admin@acme.test"))
        admin_id = admin.id
        assert db.session.get(User, account.user_id).role == "owner"
    page = client.post(f"/team/users/{admin_id}/role", data={"csrf_token": token, "role": "member"}, follow_redirects=True)
    assert "You cannot change your own role" in page.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(User, admin_id).role == "admin"


def test_the_owner_hands_ownership_on_and_stays_an_admin(app, client, account):
    admin_id = _add_user(app, account, "next@acme.test", Role.ADMIN)
    login(client, account.email)
    client.post(f"/team/users/{admin_id}/make-owner", data={"csrf_token": csrf_token(client, "/team")})
    with app.app_context():
        assert db.session.get(User, admin_id).role == "owner"
        assert db.session.get(User, account.user_id).role == "admin"
        owners = db.session.scalar(db.select(db.func.count()).select_from(User).where(User.role == "owner"))
        assert owners == 1


@pytest.mark.parametrize("role, expected", [(Role.OWNER, True), (Role.ADMIN, True), (Role.MEMBER, False)])
def test_roles_are_ordered(role, expected):
    assert role.at_least(Role.ADMIN) is expected
    assert role.at_least(Role.MEMBER)


def test_the_cli_makes_the_first_user_of_a_merchant_its_owner(app):
    runner = app.test_cli_runner()
    runner.invoke(args=["merchant", "create", "Fresh ApS"])
    with app.app_context():
        merchant_id = db.session.scalar(db.select(Merchant.id).where(Merchant.name == "Fresh ApS"))
    first = runner.invoke(args=["user", "create", "first@fresh.test", "--merchant", str(merchant_id), "--password", PASSWORD])
    second = runner.invoke(args=["user", "create", "second@fresh.test", "--merchant", str(merchant_id), "--password", PASSWORD])
    third = runner.invoke(args=["user", "create", "third@fresh.test", "--merchant", str(merchant_id), "--password", PASSWORD, "--admin"])
    assert "(owner)" in first.output and "(member)" in second.output and "(admin)" in third.output
