"""Provisioning hooks: every lifecycle event auth emits reaches the webhooks
and scripts whose event globs match it, signed (Standard Webhooks) and
retried, never as part of the admin call that caused it.

``Hooks`` turns an event into one delivery row per matching hook (idempotent
on the event id, so redelivery from the bus is harmless) and sends due
deliveries: 2xx (or exit code 0) delivers; 5xx, 429, 408, timeouts and
connection errors (or a failing script) retry with exponential backoff and
jitter; other 4xx and the last allowed attempt dead-letter. Receivers dedupe
on ``webhook-id`` (the event id), which stays the same across retries."""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
import os
import random
import re
import shlex
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import httpx

from tokgateway.auth.hook_store import DEAD, DELIVERED, PENDING, Delivery, HookStore
from tokgateway.auth.outbox import Outbox
from tokgateway.common.contracts import AuthEvent
from tokgateway.common.crypto import CredentialBox, SecretError
from tokgateway.common.errors import BadRequest, NotFound
from tokgateway.common.settings import HOOK_KINDS, HookConfig, Settings, parse_event_globs
from tokgateway.common.webhooks import new_secret, secret_bytes, signed_headers

log = logging.getLogger("tokgateway.hooks")

RETRY_STATUSES = frozenset({408, 429})
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
SINKS_REFRESH = 1.0  # seconds between reloads of the hooks added through the API
CLAIM_BATCH = 32
ERROR_CHARS = 500


def matches(globs: tuple[str, ...], event_type: str) -> bool:
    return any(fnmatch.fnmatchcase(event_type, g) for g in globs)


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryPolicy:
    max_attempts: int = 8
    backoff_s: float = 1.0
    backoff_max_s: float = 600.0
    timeout_s: float = 10.0

    @classmethod
    def from_settings(cls, settings: Settings) -> DeliveryPolicy:
        return cls(
            max_attempts=max(1, int(settings.get("hooks.max_attempts"))),
            backoff_s=float(settings.get("hooks.backoff_s")),
            backoff_max_s=float(settings.get("hooks.backoff_max_s")),
            timeout_s=float(settings.get("hooks.timeout_s")),
        )

    def delay(self, attempts: int, retry_after: float | None = None) -> float:
        """Exponential in the attempts made, with jitter (half to all of it), so
        receivers coming back are not hit by every delivery at once."""
        base = min(self.backoff_max_s, self.backoff_s * 2.0 ** max(0, attempts - 1))
        delay = base * (0.5 + random.random() / 2)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.backoff_max_s))
        return delay

    def lease(self, hook: HookConfig) -> float:
        """How long a claimed delivery stays someone's: past its timeout, so a
        slow send is not taken over, and not much longer, so the delivery of a
        killed deliverer is soon due again."""
        return (hook.timeout_s or self.timeout_s) * 1.5 + 2.0


@dataclass(frozen=True, slots=True)
class SendResult:
    ok: bool
    retry: bool
    status: int | None = None  # HTTP status, or a script's exit code
    error: str | None = None
    retry_after: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "retry": self.retry, "status": self.status, "error": self.error}


class Sender:
    """Sends one event to one hook: a signed POST, or a script run."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.client = httpx.AsyncClient(follow_redirects=False)

    async def send(
        self, hook: HookConfig, event_id: str, event_type: str, body: bytes
    ) -> SendResult:
        if hook.kind == "webhook":
            return await self._webhook(hook, event_id, body)
        return await self._script(hook, event_id, event_type, body)

    async def _webhook(self, hook: HookConfig, event_id: str, body: bytes) -> SendResult:
        headers = signed_headers(hook.secret, event_id, int(time.time()), body)
        headers["user-agent"] = "tokgateway-hooks/1"
        try:
            resp = await self.client.post(
                hook.url, content=body, headers=headers, timeout=hook.timeout_s or self.timeout_s
            )
        except httpx.TimeoutException:
            return SendResult(False, True, None, "timeout")
        except httpx.HTTPError as exc:
            return SendResult(False, True, None, f"{type(exc).__name__}: {exc}"[:ERROR_CHARS])
        if 200 <= resp.status_code < 300:
            return SendResult(True, False, resp.status_code)
        retry = resp.status_code >= 500 or resp.status_code in RETRY_STATUSES
        error = f"HTTP {resp.status_code}: {resp.text[:200]}"
        if not retry:
            error += " (not retried)"
        return SendResult(False, retry, resp.status_code, error, _retry_after(resp))

    async def _script(
        self, hook: HookConfig, event_id: str, event_type: str, body: bytes
    ) -> SendResult:
        env = {**os.environ, "GATEWAY_EVENT_TYPE": event_type, "GATEWAY_EVENT_ID": event_id}
        timeout = hook.timeout_s or self.timeout_s
        try:
            proc = await asyncio.create_subprocess_exec(
                *shlex.split(hook.command),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            return SendResult(False, True, None, f"cannot start: {exc}"[:ERROR_CHARS])
        try:
            _, err = await asyncio.wait_for(proc.communicate(body), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
            await proc.wait()
            return SendResult(False, True, None, f"timeout after {timeout:g} s (killed)")
        code = proc.returncode if proc.returncode is not None else -1
        if code == 0:
            return SendResult(True, False, 0)
        tail = err.decode("utf-8", "replace").strip()[-300:]
        return SendResult(False, True, code, f"exit code {code}: {tail}"[:ERROR_CHARS])

    async def close(self) -> None:
        await self.client.aclose()


def _retry_after(resp: httpx.Response) -> float | None:
    raw = resp.headers.get("retry-after")
    try:
        return float(raw) if raw else None
    except ValueError:
        return None


class Hooks:
    """The hooks of one gateway (from ``[hook.NAME]`` sections and from the
    admin API) and their deliveries."""

    def __init__(
        self,
        store: HookStore,
        configured: Mapping[str, HookConfig],
        policy: DeliveryPolicy,
        *,
        outbox: Outbox | None = None,
        secret_key: str = "",
        api_scripts: bool = False,
    ) -> None:
        self.store = store
        # An admin key must not become a shell on the host unless the operator says so.
        self.api_scripts = api_scripts
        self.configured = dict(configured)
        self.policy = policy
        self.outbox = outbox
        self.box = CredentialBox(secret_key) if secret_key else None
        self.sender = Sender(policy.timeout_s)
        self._stored: dict[str, HookConfig] = {}
        self._loaded_at = 0.0
        self._wake = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()
        self.delivered = 0
        self.failed_attempts = 0
        self.dead = 0

    async def migrate(self) -> None:
        await self.store.migrate()

    async def close(self) -> None:
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
        await self.sender.close()

    # -- sinks ----------------------------------------------------------------------
    async def sinks(self, fresh: bool = False) -> dict[str, HookConfig]:
        """Configured hooks, and those added through the API (reloaded at most
        every ``SINKS_REFRESH`` s, so every worker and replica sees changes)."""
        now = time.monotonic()
        if fresh or now - self._loaded_at > SINKS_REFRESH:
            loaded: dict[str, HookConfig] = {}
            for stored in await self.store.list_hooks():
                try:
                    secret = self._open(stored.stored_secret, stored.config.secret_env)
                except SecretError as exc:
                    log.error(
                        "hook secret unusable", extra={"hook": stored.config.name, "err": str(exc)}
                    )
                    continue
                loaded[stored.config.name] = replace(stored.config, secret=secret)
            self._stored = loaded
            self._loaded_at = now
        return {**self._stored, **self.configured}

    def _open(self, stored: str, secret_env: str) -> str:
        if secret_env:
            return os.environ.get(secret_env, "")
        if stored.startswith("sealed:"):
            if self.box is None:
                raise SecretError("the hook's secret is sealed but GATEWAY_SECRET_KEY is not set")
            return self.box.open(stored.removeprefix("sealed:"))
        return stored

    # -- intake -----------------------------------------------------------------------
    async def accept(self, event: AuthEvent) -> int:
        """One pending delivery per enabled hook matching the event; returns the
        number of new ones (0 for an event seen before)."""
        names = [
            n
            for n, h in (await self.sinks()).items()
            if h.enabled and matches(h.events, event.type)
        ]
        if not names:
            return 0
        new = await self.store.accept(event, names)
        if new:
            self._wake.set()
        return new

    def wake(self) -> None:
        self._wake.set()

    # -- delivery ---------------------------------------------------------------------
    async def deliver_due(self) -> int:
        """Claim the due deliveries and send them concurrently; returns how many."""
        sinks = await self.sinks()
        lease = max((self.policy.lease(h) for h in sinks.values()), default=20.0)
        batch = await self.store.claim(time.time(), lease, CLAIM_BATCH)
        if batch:
            await asyncio.gather(*(self._deliver(d, sinks.get(d.hook)) for d in batch))
        return len(batch)

    async def _deliver(self, d: Delivery, hook: HookConfig | None) -> None:
        if hook is None or not hook.enabled:
            await self.store.record(
                d, state=DEAD, next_at=time.time(), status=None, error="hook removed or disabled"
            )
            return
        result = await self.sender.send(hook, d.event_id, d.type, d.body)
        if result.ok:
            self.delivered += 1
            await self.store.record(
                d, state=DELIVERED, next_at=time.time(), status=result.status, error=None
            )
            return
        self.failed_attempts += 1
        give_up = not result.retry or d.attempts >= self.policy.max_attempts
        state = DEAD if give_up else PENDING
        next_at = time.time() + (
            0 if give_up else self.policy.delay(d.attempts, result.retry_after)
        )
        if give_up:
            self.dead += 1
            log.warning(
                "hook delivery dead-lettered",
                extra={"hook": d.hook, "event_id": d.event_id, "attempts": d.attempts},
            )
        await self.store.record(
            d, state=state, next_at=next_at, status=result.status, error=result.error
        )

    async def run(self, idle: float = 0.25) -> None:
        """Deliver until cancelled; wakes at once for new events."""
        while True:
            try:
                sent = await self.deliver_due()
            except Exception:  # a database outage: try again on the next tick
                log.exception("hook delivery pass failed")
                sent = 0
            if sent:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), idle)

    # -- admin operations -----------------------------------------------------------
    async def add(self, params: dict[str, Any]) -> tuple[HookConfig, str | None]:
        """Store a hook; returns it and, when the gateway generated the webhook
        secret, that secret (shown once)."""
        hook, secret = parse_hook(params)
        if hook.kind == "script" and not self.api_scripts:
            raise BadRequest(
                "Script hooks run commands on the gateway's host: define them in a [hook.NAME]"
                " section, or set [hooks] api_scripts = true.",
                param="kind",
            )
        if hook.name in self.configured:
            raise BadRequest(
                f"Hook {hook.name!r} is defined in the configuration files; change it there.",
                param="name",
            )
        generated = None
        if hook.kind == "webhook" and not hook.secret_env and not secret:
            secret = generated = new_secret()
        stored = ""
        if secret:
            stored = "sealed:" + self.box.seal(secret) if self.box is not None else secret
        await self.store.put_hook(hook, stored)
        await self.sinks(fresh=True)
        return replace(hook, secret=secret), generated

    async def remove(self, name: str) -> None:
        if name in self.configured:
            raise BadRequest(f"Hook {name!r} is defined in the configuration files.", param="name")
        if not await self.store.delete_hook(name):
            raise NotFound(f"No hook named {name!r}.", code="hook_not_found")
        await self.sinks(fresh=True)

    async def listing(self) -> list[dict[str, Any]]:
        out = []
        for name, hook in sorted((await self.sinks(fresh=True)).items()):
            out.append({**public(hook), "source": "config" if name in self.configured else "api"})
        return out

    async def test(self, name: str) -> SendResult:
        """Send a ``hook.test`` event to one hook now, outside the delivery log."""
        hook = (await self.sinks(fresh=True)).get(name)
        if hook is None:
            raise NotFound(f"No hook named {name!r}.", code="hook_not_found")
        event = AuthEvent(type="hook.test", data={"hook": name}, actor="admin")
        return await self.sender.send(hook, event.id, event.type, event.to_json())

    async def log(
        self, *, failed: bool = False, limit: int = 100, event_id: str | None = None
    ) -> list[dict[str, Any]]:
        return await self.store.log(failed=failed, limit=limit, event_id=event_id)

    async def replay(self, event_id: str) -> int:
        """Send an event again to every hook it went to (or, when it went to
        none, to the hooks that match it now); returns the deliveries queued."""
        queued = await self.store.requeue(event_id)
        if queued == 0 and self.outbox is not None:
            event = await self.outbox.by_id(event_id)
            if event is not None:
                queued = await self.accept(event)
        if queued == 0:
            raise NotFound(f"No event {event_id!r} to replay.", code="event_not_found")
        self._wake.set()
        return queued


def public(hook: HookConfig) -> dict[str, Any]:
    """What the API shows of a hook: never its secret."""
    return {
        "name": hook.name,
        "kind": hook.kind,
        "events": list(hook.events),
        "url": hook.url or None,
        "secret_env": hook.secret_env or None,
        "command": hook.command or None,
        "timeout_s": hook.timeout_s,
        "enabled": hook.enabled,
    }


def parse_hook(data: dict[str, Any]) -> tuple[HookConfig, str]:
    """A hook from an admin API body; returns it and the secret it was given."""

    def text(key: str) -> str:
        value = data.get(key) or ""
        if not isinstance(value, str):
            raise BadRequest(f"'{key}' must be a string.", param=key)
        return value.strip()

    name = text("name")
    if not NAME_RE.match(name):
        raise BadRequest("'name': letters, digits, '.', '_' or '-' (at most 64).", param="name")
    kind = text("kind")
    if kind not in HOOK_KINDS:
        raise BadRequest(f"'kind' must be one of {', '.join(HOOK_KINDS)}.", param="kind")
    raw_events = data.get("events")
    if isinstance(raw_events, list):
        events = tuple(str(e).strip() for e in raw_events if str(e).strip())
    else:
        events = parse_event_globs(text("events"))
    if not events:
        raise BadRequest("'events': at least one glob, e.g. 'key.*'.", param="events")
    timeout = data.get("timeout_s")
    if timeout is not None and (not isinstance(timeout, int | float) or timeout <= 0):
        raise BadRequest("'timeout_s' must be a positive number.", param="timeout_s")
    secret, secret_env, url, command = (
        text("secret"),
        text("secret_env"),
        text("url"),
        text("command"),
    )
    if kind == "webhook":
        if not url.startswith(("http://", "https://")):
            raise BadRequest("'url' must be an http:// or https:// URL.", param="url")
        if secret:
            try:
                secret_bytes(secret)
            except ValueError as exc:
                raise BadRequest(f"'secret': {exc}.", param="secret") from None
    elif not command:
        raise BadRequest("'command' is required for a script hook.", param="command")
    hook = HookConfig(
        name=name,
        kind=kind,
        events=events,
        url=url,
        secret_env=secret_env,
        command=command,
        timeout_s=float(timeout) if timeout is not None else None,
        enabled=bool(data.get("enabled", True)),
    )
    return hook, secret
