"""How the CLI reaches the gateway's admin side: over HTTP when a gateway is
running (admin key, or the control token it left in its data dir), directly on
the SQLite file when none is. With GATEWAY_AUTH_URL, GATEWAY_LEDGER_URL or
GATEWAY_REGISTRY_URL set it talks to a mesh: keys to auth, usage to the ledger,
providers/models/routes to the registry, with the admin key."""

from __future__ import annotations

import asyncio
import os
import secrets
from typing import Any, Protocol
from urllib.parse import quote

import httpx

from tokgateway import runfiles
from tokgateway.allinone import CONTROL_TOKEN_FILE, DB_FILE
from tokgateway.common.bus import InProcessBus
from tokgateway.common.errors import GatewayError
from tokgateway.common.settings import Settings
from tokgateway.common.sqlite import SQLiteDB
from tokgateway.router.providers.proxy import is_loopback


class AdminError(Exception):
    pass


class Admin(Protocol):
    where: str

    def create_key(self, params: dict[str, Any]) -> dict[str, Any]: ...
    def list_keys(self) -> list[dict[str, Any]]: ...
    def revoke_key(self, key_id: str) -> dict[str, Any]: ...
    def usage(self, params: dict[str, str]) -> list[dict[str, Any]]: ...
    def request(
        self,
        method: str,
        path: str,
        area: str,
        body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
    ) -> Any:
        """Any admin route: ``area`` (auth, ledger, registry) picks the mesh service."""

    def registry_list(self, kind: str) -> list[dict[str, Any]]: ...
    def registry_put(self, kind: str, body: dict[str, Any]) -> dict[str, Any]: ...
    def registry_delete(self, kind: str, name: str) -> dict[str, Any]: ...


def gateway_url(settings: Settings) -> str:
    """GATEWAY_URL, else the address the gateway of this data dir says it
    bound (its pid and port files), else the configured host and port."""
    url = os.environ.get("GATEWAY_URL")
    if url:
        return url.rstrip("/")
    running = runfiles.read(settings.data_dir)
    if running is not None:
        return running.url
    host = settings.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return f"http://{host}:{settings.port}"


def error_message(resp: httpx.Response) -> str:
    """The message of an error answer: its JSON error's, else the start of its text."""
    try:
        return str(resp.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return resp.text[:300]


def answer(resp: httpx.Response) -> Any:
    """The JSON of an admin answer, or its error message as an AdminError."""
    if resp.status_code >= 400:
        raise AdminError(f"{resp.status_code}: {error_message(resp)}")
    return resp.json()


def trust_env(url: str) -> bool:
    """Whether httpx may take a proxy from the environment for ``url``: never
    for the loopback (a corporate HTTPS_PROXY would get the admin calls)."""
    return not is_loopback(httpx.URL(url).host)


class HttpAdmin:
    def __init__(self, url: str, token: str, bases: dict[str, str] | None = None) -> None:
        """``bases`` maps an area (auth, ledger, registry) to its own service URL."""
        self.where = url
        self._bases = {k: v.rstrip("/") for k, v in (bases or {}).items() if v}
        self._client = httpx.Client(
            base_url=url,
            headers={"authorization": f"Bearer {token}"},
            timeout=30.0,
            trust_env=trust_env(url),
        )

    def _call(self, method: str, path: str, area: str = "", **kw: Any) -> Any:
        base = self._bases.get(area)
        # name the service and URL that failed, not the first one configured
        where = base or self.where
        what = f"the {area} service" if base else "the gateway"
        try:
            resp = self._client.request(method, base + path if base else path, **kw)
        except httpx.HTTPError as exc:
            raise AdminError(f"cannot reach {what} at {where}: {exc}") from None
        if resp.status_code >= 400:
            raise AdminError(
                f"{what} at {where} answered {resp.status_code}: {error_message(resp)}"
            )
        return resp.json()

    def request(
        self,
        method: str,
        path: str,
        area: str,
        body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
    ) -> Any:
        return self._call(method, path, area, json=body, params=params)

    def create_key(self, params: dict[str, Any]) -> dict[str, Any]:
        return dict(self._call("POST", "/admin/keys", "auth", json=params))

    def list_keys(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/admin/keys", "auth")["data"])

    def revoke_key(self, key_id: str) -> dict[str, Any]:
        return dict(self._call("POST", f"/admin/keys/{key_id}/revoke", "auth"))

    def usage(self, params: dict[str, str]) -> list[dict[str, Any]]:
        return list(self._call("GET", "/admin/usage", "ledger", params=params)["data"])

    def registry_list(self, kind: str) -> list[dict[str, Any]]:
        return list(self._call("GET", f"/admin/{kind}", "registry")["data"])

    def registry_put(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self._call("POST", f"/admin/{kind}", "registry", json=body))

    def registry_delete(self, kind: str, name: str) -> dict[str, Any]:
        path = f"/admin/{kind}/{quote(name, safe='')}"
        return dict(self._call("DELETE", path, "registry"))


class LocalAdmin:
    """Works on the SQLite file of a gateway that is not running."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.where = str(settings.data_dir / DB_FILE)

    def _run(self, op: Any) -> Any:
        async def main() -> Any:
            from tokgateway.auth.service import AuthService
            from tokgateway.ledger.service import LedgerService

            bus = InProcessBus()
            db = self.settings.data_dir / DB_FILE
            auth = AuthService(
                SQLiteDB(db), bus, admin_email=str(self.settings.get("gateway.admin_email"))
            )
            ledger = LedgerService(SQLiteDB(db), bus)
            try:
                await ledger.start()
                await auth.prepare()
                return await op(auth, ledger)
            except GatewayError as err:
                raise AdminError(err.message) from None
            finally:
                await ledger.close()
                await auth.close()

        return asyncio.run(main())

    def request(
        self,
        method: str,
        path: str,
        area: str,
        body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
    ) -> Any:
        """The same admin routes as a running gateway (keys, users and teams,
        hooks, usage), served in this process on the data file (one code path
        for checks, events and answers; hook deliveries go out at the next
        start)."""
        from starlette.applications import Starlette

        from tokgateway.allinone import hooks_service
        from tokgateway.auth.admin_api import AuthAdminAPI
        from tokgateway.auth.hook_store import SQLiteHookStore
        from tokgateway.auth.hooks_api import HooksAdminAPI
        from tokgateway.common.http import AdminGuard
        from tokgateway.ledger.service import LedgerAdminAPI

        async def op(auth: Any, ledger: Any) -> Any:
            hooks_db = SQLiteDB(self.settings.data_dir / DB_FILE)
            hooks = hooks_service(self.settings, SQLiteHookStore(hooks_db), auth.outbox)
            token = "tgc-" + secrets.token_urlsafe(24)
            guard = AdminGuard(auth, token)
            app = Starlette(
                routes=[
                    *AuthAdminAPI(auth, guard, spend=ledger).routes(),
                    *HooksAdminAPI(hooks, guard).routes(),
                    *LedgerAdminAPI(ledger, guard).routes(),
                ]
            )
            try:
                await hooks.migrate()
                async with httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app),
                    base_url="http://gateway.local",
                    headers={"authorization": f"Bearer {token}"},
                ) as client:
                    resp = await client.request(method, path, json=body, params=params)
            finally:
                await hooks.close()
                await hooks_db.close()
            return answer(resp)

        return self._run(op)

    def create_key(self, params: dict[str, Any]) -> dict[str, Any]:
        from tokgateway.auth.service import parse_key_request

        async def op(auth: Any, ledger: Any) -> dict[str, Any]:
            try:
                args = parse_key_request(params)
            except GatewayError as err:
                raise AdminError(err.message) from None
            rec, secret = await auth.create_key(**args)
            return {**rec.public(), "key": secret}

        return dict(self._run(op))

    def list_keys(self) -> list[dict[str, Any]]:
        async def op(auth: Any, ledger: Any) -> list[dict[str, Any]]:
            return [k.public() for k in await auth.list_keys()]

        return list(self._run(op))

    def revoke_key(self, key_id: str) -> dict[str, Any]:
        async def op(auth: Any, ledger: Any) -> dict[str, Any]:
            return dict((await auth.revoke(key_id)).public())

        return dict(self._run(op))

    def usage(self, params: dict[str, str]) -> list[dict[str, Any]]:
        from tokgateway.ledger.filters import UsageFilter
        from tokgateway.ledger.service import parse_time
        from tokgateway.ledger.store import GROUPS

        async def op(auth: Any, ledger: Any) -> list[dict[str, Any]]:
            group = params.get("group_by")
            if group and group not in GROUPS:
                raise AdminError(f"--group-by must be one of {', '.join(GROUPS)}")
            filters = UsageFilter(
                key_id=params.get("key"), since=parse_time(params.get("since"), "since")
            )
            return list(await ledger.usage(filters, group))

        return list(self._run(op))

    def registry_list(self, kind: str) -> list[dict[str, Any]]:
        """The INI definitions plus what the admin API stored in the file."""
        from tokgateway.allinone import registry_service

        async def main() -> list[dict[str, Any]]:
            registry = registry_service(self.settings, InProcessBus())
            try:
                await registry.start()
                lists = {
                    "providers": registry.providers_public,
                    "models": registry.models_public,
                    "routes": registry.routes_public,
                }
                return lists[kind]()
            finally:
                await registry.close()

        return asyncio.run(main())

    def registry_put(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        raise AdminError(self._stopped_registry)

    def registry_delete(self, kind: str, name: str) -> dict[str, Any]:
        raise AdminError(self._stopped_registry)

    _stopped_registry = (
        "no gateway is running: change the INI files (the registry loads them at start), "
        "or start the gateway and run this again"
    )


def connect(settings: Settings) -> Admin:
    bases = {
        area: str(settings.get(f"gateway.{area}_url")) for area in ("auth", "ledger", "registry")
    }
    if any(bases.values()):
        token = str(settings.get("gateway.admin_key"))
        if not token:
            raise AdminError("a mesh needs the admin key: set GATEWAY_ADMIN_KEY")
        first = next(v for v in bases.values() if v)
        return HttpAdmin(first, token, bases)
    if not os.environ.get("GATEWAY_URL") and runfiles.read(settings.data_dir) is None:
        # No gateway serves this data dir (whatever may answer on the default
        # port belongs to another one): work on the file.
        return LocalAdmin(settings)
    url = gateway_url(settings)
    try:
        alive = (
            httpx.get(url + "/healthz", timeout=1.0, trust_env=trust_env(url)).status_code == 200
        )
    except httpx.HTTPError:
        alive = False
    if not alive:
        if os.environ.get("GATEWAY_URL"):
            raise AdminError(f"no gateway answers at {url}")
        return LocalAdmin(settings)
    token = str(settings.get("gateway.admin_key"))
    if not token:
        path = settings.data_dir / CONTROL_TOKEN_FILE
        try:
            token = path.read_text().strip()
        except OSError:
            raise AdminError(
                f"a gateway runs at {url}, but no admin key is set (GATEWAY_ADMIN_KEY) "
                f"and its control token ({path}) is not readable"
            ) from None
    return HttpAdmin(url, token)
