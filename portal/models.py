"""Database models. Every row that belongs to a merchant carries `merchant_id`; queries scope by it."""

from __future__ import annotations

import secrets
from datetime import datetime, timezone

from flask_login import UserMixin
from sqlalchemy import DateTime, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .crypto import EncryptedString
from .extensions import db


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def new_webhook_key() -> str:
    return "whk_" + secrets.token_urlsafe(24)


class Merchant(db.Model):
    """A tenant: one business whose Stripe account is synced into one e-conomic agreement."""

    __tablename__ = "merchants"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # The unguessable part of this merchant's webhook URL (ids are sequential, so never used there).
    webhook_key: Mapped[str] = mapped_column(String(64), unique=True, default=new_webhook_key)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    users: Mapped[list[User]] = relationship(back_populates="merchant")
    connection: Mapped[Connection | None] = relationship(back_populates="merchant", uselist=False)


class User(UserMixin, db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    merchant: Mapped[Merchant] = relationship(back_populates="users")


class Connection(db.Model):
    """A merchant's credentials for Stripe and e-conomic, encrypted at rest."""

    __tablename__ = "connections"

    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"), unique=True)
    stripe_secret_key: Mapped[str | None] = mapped_column(EncryptedString(1024))
    stripe_webhook_secret: Mapped[str | None] = mapped_column(EncryptedString(1024))
    economic_app_secret_token: Mapped[str | None] = mapped_column(EncryptedString(1024))
    economic_agreement_grant_token: Mapped[str | None] = mapped_column(EncryptedString(1024))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    merchant: Mapped[Merchant] = relationship(back_populates="connection")

    SECRET_FIELDS = (
        "stripe_secret_key",
        "stripe_webhook_secret",
        "economic_app_secret_token",
        "economic_agreement_grant_token",
    )


class WebhookEvent(db.Model):
    """A Stripe event whose signature checked out, stored before Stripe gets its 2xx."""

    __tablename__ = "webhook_events"
    __table_args__ = (db.UniqueConstraint("merchant_id", "stripe_event_id", name="uq_webhook_events_merchant_event"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"), index=True)
    stripe_event_id: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(100))
    livemode: Mapped[bool] = mapped_column(default=False)
    api_version: Mapped[str | None] = mapped_column(String(40))
    stripe_created_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    stripe_invoice_id: Mapped[str | None] = mapped_column(String(255), index=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    payload: Mapped[str] = mapped_column(db.Text)
