"""Ed25519 signatures over canonical JSON, for marketplace listings.

A registry signs what it publishes with its own key; anyone holding the public
key can check that a listing is the publisher's, byte for byte, however many
registries relayed it. The canonical form is JSON with sorted keys and no
insignificant whitespace (orjson), so signer and verifier agree on the bytes.
A registry's id is derived from its public key, so an id cannot be claimed by
another key."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

REGISTRY_ID_PREFIX = "reg_"


def canonical(payload: Any) -> bytes:
    """The bytes that are signed: sorted keys, compact, UTF-8."""
    return orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def registry_id(public_key: str) -> str:
    """A short, self-certifying id: the hash of the public key."""
    return REGISTRY_ID_PREFIX + hashlib.sha256(_unb64(public_key)).hexdigest()[:16]


class SigningKey:
    """A registry's Ed25519 key pair."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_private(cls, text: str) -> SigningKey:
        """From ``private_text()`` (the raw 32-byte seed, base64url)."""
        return cls(Ed25519PrivateKey.from_private_bytes(_unb64(text)))

    def private_text(self) -> str:
        raw = self._private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        return _b64(raw)

    @property
    def public_key(self) -> str:
        raw = self._private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return _b64(raw)

    @property
    def registry_id(self) -> str:
        return registry_id(self.public_key)

    def sign(self, payload: Any) -> str:
        return _b64(self._private.sign(canonical(payload)))

    def __repr__(self) -> str:
        return f"SigningKey(public_key={self.public_key!r})"


def verify(public_key: str, payload: Any, signature: str) -> bool:
    """True only when ``signature`` is ``public_key``'s over exactly ``payload``."""
    try:
        key = Ed25519PublicKey.from_public_bytes(_unb64(public_key))
        key.verify(_unb64(signature), canonical(payload))
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True
