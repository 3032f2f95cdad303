"""The mesh router's admin front (tokgateway/mesh_admin.py): each admin call
goes to the service that owns it, as the client sent it, with the caller's key
and nothing of the router's own."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.mock_upstream import free_port, serve_in_thread
from tokgateway.mesh_admin import MAX_BODY, OWNERS, AdminForward


def _echo_service(name: str) -> Starlette:
    """Answers every path with what it was sent."""

    async def echo(request: Request) -> Response:
        body = await request.body()
        return JSONResponse(
            {
                "service": name,
                "method": request.method,
                "raw_path": request.scope["raw_path"].decode(),
                "query": request.url.query,
                "authorization": request.headers.get("authorization"),
                "cookie": request.headers.get("cookie"),
                "body": body.decode(),
            },
            status_code=201 if request.method == "POST" else 200,
            headers={"set-cookie": "a=b", "x-internal": "yes"},
        )

    return Starlette(
        routes=[Route("/{rest:path}", echo, methods=["GET", "POST", "PATCH", "DELETE"])]
    )


@pytest.fixture(scope="module")
def services() -> Iterator[dict[str, str]]:
    with (
        serve_in_thread(_echo_service("auth")) as auth,
        serve_in_thread(_echo_service("registry")) as registry,
    ):
        yield {"auth": auth, "registry": registry}


@pytest.fixture
async def router(services: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    forward = AdminForward({**services, "ledger": ""})
    app = Starlette(routes=forward.routes())
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://router"
    ) as client:
        yield client
    await forward.close()


async def test_each_area_goes_to_its_owner(router: httpx.AsyncClient) -> None:
    for segment, owner in OWNERS.items():
        if owner == "ledger":
            continue
        resp = await router.get(f"/admin/{segment}", headers={"authorization": "Bearer tgk-a"})
        assert resp.status_code == 200, segment
        assert resp.json()["service"] == owner, segment
        assert resp.json()["raw_path"] == f"/admin/{segment}"


async def test_the_call_travels_as_sent_with_the_callers_key_only(
    router: httpx.AsyncClient,
) -> None:
    resp = await router.request(
        "PATCH",
        "/admin/teams/team_1/members/usr%2F2",
        params={"a": "1 2"},
        content=b'{"rpm": 60}',
        headers={"authorization": "Bearer tgk-admin", "cookie": "session=x"},
    )
    seen = resp.json()
    assert seen["service"] == "auth" and seen["method"] == "PATCH"
    assert seen["raw_path"] == "/admin/teams/team_1/members/usr%2F2"  # still encoded
    assert seen["query"] == "a=1+2"
    assert seen["authorization"] == "Bearer tgk-admin"
    assert seen["cookie"] is None
    assert seen["body"] == '{"rpm": 60}'
    # the owner's status and body come back; its other headers do not
    post = await router.post("/admin/market/use", content=b"{}")
    assert post.status_code == 201 and post.json()["service"] == "registry"
    assert "set-cookie" not in post.headers and "x-internal" not in post.headers
    assert post.headers["content-type"] == "application/json"


async def test_no_key_stays_no_key(router: httpx.AsyncClient) -> None:
    """The router's own credentials never stand in for a missing admin key."""
    seen = (await router.get("/admin/keys")).json()
    assert seen["authorization"] is None


async def test_a_service_without_a_url_is_named(router: httpx.AsyncClient) -> None:
    resp = await router.get("/admin/usage", params={"group_by": "model"})
    assert resp.status_code == 502
    err = resp.json()["error"]
    assert err["code"] == "service_not_configured" and "GATEWAY_LEDGER_URL" in err["message"]


async def test_an_unreachable_service_and_a_large_body() -> None:
    forward = AdminForward({"auth": f"http://127.0.0.1:{free_port()}"})
    app = Starlette(routes=forward.routes())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://router") as client:
        down = await client.get("/admin/users")
        assert down.status_code == 502
        assert down.json()["error"]["code"] == "service_unavailable"
        assert "auth service is unavailable" in down.json()["error"]["message"]
        big = await client.post("/admin/users", content=b"x" * (MAX_BODY + 1))
        assert big.status_code == 413
    await forward.close()
