"""`flask merchant …` and `flask user …` commands for operators."""

from __future__ import annotations

import click
from flask.cli import AppGroup
from sqlalchemy import select

from ..extensions import db
from ..audit import acting_as
from ..models import Merchant, Role, User
from .services import AccountError, generate_password, merchant_create, user_create, user_get_by_email, user_set_password

merchant_cli = AppGroup("merchant", help="Create and list merchants (tenants).")
user_cli = AppGroup("user", help="Create users and reset their passwords.")

password_option = click.option(
    "--password",
    envvar="PORTAL_NEW_PASSWORD",
    default=None,
    help="The password to set (or PORTAL_NEW_PASSWORD). Left out, a strong one is generated and printed once.",
)


def _fail(error: AccountError) -> None:
    db.session.rollback()
    raise click.ClickException(str(error))


@merchant_cli.command("create")
@click.argument("name")
def merchant_create_command(name: str) -> None:
    """Create a merchant called NAME."""
    try:
        merchant = merchant_create(name)
        db.session.commit()
    except AccountError as error:
        _fail(error)
    click.echo(f"Created merchant {merchant.id}: {merchant.name}")


@merchant_cli.command("list")
def merchant_list_command() -> None:
    """List merchants with their ids."""
    for merchant in db.session.scalars(select(Merchant).order_by(Merchant.id)):
        click.echo(f"{merchant.id}\t{merchant.name}\t{len(merchant.users)} user(s)")


@user_cli.command("create")
@click.argument("email")
@click.option("--merchant", "merchant_id", type=int, required=True, help="Id of the merchant the user belongs to.")
@click.option("--admin/--no-admin", default=False, help="Make the user an admin (the merchant's first user is its owner).")
@password_option
def user_create_command(email: str, merchant_id: int, admin: bool, password: str | None) -> None:
    """Create a user with EMAIL for a merchant: its first user is the owner, later ones admins or members."""
    merchant = db.session.get(Merchant, merchant_id)
    if merchant is None:
        raise click.ClickException(f"No merchant has the id {merchant_id}.")
    has_users = db.session.scalar(select(User.id).where(User.merchant_id == merchant_id).limit(1)) is not None
    role = Role.OWNER if not has_users else Role.ADMIN if admin else Role.MEMBER
    generated = None if password else generate_password()
    try:
        with acting_as("command line"):
            user = user_create(merchant, email, password or generated, role=role)
            db.session.commit()
    except AccountError as error:
        _fail(error)
    click.echo(f"Created user {user.email} ({role.label.lower()}) for merchant {merchant.name}.")
    if generated:
        click.echo(f"Password (shown once): {generated}")


@user_cli.command("reset-password")
@click.argument("email")
@password_option
def user_reset_password_command(email: str, password: str | None) -> None:
    """Set a new password for the user with EMAIL."""
    user = user_get_by_email(email)
    if user is None:
        raise click.ClickException(f"No user has the e-mail {email}.")
    generated = None if password else generate_password()
    try:
        with acting_as("command line"):
            user_set_password(user, password or generated)
            db.session.commit()
    except AccountError as error:
        _fail(error)
    click.echo(f"Password reset for {user.email}; their sessions are signed out.")
    if generated:
        click.echo(f"New password (shown once): {generated}")
