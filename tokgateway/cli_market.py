"""`gateway market ...`: publish this gateway's models, browse and compare
listings (this registry's and its peers'), use one, approve subscribers, and
follow peer registries. Every command talks to a running gateway (or the mesh
registry) through admin_client.connect; `--json` prints objects with `id`."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import orjson

from tokgateway.cli_output import Output
from tokgateway.common.settings import load_settings


def _print_json(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], **kw: Any) -> None:
    Output.for_stdout().table(headers, rows, **kw)


def _call(
    method: str, path: str, body: dict[str, Any] | None = None, params: dict[str, str] | None = None
) -> Any:
    from tokgateway.admin_client import AdminError, LocalAdmin, connect

    admin = connect(load_settings())
    if isinstance(admin, LocalAdmin):
        raise AdminError("no gateway is running: the marketplace needs it (gateway start)")
    return admin.request(method, path, "registry", body, params)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def _models(listing: dict[str, Any]) -> str:
    return ", ".join(
        f"{m['name']} ({m['input']:g}/{m['output']:g})" for m in listing.get("models", [])
    )


# -- listings -----------------------------------------------------------------------------
def cmd_publish(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {}
    if args.model:
        body["models"] = args.model
    for flag in ("price_in", "price_out", "price_cached", "name", "region", "api_format"):
        value = getattr(args, flag)
        if value is not None:
            body[flag] = value
    rec = _call("POST", "/admin/market/listings", body)
    if args.json:
        _print_json(rec)
        return 0
    print(f"Published {rec['id']} ({rec['name']}): {_models(rec)}")
    print(f"  endpoint {rec['endpoint']}, expires {time.ctime(rec['expires_at'])}")
    return 0


def cmd_unpublish(args: argparse.Namespace) -> int:
    rec = _call("DELETE", f"/admin/market/listings/{quote(args.id, safe='')}")
    if args.json:
        _print_json(rec)
        return 0
    print(f"Unpublished {rec['id']}; {rec['keys_revoked']} subscriber key(s) revoked.")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    params = {k: v for k, v in (("model", args.model), ("sort", args.sort)) if v}
    rows = _call("GET", "/admin/market/listings", params=params)["data"]
    if args.json:
        _print_json(rows)
        return 0
    if not rows:
        print("No listings (publish one, or follow a peer: gateway market peers add URL).")
        return 0
    _table(
        ("ID", "NAME", "MODELS (IN/OUT $/M)", "ORIGIN", "VIA", "AGE", "LATENCY_MS", "UPTIME"),
        [
            (
                r["id"],
                r["name"],
                _models(r),
                r["origin"] + (" (this)" if r["local"] else ""),
                r["via"] or "-",
                _age(r["age_s"]),
                r["latency_ms"],
                f"{r['uptime']:.0%}" if r["uptime"] is not None else None,
            )
            for r in rows
        ],
    )
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    rows = _call("GET", f"/admin/market/compare/{quote(args.model, safe='')}")["data"]
    if args.json:
        _print_json(rows)
        return 0
    if not rows:
        print(f"No listing offers {args.model}.")
        return 0
    typical = rows[0]["typical_request"]
    print(
        f"# {args.model}: effective price of a typical request "
        f"({typical['input']} input + {typical['output']} output tokens)"
    )
    _table(
        ("ID", "NAME", "INPUT", "OUTPUT", "CACHED", "REGION", "LATENCY_MS", "EFFECTIVE_USD"),
        [
            (
                r["id"],
                r["name"],
                r["input"],
                r["output"],
                r["cached"],
                r["region"],
                r["latency_ms"],
                f"{r['effective_usd']:.6f}",
            )
            for r in rows
        ],
    )
    return 0


def cmd_use(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"listing_id": args.id}
    if args.as_model:
        body["as"] = args.as_model
    rec = _call("POST", "/admin/market/use", body)
    if args.json:
        _print_json(rec)
        return 0
    if rec["status"] != "active":
        print(
            f"Asked for access to {rec['id']}: {rec['status']}. When the publisher approves, "
            f"run `gateway market use {rec['id']}` again."
        )
        return 0
    for route in rec.get("routes", []):
        print(f"Model {route['model']} now goes to {rec['provider']} ({route['upstream_model']}).")
    return 0


def cmd_subscriptions(args: argparse.Namespace) -> int:
    rows = _call("GET", "/admin/market/subscriptions")["data"]
    if args.json:
        _print_json(rows)
        return 0
    _table(
        ("ID", "LISTING", "CONSUMER", "STATUS", "KEY"),
        [
            (
                r["id"],
                r["listing_id"],
                r["consumer_email"] or r["consumer_registry"],
                r["status"],
                r["key_id"],
            )
            for r in rows
        ],
        status_column="STATUS",
    )
    return 0


def cmd_approve(args: argparse.Namespace) -> int:
    rec = _call("POST", f"/admin/market/subscriptions/{quote(args.id, safe='')}/approve")
    if args.json:
        _print_json(rec)
        return 0
    print(f"Approved {rec['id']}: key {rec['key_id']} for {', '.join(rec['models'])}.")
    return 0


# -- peers --------------------------------------------------------------------------------
def cmd_peers_add(args: argparse.Namespace) -> int:
    body = {"url": args.url}
    if args.token:
        body["token"] = args.token
    rec = _call("POST", "/admin/market/peers", body)
    if args.json:
        _print_json(rec)
        return 0
    print(
        f"Following {rec['url']} ({rec['registry_id']}, key pinned): "
        f"{rec['listings']} listing(s), {rec['refused']} refused."
    )
    return 0


def cmd_peers_list(args: argparse.Namespace) -> int:
    rows = _call("GET", "/admin/market/peers")["data"]
    if args.json:
        _print_json(rows)
        return 0
    now = time.time()
    _table(
        ("URL", "REGISTRY", "STATUS", "LISTINGS", "REFUSED", "POLLED", "ERROR"),
        [
            (
                r["url"],
                r["registry_id"],
                r["last_status"],
                r["listings"],
                r["refused"],
                _age(now - r["last_poll"]) + " ago" if r["last_poll"] else None,
                r["last_error"],
            )
            for r in rows
        ],
    )
    return 0


def cmd_peers_remove(args: argparse.Namespace) -> int:
    rec = _call("POST", "/admin/market/peers/remove", {"url": args.url})
    if args.json:
        _print_json(rec)
        return 0
    print(f"No longer following {rec['url']}; its listings are gone.")
    return 0


def cmd_peers_poll(args: argparse.Namespace) -> int:
    rows = _call("POST", "/admin/market/peers/poll")["data"]
    if args.json:
        _print_json(rows)
        return 0
    for r in rows:
        print(f"{r['url']}: {r['last_status']}, {r['listings']} listing(s), {r['refused']} refused")
    return 0


def add_commands(sub: Any) -> None:
    market = sub.add_parser(
        "market", help="publish, browse, compare and use models"
    ).add_subparsers(dest="market_cmd", required=True)

    def cmd(name: str, help_text: str, func: Any, parent: Any = market) -> Any:
        p = parent.add_parser(name, help=help_text)
        p.add_argument("--json", action="store_true")
        p.set_defaults(func=func)
        return p

    pub = cmd("publish", "offer models of this gateway (GATEWAY_ENABLE_PROVIDER=true)", cmd_publish)
    pub.add_argument("--model", action="append")
    pub.add_argument("--price-in", type=float)
    pub.add_argument("--price-out", type=float)
    pub.add_argument("--price-cached", type=float)
    pub.add_argument("--name")
    pub.add_argument("--region")
    pub.add_argument("--api-format", choices=("openai", "anthropic"))
    cmd(
        "unpublish", "withdraw a listing and revoke its subscribers' keys", cmd_unpublish
    ).add_argument("id")
    lst = cmd("list", "listings of this registry and its peers", cmd_list)
    lst.add_argument("--model")
    lst.add_argument("--sort", choices=("price", "latency", "uptime"))
    cmd("compare", "listings of one model side by side", cmd_compare).add_argument("model")
    use = cmd("use", "subscribe to a listing and route its models to it", cmd_use)
    use.add_argument("id")
    use.add_argument("--as", dest="as_model")
    cmd("subscriptions", "who subscribed to this gateway's listings", cmd_subscriptions)
    cmd("approve", "grant a pending subscription (mints its key)", cmd_approve).add_argument("id")

    peers = market.add_parser("peers", help="registries this one follows").add_subparsers(
        dest="peers_cmd", required=True
    )
    add = cmd("add", "follow a registry (its key is pinned now)", cmd_peers_add, peers)
    add.add_argument("url")
    add.add_argument("--token")
    cmd("list", "followed registries and their last poll", cmd_peers_list, peers)
    cmd("remove", "stop following; its listings go", cmd_peers_remove, peers).add_argument("url")
    cmd("poll", "pull every peer now", cmd_peers_poll, peers)


# -- usage --summary ----------------------------------------------------------------------
def usage_summary(admin: Any, since: str | None = None) -> dict[str, Any]:
    """Consumed (traffic this gateway sent to marketplace providers), supplied
    (traffic of the keys minted for this gateway's subscribers) and net."""
    from tokgateway.admin_client import LocalAdmin

    base = {"since": since} if since else {}
    by_provider = admin.usage({**base, "group_by": "provider"})
    by_key = admin.usage({**base, "group_by": "key"})
    subscribers: set[str] = set()
    if not isinstance(admin, LocalAdmin):
        subs = admin.request("GET", "/admin/market/subscriptions", "registry")["data"]
        subscribers = {s["key_id"] for s in subs if s.get("key_id")}

    def total(rows: list[dict[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {"requests": 0, "tokens": 0, "cost_usd": 0.0}
        for r in rows:
            out["requests"] += r["requests"]
            out["tokens"] += r["prompt_tokens"] + r["completion_tokens"]
            out["cost_usd"] = round(out["cost_usd"] + r["cost_usd"], 10)
        return out

    consumed = total([r for r in by_provider if str(r["group"]).startswith("mkt-")])
    supplied = total([r for r in by_key if r["group"] in subscribers])
    return {
        "id": "market-usage",
        "consumed": consumed,
        "supplied": supplied,
        "net": {
            "tokens": supplied["tokens"] - consumed["tokens"],
            "cost_usd": round(supplied["cost_usd"] - consumed["cost_usd"], 10),
        },
    }


def print_usage_summary(summary: dict[str, Any]) -> None:
    rows = [
        (
            name,
            summary[name].get("requests", "-"),
            summary[name]["tokens"],
            f"{summary[name]['cost_usd']:.6f}",
        )
        for name in ("consumed", "supplied", "net")
    ]
    _table(("MARKET", "REQUESTS", "TOKENS", "COST_USD"), rows)
