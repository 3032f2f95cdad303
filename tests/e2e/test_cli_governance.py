"""`gateway users|teams|keys` against a running all-in-one gateway: who owns
what, who sees what, rotation and disabling as clients feel them."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import orjson
import pytest

from tests.support.gateway_proc import GatewayProcess

pytestmark = pytest.mark.e2e

MSG = [{"role": "user", "content": "hello"}]


def cli_json(gw: GatewayProcess, *args: str) -> Any:
    return orjson.loads(gw.cli(*args, "--json").stdout)


def cli_as(gw: GatewayProcess, key: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI with another key than the gateway's control token."""
    return subprocess.run(
        [sys.executable, "-m", "tokgateway.cli", *args],
        check=False,
        env={**gw.env, "GATEWAY_ADMIN_KEY": key},
        capture_output=True,
        text=True,
        cwd=gw.root,
        timeout=60,
    )


@pytest.fixture
def clients() -> Iterator[list[openai.OpenAI]]:
    made: list[openai.OpenAI] = []
    yield made
    for client in made:
        client.close()


def client_for(gw: GatewayProcess, key: str, made: list[openai.OpenAI]) -> openai.OpenAI:
    made.append(openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0))
    return made[-1]


def wait_usage(gw: GatewayProcess, key_id: str, requests: int) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while True:
        rows = gw.usage("--key", key_id)
        if (rows and rows[0]["requests"] >= requests) or time.monotonic() > deadline:
            assert rows and rows[0]["requests"] == requests
            return dict(rows[0])
        time.sleep(0.05)


def test_users_teams_and_keys_through_the_cli(gateway: GatewayProcess) -> None:
    user = cli_json(gateway, "users", "create", "--email", "ops@example.com", "--tpm", "5000")
    assert user["id"].startswith("usr_") and user["role"] == "member" and user["tpm"] == 5000
    team = cli_json(
        gateway, "teams", "create", "--name", "ops", "--budget-usd", "3", "--budget-period", "week"
    )
    assert team["id"].startswith("team_") and team["budget_usd"] == 3.0
    refused = gateway.cli(
        "keys", "create", "--name", "x", "--user", user["id"], "--team", team["id"], check=False
    )
    assert refused.returncode == 1 and "not a member" in refused.stderr
    added = cli_json(gateway, "teams", "add-member", team["id"], user["id"])
    assert added["members"] == [user["id"]]
    key = gateway.create_key(
        "ops-agent", "--user", user["id"], "--team", team["id"], "--rpm", "50", "--budget-usd", "2"
    )
    assert (key["user_id"], key["team_id"], key["rpm"], key["budget_usd"]) == (
        user["id"],
        team["id"],
        50,
        2.0,
    )
    updated = cli_json(gateway, "keys", "update", key["id"], "--tpm", "900", "--rpm", "none")
    assert updated["tpm"] == 900 and updated["rpm"] is None and updated["budget_usd"] == 2.0
    shown = cli_json(gateway, "keys", "show", key["id"])
    assert [b["kind"] for b in shown["budgets"]] == ["key", "team"]
    assert shown["spend_usd"] == 0.0 and shown["remaining_usd"] == 2.0
    assert cli_json(gateway, "users", "show", user["id"])["teams"] == [team["id"]]
    listed = gateway.cli("users", "list").stdout
    assert "ops@example.com" in listed and "5000" in listed
    assert "ops" in gateway.cli("teams", "list").stdout
    changed = cli_json(gateway, "users", "update", user["id"], "--role", "viewer")
    assert changed["role"] == "viewer"
    removed = cli_json(gateway, "teams", "remove-member", team["id"], user["id"])
    assert removed["members"] == []
    assert cli_json(gateway, "keys", "show", key["id"])["team_id"] is None
    bad = gateway.cli("users", "create", "--email", "ops@example.com", check=False)
    assert bad.returncode == 1 and "400" in bad.stderr and "exists" in bad.stderr


def test_member_sees_only_its_own_keys_and_usage(
    gateway: GatewayProcess, clients: list[openai.OpenAI]
) -> None:
    alice = cli_json(gateway, "users", "create", "--email", "alice@example.com")
    bob = cli_json(gateway, "users", "create", "--email", "bob@example.com")
    alice_key = gateway.create_key("alice-1", "--user", alice["id"], "--budget-usd", "1")
    bob_key = gateway.create_key("bob-1", "--user", bob["id"])
    client_for(gateway, alice_key["key"], clients).chat.completions.create(
        model="gpt-4o", messages=MSG
    )
    for _ in range(2):
        client_for(gateway, bob_key["key"], clients).chat.completions.create(
            model="gpt-4o", messages=MSG
        )
    alice_row = wait_usage(gateway, alice_key["id"], 1)
    wait_usage(gateway, bob_key["id"], 2)

    mine = cli_as(gateway, alice_key["key"], "usage", "--group-by", "user", "--json")
    assert mine.returncode == 0, mine.stderr
    assert [r["group"] for r in orjson.loads(mine.stdout)] == [alice["id"]]
    keys = cli_as(gateway, alice_key["key"], "keys", "list", "--json")
    assert [k["id"] for k in orjson.loads(keys.stdout)] == [alice_key["id"]]
    denied = cli_as(gateway, alice_key["key"], "users", "list")
    assert denied.returncode == 1 and "403" in denied.stderr
    headers = {"authorization": f"Bearer {alice_key['key']}"}
    peek = httpx.get(f"{gateway.url}/admin/usage", params={"key": bob_key["id"]}, headers=headers)
    assert peek.status_code == 200 and peek.json()["data"] == []
    everyone = {r["group"] for r in gateway.usage("--group-by", "user")}
    assert {alice["id"], bob["id"]} <= everyone

    shown = cli_json(gateway, "keys", "show", alice_key["id"])
    assert alice_row["cost_usd"] > 0
    assert shown["spend_usd"] == pytest.approx(alice_row["cost_usd"])
    assert shown["remaining_usd"] == pytest.approx(1.0 - alice_row["cost_usd"])
    table = gateway.cli("keys", "show", alice_key["id"]).stdout
    assert "REMAINING_USD" in table and f"{1.0 - alice_row['cost_usd']:.6f}" in table


def test_rotate_and_disable_take_effect_at_once(
    gateway: GatewayProcess, clients: list[openai.OpenAI]
) -> None:
    user = cli_json(gateway, "users", "create", "--email", "rot@example.com")
    key = gateway.create_key("rotating", "--user", user["id"], "--rpm", "100")
    old = client_for(gateway, key["key"], clients)
    old.chat.completions.create(model="echo", messages=MSG)  # warms the key cache
    rotated = cli_json(gateway, "keys", "rotate", key["id"])
    assert rotated["id"] == key["id"] and rotated["name"] == "rotating" and rotated["rpm"] == 100
    assert rotated["key"].startswith("tgk-") and rotated["key"] != key["key"]
    with pytest.raises(openai.AuthenticationError) as exc:
        old.chat.completions.create(model="echo", messages=MSG)
    assert exc.value.code == "invalid_api_key"
    fresh = client_for(gateway, rotated["key"], clients)
    fresh.chat.completions.create(model="echo", messages=MSG)
    listed = gateway.cli("keys", "list", "--json").stdout
    assert rotated["key"] not in listed and key["key"] not in listed

    disabled = cli_json(gateway, "users", "disable", user["id"])
    assert disabled["status"] == "disabled"
    with pytest.raises(openai.AuthenticationError) as exc:
        fresh.chat.completions.create(model="echo", messages=MSG)
    assert exc.value.code == "user_disabled"
    cli_json(gateway, "users", "update", user["id"], "--status", "active")
    fresh.chat.completions.create(model="echo", messages=MSG)
