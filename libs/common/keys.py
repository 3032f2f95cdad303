"""API key material: generation and hashing. Keys are stored only as hashes;
they carry 240 bits of randomness, so a plain SHA-256 is the right hash."""

from __future__ import annotations

import hashlib
import secrets

KEY_PREFIX = "tgk-"
ADMIN_PREFIX = "tga-"


def new_key(admin: bool = False) -> str:
    return (ADMIN_PREFIX if admin else KEY_PREFIX) + secrets.token_urlsafe(30)


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def key_hint(key: str) -> str:
    """What may be shown of a key after creation."""
    return f"{key[:8]}…{key[-4:]}"


def bearer_token(authorization: str | None, x_api_key: str | None) -> str | None:
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    if x_api_key and x_api_key.strip():
        return x_api_key.strip()
    return None
