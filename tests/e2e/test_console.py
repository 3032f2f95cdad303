"""The web console in a real headless Chromium (Debian's, via playwright-core):
sign in with the admin key, create a key in the console, use it through the
gateway with the official openai SDK, see the request in Usage and in the
Overview totals, swap the provider behind the model in Routes and see the next
request go to the new provider (the ledger's provider column), make a user and
a team in Users and Teams (the user's limits, the membership and the team's
budget read back through the admin API), add a webhook in Hooks (the
receiver verifies the console's test delivery with the secret shown once) and
delete it, publish and unpublish a listing and follow and drop a peer gateway
in Marketplace, see those pages read-only with a viewer's key, then the h5
layout in a phone viewport. Screenshots land in the test's tmp dir."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import httpx
import openai
import orjson
import pytest
from standardwebhooks.webhooks import Webhook

from tests.support.console_build import FE, ensure_built
from tests.support.gateway_proc import GatewayProcess
from tests.support.hook_receiver import HookReceiver
from tests.support.mock_upstream import MockUpstream, serve_in_thread

pytestmark = pytest.mark.e2e
CHROMIUM = "/usr/bin/chromium"
ADMIN_KEY = "tgk-admin-console-e2e-0123456789abcdef"
MODEL = "console-model"
PEER_KEY = "tgk-admin-console-peer-0123456789abcdef"


@pytest.fixture(scope="module")
def built() -> Path:
    return ensure_built()


@pytest.fixture(scope="module")
def gateway(built: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    upstream = MockUpstream()
    with serve_in_thread(upstream.app) as url:
        config = f"""
[ledger]
flush_interval_ms = 20

[provider.mock]
kind = openai-compatible
base_url = {url}/v1
api_key = sk-mock-upstream

[routes]
{MODEL} = mock:gpt-4o-mini
"""
        gw = GatewayProcess(
            tmp_path_factory.mktemp("console-gw"),
            config,
            env={"GATEWAY_ADMIN_KEY": ADMIN_KEY, "GATEWAY_ENABLE_PROVIDER": "true"},
        ).start()
        try:
            yield gw
        finally:
            gw.stop()


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """Another gateway whose registry has one listing, for the console to follow."""
    gw = GatewayProcess(
        tmp_path_factory.mktemp("console-peer"),
        "[ledger]\nflush_interval_ms = 50\n",
        env={"GATEWAY_ADMIN_KEY": PEER_KEY, "GATEWAY_ENABLE_PROVIDER": "true"},
    ).start()
    try:
        made = httpx.post(
            gw.url + "/admin/market/listings",
            json={
                "models": ["peer-model"],
                "price_in": 0.1,
                "price_out": 0.2,
                "name": "Peer listing",
            },
            headers={"authorization": f"Bearer {PEER_KEY}"},
        )
        assert made.status_code == 201, made.text
        yield gw
    finally:
        gw.stop()


def test_component_tests_pass(built: Path) -> None:
    done = subprocess.run(
        ["npx", "--no-install", "vitest", "run", "--reporter=dot"],
        cwd=FE,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "passed" in done.stdout


def test_ui_is_served_with_a_strict_policy(gateway: GatewayProcess) -> None:
    page = httpx.get(gateway.url + "/ui/")
    assert page.status_code == 200 and '<div id="root">' in page.text
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "connect-src 'self'" in policy
    assert page.headers["cache-control"] == "no-cache"
    assert httpx.get(gateway.url + "/ui/h5/").status_code == 200
    assert httpx.get(gateway.url + "/ui", follow_redirects=False).status_code in (307, 308)
    # the built files reference nothing outside the gateway's origin
    for layout in ("web", "h5"):
        for asset in (FE / "dist" / layout / "assets").iterdir():
            text = asset.read_text(errors="ignore")
            assert "fonts.googleapis" not in text and "cdn." not in text, asset


def _ledger_rows(gw: GatewayProcess) -> list[dict[str, Any]]:
    resp = httpx.get(
        gw.url + "/admin/usage",
        params={"group_by": "provider"},
        headers={"authorization": f"Bearer {ADMIN_KEY}"},
    )
    resp.raise_for_status()
    return list(resp.json()["data"])


def _send(gw: GatewayProcess, key: str) -> dict[str, Any]:
    """One chat request with the official SDK; the ledger's record of it."""
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "hello from the console test"}]
    )
    completion = raw.parse()
    assert completion.choices[0].message.content
    client.close()
    return gw.ledger_row(raw.headers["x-request-id"])


def _line(stream: IO[str], deadline: float) -> dict[str, Any]:
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            raise AssertionError("the browser script ended early")
        if line.startswith("{"):
            return dict(orjson.loads(line))
    raise AssertionError("the browser script took too long")


@pytest.mark.timeout(240)
def test_console_in_a_real_browser(
    gateway: GatewayProcess, peer: GatewayProcess, tmp_path: Path
) -> None:
    assert os.path.exists(CHROMIUM), "Debian's chromium is needed (apt-get install chromium)"
    shots = tmp_path / "screenshots"
    shots.mkdir()
    print(f"\nconsole screenshots: {shots}")
    env = {
        **os.environ,
        "GATEWAY_URL": gateway.url,
        "ADMIN_KEY": ADMIN_KEY,
        "SHOTS": str(shots),
        "MODEL": MODEL,
        "CHROMIUM": CHROMIUM,
        "PEER_URL": peer.url,
    }
    # its secret is the one the console shows once; the hook_added step sets it
    receiver = HookReceiver("whsec_" + "A" * 32)
    with (
        receiver.serve(),
        subprocess.Popen(
            ["node", "e2e/console.e2e.mjs"],
            cwd=FE,
            env={**env, "HOOK_URL": receiver.url},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        ) as proc,
    ):
        try:
            seen, screenshots = _drive(proc, gateway, receiver)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    by_provider = {r["group"]: r["requests"] for r in _ledger_rows(gateway)}
    assert by_provider["mock"] == 1
    # the swapped request, the rotated key's and the Providers page's test request
    assert by_provider["echo"] == 3
    csv = next(m for m in seen if m["step"] == "csv")["path"]
    assert Path(csv).read_text().splitlines()[0].startswith("provider,requests,")
    assert len(screenshots) >= 11 and all(Path(p).stat().st_size > 5000 for p in screenshots)
    print("\n".join(screenshots))


def _admin_list(gw: GatewayProcess, what: str) -> list[dict[str, Any]]:
    resp = httpx.get(gw.url + f"/admin/{what}", headers={"authorization": f"Bearer {ADMIN_KEY}"})
    resp.raise_for_status()
    return list(resp.json()["data"])


def _check_people(gw: GatewayProcess, email: str, team_name: str) -> None:
    """What the Users and Teams page did, as the admin API has it."""
    user = next(u for u in _admin_list(gw, "users") if u["email"] == email)
    team = next(t for t in _admin_list(gw, "teams") if t["name"] == team_name)
    assert team["members"] == [user["id"]] and user["teams"] == [team["id"]]
    assert (team["budget_usd"], team["budget_period"], team["tpm"]) == (25.0, "week", 50000)
    assert team["rpm"] is None
    assert (user["rpm"], user["tpm"], user["budget_usd"]) == (120, None, None)
    assert user["role"] == "member" and user["status"] == "active"


def _admin(gw: GatewayProcess, method: str, path: str, body: Any = None) -> Any:
    resp = httpx.request(
        method, gw.url + path, json=body, headers={"authorization": f"Bearer {ADMIN_KEY}"}
    )
    resp.raise_for_status()
    return resp.json()


def _check_hook(gw: GatewayProcess, receiver: HookReceiver, msg: dict[str, Any]) -> None:
    """The hook the Hooks page added, as the admin API has it; from now on the
    receiver accepts only deliveries signed with the secret the page showed."""
    hook = next(h for h in _admin_list(gw, "hooks") if h["name"] == msg["name"])
    assert hook["url"] == receiver.url and hook["kind"] == "webhook"
    assert hook["events"] == ["key.*", "user.created"] and "secret" not in hook
    receiver.webhook = Webhook(msg["secret"])


def _check_market(gw: GatewayProcess, peer: str, listing_name: str) -> None:
    """What the Marketplace page did, as the admin API has it."""
    listings = _admin(gw, "GET", "/admin/market/listings")["data"]
    ours = next(x for x in listings if x["name"] == listing_name)
    assert ours["local"] is True
    assert [(m["name"], m["input"], m["output"]) for m in ours["models"]] == [
        ("console-listed", 0.5, 1.5)
    ]
    theirs = next(x for x in listings if x["name"] == "Peer listing")
    assert theirs["local"] is False
    peers = _admin(gw, "GET", "/admin/market/peers")["data"]
    assert [(p["url"], p["listings"]) for p in peers] == [(peer, 1)]


def _viewer_key(gw: GatewayProcess) -> str:
    user = _admin(gw, "POST", "/admin/users", {"email": "viewer@console.test", "role": "viewer"})
    key = _admin(gw, "POST", "/admin/keys", {"name": "console-viewer", "user_id": user["id"]})
    return str(key["key"])


def _drive(
    proc: subprocess.Popen[str], gateway: GatewayProcess, receiver: HookReceiver
) -> tuple[list[dict[str, Any]], list[str]]:
    """Answers the browser script's requests until it is done."""
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    deadline = time.monotonic() + 200
    seen: list[dict[str, Any]] = []
    screenshots: list[str] = []
    key = key_id = ""
    while True:
        try:
            msg = _line(proc.stdout, deadline)
        except AssertionError as exc:
            proc.kill()
            raise AssertionError(f"{exc}: {proc.stderr.read()[-3000:]}") from None
        seen.append(msg)
        step = msg["step"]
        reply: dict[str, Any] | None = None
        if step == "screenshot":
            screenshots.append(msg["path"])
        elif step == "key_created":
            # the key made in the browser works through the gateway
            key, key_id = msg["key"], msg["key_id"]
            row = _send(gateway, key)
            assert row["key_id"] == msg["key_id"]
            assert row["provider"] == "mock" and row["model"] == MODEL
            total = sum(r["requests"] for r in _ledger_rows(gateway))
            reply = {"provider": "mock", "swap_to": "echo", "requests_total": total}
        elif step == "swapped":
            row = _send(gateway, key)
            assert row["provider"] == msg["provider"] == "echo"  # the next request moved
            reply = {"provider": row["provider"]}
        elif step == "rotated":
            with pytest.raises(openai.AuthenticationError):
                _send(gateway, msg["old"])
            assert _send(gateway, msg["key"])["key_id"] == key_id  # same id, new secret
            reply = {}
        elif step == "revoked":
            with pytest.raises(openai.AuthenticationError):
                _send(gateway, msg["key"])
            reply = {}
        elif step == "people":
            _check_people(gateway, msg["email"], msg["team"])
            reply = {}
        elif step == "hook_added":
            _check_hook(gateway, receiver, msg)
            reply = {}
        elif step == "hook_tested":
            receiver.wait_for(lambda: len(receiver.events("hook.test")) == 1)
            assert receiver.bad_signatures == 0
            assert receiver.events("hook.test")[0]["data"]["hook"] == msg["name"]
            reply = {}
        elif step == "hook_deleted":
            assert all(h["name"] != msg["name"] for h in _admin_list(gateway, "hooks"))
            reply = {}
        elif step == "market":
            _check_market(gateway, msg["peer"], msg["listing"])
            reply = {}
        elif step == "viewer_key":
            reply = {"key": _viewer_key(gateway)}
        elif step == "failed":
            raise AssertionError(f"in the browser: {msg['error']}")
        elif step == "done":
            break
        if reply is not None:
            proc.stdin.write(orjson.dumps({"ok": True, **reply}).decode() + "\n")
            proc.stdin.flush()
    assert proc.wait(timeout=30) == 0, proc.stderr.read()
    return seen, screenshots
