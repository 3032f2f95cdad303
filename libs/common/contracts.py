"""Types and protocols the services share. The router depends on these, never on
another service: the all-in-one wiring hands in the auth/ledger objects, the mesh
hands in HTTP/NATS clients that implement the same protocols."""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

USAGE_SUBJECT = "usage.v1"
AUTH_SUBJECT_PREFIX = "auth.v1."
REGISTRY_CHANGED_SUBJECT = "registry.v1.changed"
# each mesh router's provider health-check results, after every round (mesh_health.py)
ROUTER_HEALTH_SUBJECT = "router.v1.health"


BUDGET_PERIODS = ("day", "week", "month", "total")
SCOPE_KINDS = ("key", "user", "team")
ROLES = ("admin", "member", "viewer")


@dataclass(frozen=True, slots=True)
class Limits:
    """What one key, user or team may use: requests and tokens per minute, and
    a spend budget in USD over a period (calendar day, ISO week or month in
    UTC, or the whole lifetime)."""

    rpm: int | None = None
    tpm: int | None = None
    budget_usd: float | None = None
    budget_period: str = "month"

    @property
    def empty(self) -> bool:
        return self.rpm is None and self.tpm is None and self.budget_usd is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "rpm": self.rpm,
            "tpm": self.tpm,
            "budget_usd": self.budget_usd,
            "budget_period": self.budget_period,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Limits:
        data = data or {}
        budget = data.get("budget_usd")
        return cls(
            rpm=data.get("rpm"),
            tpm=data.get("tpm"),
            budget_usd=float(budget) if budget is not None else None,
            budget_period=str(data.get("budget_period") or "month"),
        )


@dataclass(frozen=True, slots=True)
class Scope:
    """One holder of limits a request counts against: the key, its user, its team."""

    kind: str  # key | user | team
    id: str
    limits: Limits

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "id": self.id, "limits": self.limits.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scope:
        return cls(str(data["kind"]), str(data["id"]), Limits.from_dict(data.get("limits")))


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What the router needs to know about a verified API key. ``scopes`` lists
    the key, its user and its team, each with its limits, in that order (only
    those with at least one limit set)."""

    id: str
    name: str
    user_id: str | None = None
    team_id: str | None = None
    models: tuple[str, ...] = ()
    expires_at: float | None = None
    revoked: bool = False
    is_admin: bool = False
    role: str = "member"
    scopes: tuple[Scope, ...] = ()
    disabled: bool = False  # the key's user is disabled: refused like a revoked key

    @property
    def rpm(self) -> int | None:
        """The key's own requests-per-minute limit."""
        for scope in self.scopes:
            if scope.kind == "key":
                return scope.limits.rpm
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "user_id": self.user_id,
            "team_id": self.team_id,
            "models": list(self.models),
            "expires_at": self.expires_at,
            "revoked": self.revoked,
            "is_admin": self.is_admin,
            "role": self.role,
            "scopes": [s.to_dict() for s in self.scopes],
            "disabled": self.disabled,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> KeyInfo:
        return cls(
            id=str(data["id"]),
            name=str(data.get("name", "")),
            user_id=data.get("user_id"),
            team_id=data.get("team_id"),
            models=tuple(data.get("models") or ()),
            expires_at=data.get("expires_at"),
            revoked=bool(data.get("revoked", False)),
            is_admin=bool(data.get("is_admin", False)),
            role=str(data.get("role") or "member"),
            scopes=tuple(Scope.from_dict(s) for s in data.get("scopes") or ()),
            disabled=bool(data.get("disabled", False)),
        )

    def expired(self, now: float | None = None) -> bool:
        return self.expires_at is not None and (now or time.time()) >= self.expires_at


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthEvent:
    """A lifecycle event of a user, team or key (``user.created``,
    ``team.member_added``, ``key.revoked``...), published by auth on
    ``auth.v1.<type>``. ``data`` is the object as the admin API shows it, never a
    secret: a key is named by its id and hint. Receivers dedupe on ``id``."""

    type: str
    data: dict[str, Any]
    actor: str | None = None
    id: str = field(default_factory=lambda: "evt_" + secrets.token_hex(12))
    ts: float = field(default_factory=time.time)
    v: int = 1

    @property
    def subject(self) -> str:
        return AUTH_SUBJECT_PREFIX + self.type

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "v": self.v,
                "id": self.id,
                "type": self.type,
                "ts": self.ts,
                "actor": self.actor,
                "data": self.data,
            }
        )

    @classmethod
    def from_json(cls, raw: bytes | str) -> AuthEvent:
        obj = orjson.loads(raw)
        if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
            raise ValueError("an auth event is a JSON object with a type")
        data = obj.get("data")
        return cls(
            type=obj["type"],
            data=data if isinstance(data, dict) else {},
            actor=obj.get("actor"),
            id=str(obj.get("id") or ""),
            ts=float(obj.get("ts") or 0.0),
            v=int(obj.get("v") or 1),
        )


class SpendSource(Protocol):
    """Recorded spend from the ledger, for budget displays and for rebuilding
    budget counters: the ledger service itself all-in-one, an HTTP client of
    the ledger's internal API in the mesh."""

    async def spend_since(self, kind: str, id: str, since: float) -> float:
        """USD recorded for the key, user or team ``id`` (``kind`` one of
        SCOPE_KINDS) in requests at or after ``since`` (epoch seconds)."""

    async def spend_by_scope(
        self, since_by_period: dict[str, float]
    ) -> dict[tuple[str, str, str], float]:
        """Spend of every key, user and team with any, per budget period:
        ``{(kind, id, period): usd}`` where each period counts from
        ``since_by_period[period]``."""


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
    team_id: str | None = None
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
