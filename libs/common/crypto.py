"""Secrets derived from GATEWAY_SECRET_KEY: the key that encrypts provider
credentials at rest (and in transit from registry to routers), and the token the
mesh services present to each other on their internal endpoints."""

from __future__ import annotations

import base64
import hashlib
import hmac

from cryptography.fernet import Fernet, InvalidToken

SERVICE_TOKEN_PREFIX = "tgs-"


class SecretError(Exception):
    """A missing secret key, or a value it cannot decrypt."""


def _material(secret_key: str, purpose: str) -> bytes:
    if not secret_key:
        raise SecretError("GATEWAY_SECRET_KEY is not set")
    return hmac.new(secret_key.encode("utf-8"), purpose.encode("ascii"), hashlib.sha256).digest()


class CredentialBox:
    """Authenticated encryption (Fernet: AES-128-CBC + HMAC-SHA256) of provider
    credentials. Every ciphertext is bound to the secret key; rotating the key
    means re-entering the credentials."""

    def __init__(self, secret_key: str) -> None:
        key = base64.urlsafe_b64encode(_material(secret_key, "tokgateway/credentials/v1"))
        self._fernet = Fernet(key)

    def seal(self, plaintext: str) -> str:
        if not plaintext:
            return ""
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def open(self, token: str) -> str:
        if not token:
            return ""
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, ValueError):
            raise SecretError(
                "cannot decrypt a stored credential: was GATEWAY_SECRET_KEY changed?"
            ) from None


def service_token(secret_key: str) -> str:
    """The bearer token mesh services accept from each other."""
    return SERVICE_TOKEN_PREFIX + _material(secret_key, "tokgateway/service-token/v1").hex()


def token_matches(given: str | None, expected: str) -> bool:
    return bool(given) and hmac.compare_digest(str(given), expected)
