"""Types and protocols the services share. The router depends on these, never on
another service: the all-in-one wiring hands in the auth/ledger objects, the mesh
hands in HTTP/NATS clients that implement the same protocols."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import orjson

USAGE_SUBJECT = "usage.v1"
AUTH_SUBJECT_PREFIX = "auth.v1."
KEY_REVOKED_SUBJECT = "auth.v1.key.revoked"
KEY_CREATED_SUBJECT = "auth.v1.key.created"
REGISTRY_CHANGED_SUBJECT = "registry.v1.changed"


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What the router needs to know about a verified API key."""

    id: str
    name: str
    user_id: str | None = None
    models: tuple[str, ...] = ()
    expires_at: float | None = None
    revoked: bool = False
    rpm: int | None = None
    is_admin: bool = False

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["models"] = list(self.models)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> KeyInfo:
        return cls(
            id=str(data["id"]),
            name=str(data.get("name", "")),
            user_id=data.get("user_id"),
            models=tuple(data.get("models") or ()),
            expires_at=data.get("expires_at"),
            revoked=bool(data.get("revoked", False)),
            rpm=data.get("rpm"),
            is_admin=bool(data.get("is_admin", False)),
        )

    def expired(self, now: float | None = None) -> bool:
        return self.expires_at is not None and (now or time.time()) >= self.expires_at


class KeyVerifier(Protocol):
    async def verify(self, key_hash: str) -> KeyInfo | None:
        """The key with this hash, or None when no such key exists."""


@dataclass(slots=True, kw_only=True)
class UsageEvent:
    """One settled request: the ledger row and the access-log line."""

    v: int = 1
    request_id: str
    ts: float
    key_id: str | None
    user_id: str | None = None
    route: str
    model: str
    provider: str | None = None
    upstream_model: str | None = None
    stream: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    usage_estimated: bool = False
    cost_usd: float = 0.0
    status: int = 200
    error_class: str | None = None
    error: str | None = None
    latency_ms: float = 0.0
    upstream_ms: float | None = None
    ttft_ms: float | None = None
    overhead_ms: float | None = None
    attempts: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> bytes:
        return orjson.dumps(self, option=orjson.OPT_SERIALIZE_DATACLASS)

    @classmethod
    def from_json(cls, raw: bytes | str) -> UsageEvent:
        data = orjson.loads(raw)
        if not isinstance(data, dict):
            raise TypeError("a usage event is a JSON object")
        fields = cls.__dataclass_fields__
        if data.keys() <= fields.keys():
            return cls(**data)
        return cls(**{k: v for k, v in data.items() if k in fields})


BusHandler = Callable[[str, bytes], Awaitable[None] | None]


class Bus(Protocol):
    async def publish(self, subject: str, payload: bytes) -> None: ...

    def publish_nowait(self, subject: str, payload: bytes) -> None:
        """Hand an event over without waiting; never blocks a response."""

    def subscribe(self, subject: str, handler: BusHandler) -> None:
        """Call handler for every message whose subject equals or starts with
        ``subject`` when it ends with '.' or '>'."""
