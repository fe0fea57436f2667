"""Encryption at rest for merchants' API secrets.

Values are encrypted with Fernet (AES-128-CBC + HMAC-SHA256) through `MultiFernet`, so keys can be
rotated: the first configured key encrypts, every configured key decrypts, and `rotate` re-encrypts
a token under the first key.
"""

from __future__ import annotations

import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import current_app
from sqlalchemy import String
from sqlalchemy.types import TypeDecorator


class SecretBox:
    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise ValueError("At least one encryption key is required (ENCRYPTION_KEYS).")
        self._fernet = MultiFernet([Fernet(k.encode()) for k in keys])

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise ValueError(
                "A stored secret cannot be decrypted with the configured ENCRYPTION_KEYS."
            ) from exc

    def rotate(self, token: str) -> str:
        return self._fernet.rotate(token.encode()).decode()


def secret_box() -> SecretBox:
    return current_app.extensions["secret_box"]


class EncryptedString(TypeDecorator):
    """A column holding a Fernet token; Python code only ever sees the plaintext."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None or value == "":
            return None
        return secret_box().encrypt(value)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return secret_box().decrypt(value)


def secret_digest(secret: str) -> str:
    """What is stored of a one-time secret handed to a person (an invitation link's token, an install state): its
    SHA-256, so the database never holds the secret itself. Random secrets need no salt or slow hash."""
    return hashlib.sha256(secret.encode()).hexdigest()
