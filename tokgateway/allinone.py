"""All-in-one wiring: every service built in one process, joined by direct calls
and the in-process bus, served on one port, their lifespans entered here."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import secrets
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TextIO

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp

from tokgateway import runfiles
from tokgateway.allinone_events import OutboxPump
from tokgateway.auth.admin_api import AuthAdminAPI
from tokgateway.auth.hook_store import HookStore, SQLiteHookStore
from tokgateway.auth.hooks import DeliveryPolicy, Hooks
from tokgateway.auth.hooks_api import HooksAdminAPI
from tokgateway.auth.outbox import Outbox
from tokgateway.auth.service import AuthService
from tokgateway.common.bus import InProcessBus
from tokgateway.common.contracts import REGISTRY_CHANGED_SUBJECT
from tokgateway.common.crypto import CredentialBox
from tokgateway.common.errors import GatewayError, NotFound
from tokgateway.common.http import AdminGuard, FastRoutes, error_response
from tokgateway.common.metrics import RouterMetrics
from tokgateway.common.settings import ConfigError, Settings, load_settings
from tokgateway.common.sqlite import SQLiteDB
from tokgateway.common.tracing import TraceMiddleware, Tracing
from tokgateway.config_api import config_routes
from tokgateway.ledger.service import LedgerAdminAPI, LedgerService
from tokgateway.market_minter import AuthMinter
from tokgateway.registry.market_store import SQLiteMarketStore
from tokgateway.registry.marketplace import Marketplace
from tokgateway.registry.openapi import routes as openapi_routes
from tokgateway.registry.service import RegistryAdminAPI, RegistryService
from tokgateway.registry.store_sqlite import SQLiteRegistryStore
from tokgateway.router.governor import Governor, LocalGovernor
from tokgateway.router.governor_sqlite import SQLiteGovernor, reset_counters
from tokgateway.router.providers.options import ClientOptions
from tokgateway.router.providers.proxy import proxies_from_env
from tokgateway.router.service import RouterOptions, RouterService
from tokgateway.ui import ui_routes

log = logging.getLogger("tokgateway")

CONTROL_TOKEN_FILE = "control.token"
DB_FILE = "gateway.db"
SECRET_KEY_FILE = "secret.key"


def local_secret_key(settings: Settings) -> str:
    """GATEWAY_SECRET_KEY, or a key made once for this data dir (mode 0600):
    provider credentials added through the admin API are stored sealed in the
    SQLite file, never in clear."""
    configured = str(settings.get("gateway.secret_key"))
    if configured:
        return configured
    path = settings.data_dir / SECRET_KEY_FILE
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32))
    return path.read_text().strip()


def registry_service(settings: Settings, bus: InProcessBus) -> RegistryService:
    """The all-in-one registry: on the shared SQLite file, credentials sealed."""
    store = SQLiteRegistryStore(SQLiteDB(settings.data_dir / DB_FILE))
    return RegistryService(
        settings, bus, store=store, box=CredentialBox(local_secret_key(settings))
    )


def hooks_service(settings: Settings, store: HookStore, outbox: Outbox | None) -> Hooks:
    """The all-in-one hooks: the ``[hook.NAME]`` sections and those the API
    stored in ``store``, delivered as the ``[hooks]`` settings say."""
    return Hooks(
        store,
        settings.hooks,
        DeliveryPolicy.from_settings(settings),
        outbox=outbox,
        secret_key=str(settings.get("gateway.secret_key")),
        api_scripts=bool(settings.get("hooks.api_scripts")),
    )


def client_options(settings: Settings) -> ClientOptions:
    """The upstream client's settings; a malformed proxy variable stops the start."""
    try:
        proxies = proxies_from_env(settings.proxy_env)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return ClientOptions(
        keepalive=float(settings.get("gateway.upstream_keepalive")),
        pool_timeout=float(settings.get("gateway.upstream_pool_timeout")),
        max_body=int(settings.get("gateway.upstream_max_body_mb")) << 20,
        max_event=int(settings.get("gateway.upstream_max_event_mb")) << 20,
        happy_eyeballs_delay=float(settings.get("gateway.upstream_happy_eyeballs_ms")) / 1000,
        proxies=proxies,
        networks={name: p.network for name, p in settings.providers.items()},
    )


def router_options(settings: Settings) -> RouterOptions:
    return RouterOptions(
        max_body_bytes=int(settings.get("gateway.max_body_mb")) << 20,
        connect_timeout=float(settings.get("gateway.connect_timeout")),
        read_timeout=float(settings.get("gateway.upstream_timeout")),
        max_connections=int(settings.get("gateway.upstream_max_connections")),
        key_cache_ttl=float(settings.get("gateway.key_cache_ttl")),
        access_log=bool(settings.get("gateway.access_log")),
        work_mode=str(settings.get("gateway.work_mode")),
        default_max_tokens=int(settings.get("gateway.default_max_tokens")),
        health_check_s=float(settings.get("gateway.health_check_s")),
        client=client_options(settings),
    )


def write_control_token(data_dir: Path) -> str:
    token = "tgc-" + secrets.token_urlsafe(30)
    path = data_dir / CONTROL_TOKEN_FILE
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token)
    return token


def banner(settings: Settings, providers: list[str], admin_key: str | None) -> str:
    url = f"http://{settings.host}:{settings.port}"
    workers = int(settings.get("gateway.workers"))
    lines = [
        f"Tokligence Gateway (all-in-one, env {settings.env}"
        + (f", {workers} workers" if workers > 1 else "")
        + f") on {url}",
        f"  state: {settings.data_dir.resolve()} ({DB_FILE}, pid, port, log and control token)",
        "  config: "
        + (
            ", ".join(str(f.resolve()) for f in settings.files)
            or f"built-in defaults (no setting.ini in {settings.config_dir.resolve()})"
        ),
        f"  providers: {', '.join(providers)}",
        f"  OpenAI base_url: {url}/v1    Anthropic base_url: {url}",
    ]
    lines += [f"  warning: {w}" for w in settings.warnings()]
    if admin_key:
        lines += [
            "",
            "  Admin key (shown once, store it now):",
            f"    {admin_key}",
            "  Create an API key:  gateway keys create --name my-agent",
        ]
    return "\n".join(lines)


async def bootstrap(settings: Settings) -> str | None:
    """Schemas and the admin key, once, before worker processes start (so they
    never race to create them). Returns a newly generated admin key."""
    db_path = settings.data_dir / DB_FILE
    auth = AuthService(
        SQLiteDB(db_path), InProcessBus(), admin_email=str(settings.get("gateway.admin_email"))
    )
    ledger = LedgerService(SQLiteDB(db_path), None)
    registry = registry_service(settings, InProcessBus())
    try:
        await ledger.store.migrate()
        await registry.store.migrate()
        counters = SQLiteDB(db_path)
        await counters.run(reset_counters)  # limits and budgets start afresh
        await counters.close()
        market = Marketplace(settings, SQLiteMarketStore(SQLiteDB(db_path)), registry, None)
        await market.start(poll=False)  # the registry's signing key, made once
        await market.close()
        return await auth.start(str(settings.get("gateway.admin_key")) or None)
    finally:
        await registry.close()
        await ledger.close()
        await auth.close()


REGISTRY_POLL = 0.25
# The ledger's inserts yield the core to the request path (see SQLiteDB); at
# this weight they still get about a tenth of a saturated core, three times
# what they need at full load.
LEDGER_NICE = 10


def read_control_token(data_dir: Path) -> str:
    return (data_dir / CONTROL_TOKEN_FILE).read_text().strip()


class AllInOne:
    """``worker=True``: one of several server processes sharing the port and
    the SQLite file. The parent ran ``bootstrap`` and wrote the control token;
    events stored by another worker (revocations, limit changes) are picked up
    from the shared outbox within ``OUTBOX_POLL`` seconds (allinone_events.py)."""

    def __init__(
        self, settings: Settings, announce: TextIO | None = None, *, worker: bool = False
    ) -> None:
        self.settings = settings
        self.worker = worker
        self.announce = announce if announce is not None else sys.stdout
        data_dir = settings.data_dir
        db_path = data_dir / DB_FILE
        self.bus = InProcessBus()
        self.auth = AuthService(
            SQLiteDB(db_path), self.bus, admin_email=str(settings.get("gateway.admin_email"))
        )
        self.ledger = LedgerService(
            SQLiteDB(db_path, nice=LEDGER_NICE),
            self.bus,
            batch_size=int(settings.get("ledger.batch_size")),
            flush_interval=int(settings.get("ledger.flush_interval_ms")) / 1000.0,
            queue_limit=int(settings.get("ledger.queue_limit")),
        )
        self.registry = registry_service(settings, self.bus)
        self.market = Marketplace(
            settings, SQLiteMarketStore(SQLiteDB(db_path)), self.registry, AuthMinter(self.auth)
        )
        redis_url = str(settings.get("gateway.redis_url"))
        self.tracing = Tracing("gateway", otlp_endpoint=str(settings.get("gateway.otlp_endpoint")))
        ledger = self.ledger
        governor: Callable[[RouterMetrics], Governor]
        if redis_url:
            # the redis driver comes with the [mesh] extra: imported only when used
            try:
                from tokgateway.router.governor_redis import RedisGovernor
            except ModuleNotFoundError:
                raise ConfigError(
                    "gateway.redis_url: the redis driver is not installed "
                    "(pip install 'tokgateway[mesh]')"
                ) from None

            def governor(m: RouterMetrics) -> Governor:
                return RedisGovernor(redis_url, ledger, m)
        elif worker:
            # workers share their counters through the data-dir database

            def governor(m: RouterMetrics) -> Governor:
                return SQLiteGovernor(SQLiteDB(db_path), ledger, m)
        else:

            def governor(m: RouterMetrics) -> Governor:
                return LocalGovernor(ledger, m)

        self.router = RouterService(
            table=self.registry.snapshot(),
            verifier=self.auth,
            bus=self.bus,
            options=router_options(settings),
            governor=governor,
            usage_sink=self.ledger.submit,  # same process: no bytes in between
            tracing=self.tracing,
        )
        breaker = self.router.pipeline.chooser.breaker
        self.registry.routing_health = lambda: breaker.states(time.monotonic())
        self.registry.probe_health = self.router.prober.public
        hook_store = SQLiteHookStore(SQLiteDB(db_path))
        self.hooks = hooks_service(settings, hook_store, self.auth.outbox)
        self.events = OutboxPump(
            self.auth,
            self.hooks,
            hook_store,
            self.bus,
            sweep_every=float(settings.get("hooks.expiry_sweep_s")),
        )
        self.control_token = ""
        self.admin_key_generated: str | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._poller: asyncio.Task[None] | None = None

    def routes(self, guard: AdminGuard) -> list[BaseRoute]:
        return [
            *self.router.routes(),
            *AuthAdminAPI(self.auth, guard, spend=self.ledger).routes(),
            *HooksAdminAPI(self.hooks, guard).routes(),
            *LedgerAdminAPI(self.ledger, guard).routes(),
            *RegistryAdminAPI(self.registry, guard).routes(),
            *self.market.routes(guard),
            *openapi_routes(),
            *config_routes(lambda: self.settings, guard),
            *ui_routes(),
        ]

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        settings = self.settings
        await self.ledger.start()
        await self.registry.start()
        await self.market.start()
        # what the API added before (any worker, any earlier run) is in the store
        self.router.table = self.registry.snapshot()
        if self.worker:
            await self.auth.prepare()
            self._poller = asyncio.create_task(self._poll_registry(), name="registry-poll")
        else:
            admin_key = str(settings.get("gateway.admin_key")) or None
            self.admin_key_generated = await self.auth.start(admin_key)
        await self.events.start()
        self.bus.subscribe(REGISTRY_CHANGED_SUBJECT, self._on_registry_changed)
        await self.router.start()
        runfiles.write_config_stamp(settings.data_dir, settings.files)
        if not self.worker:
            # `gateway reload`; with --workers the supervisor restarts the workers instead
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._on_sighup)
        # Everything built so far lives as long as the process: keep it out of
        # the collector's generations, so collections stay short under load.
        gc.collect()
        gc.freeze()
        for warning in settings.warnings() if not self.worker else ():
            log.warning(warning)
        if not self.worker:
            providers = list(self.router.table.providers)
            print(
                banner(settings, providers, self.admin_key_generated),
                file=self.announce,
                flush=True,
            )
        try:
            yield
        finally:
            # Intake has stopped (the server drained in-flight requests); flush and close.
            if not self.worker:
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            if self._poller is not None:
                self._poller.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._poller
            await self.events.close()
            await self.router.close()
            await self.bus.close()
            await self.market.close()
            await self.registry.close()
            await self.ledger.close()
            await self.auth.close()
            self.tracing.shutdown()
            log.info("gateway stopped", extra={"ledger_written": self.ledger.writer.written})

    def _on_sighup(self) -> None:
        task = asyncio.create_task(self.reload(), name="reload")
        self._tasks.add(task)  # a reference until done
        task.add_done_callback(self._tasks.discard)

    async def reload(self) -> None:
        """Re-read the INI files: providers, routes, aliases and prices take
        effect at once (other keys, such as the port, at the next start). A bad
        file is refused and the running configuration kept."""
        try:
            settings = load_settings(self.settings.config_dir)
        except ConfigError as exc:
            log.error("configuration not reloaded: %s", exc)
            return
        self.settings = settings
        await self.registry.reload(settings)
        runfiles.write_config_stamp(settings.data_dir, settings.files)
        for warning in settings.warnings():
            log.warning(warning)
        log.info("configuration reloaded", extra={"files": [str(f) for f in settings.files]})

    def _on_registry_changed(self, subject: str, payload: bytes) -> None:
        self.router.replace_table(self.registry.snapshot())

    async def _poll_registry(self) -> None:
        """Registry changes made through another worker, read from the shared
        SQLite file (auth events come through the outbox pump)."""
        store = self.registry.store
        assert isinstance(store, SQLiteRegistryStore)
        version = await store.version()
        while True:
            await asyncio.sleep(REGISTRY_POLL)
            try:
                now = await store.version()
                if now != version:
                    version = now
                    await self.market.prices.load()  # a price table refreshed elsewhere
                    await self.market.access.load_prices()  # a listing used elsewhere
                    await self.registry.refresh()
                    self.router.replace_table(self.registry.snapshot())
            except Exception:
                log.exception("registry poll failed")

    def build_app(self) -> ASGIApp:
        if self.worker:
            self.control_token = read_control_token(self.settings.data_dir)
        else:
            self.control_token = write_control_token(self.settings.data_dir)
        guard = AdminGuard(self.auth, self.control_token)
        app = Starlette(
            routes=self.routes(guard),
            lifespan=self.lifespan,
            exception_handlers={HTTPException: _http_error},  # type: ignore[dict-item]
        )
        fast = FastRoutes(app, self.router.hot_routes())
        if self.tracing.tracer is None:
            return fast
        return TraceMiddleware(fast, self.tracing)


async def _http_error(request: Request, exc: HTTPException) -> Response:
    fmt: Any = "anthropic" if request.url.path.startswith("/v1/messages") else "openai"
    err: GatewayError
    if exc.status_code == 404:
        err = NotFound(f"Unknown path {request.url.path}.", code="unknown_path")
    else:
        err = _StatusError(exc.detail or "error", exc.status_code)
    return error_response(err, fmt)


class _StatusError(GatewayError):
    error_class = "client"
    error_type = "invalid_request_error"

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self._status = status

    @property
    def http_status(self) -> int:
        return self._status
