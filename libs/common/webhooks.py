"""Standard Webhooks signing (standardwebhooks.com): what a receiver verifies
with any published library. The signed content is ``"{id}.{timestamp}.{body}"``;
the signature is ``v1,<base64 HMAC-SHA256>`` under the secret's bytes; the
secret is written ``whsec_<base64>``. Pure functions, no I/O."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    """A fresh ``whsec_`` secret (24 random bytes, as the spec's examples use)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode("ascii")


def secret_bytes(secret: str) -> bytes:
    """The key bytes of a ``whsec_<base64>`` secret; ValueError when malformed."""
    raw = secret.strip().removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a webhook secret is 'whsec_' followed by base64") from None
    if len(key) < 16:
        raise ValueError("a webhook secret needs at least 16 bytes of key")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_bytes(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signed_headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
        "content-type": "application/json",
    }


def verify(secret: str, headers: dict[str, str], body: bytes, *, tolerance: int = 300) -> bool:
    """Check a delivery's signature (for receivers written against this module,
    such as the RAG sync example); rejects timestamps off by more than
    ``tolerance`` seconds, so a captured request cannot be replayed later."""
    import time

    msg_id = headers.get("webhook-id", "")
    stamp = headers.get("webhook-timestamp", "")
    given = headers.get("webhook-signature", "")
    try:
        ts = int(stamp)
    except ValueError:
        return False
    if not msg_id or abs(time.time() - ts) > tolerance:
        return False
    expected = sign(secret, msg_id, ts, body).encode()
    return any(
        hmac.compare_digest(part.encode(), expected)
        for part in given.split()
        if part.startswith("v1,")
    )
