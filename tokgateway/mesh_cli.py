"""`gateway providers|models|routes`: the registry from the command line, for
the all-in-one gateway and a mesh alike (see admin_client.connect)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

import orjson

from tokgateway.cli_output import Output
from tokgateway.common.settings import PROVIDER_KINDS, Settings, load_settings


def _print_json(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], **kw: Any) -> None:
    """Aligned, coloured on a terminal only: see cli_output.Output.table."""
    Output.for_stdout().table(headers, rows, **kw)


def _admin() -> Any:
    from tokgateway.admin_client import connect

    settings: Settings = load_settings()
    return connect(settings)


def _targets(raw: list[dict[str, Any]]) -> str:
    return ", ".join(
        t["provider"] + (f":{t['upstream_model']}" if t.get("upstream_model") else "") for t in raw
    )


def _checked(check: dict[str, Any] | None) -> str:
    """The router's last health check of a provider: its latency and age."""
    if not check:
        return "-"
    state = "ok" if check["healthy"] else "failed"
    return f"{state} {check['latency_ms']:g} ms, {check['checked_s_ago']:g} s ago"


def cmd_list(args: argparse.Namespace) -> int:
    rows = _admin().registry_list(args.kind)
    if args.json:
        _print_json(rows)
        return 0
    if args.kind == "providers":
        _table(
            ("NAME", "KIND", "BASE_URL", "CREDENTIAL", "SOURCE", "HEALTH", "CHECKED"),
            [
                (
                    r["name"],
                    r["kind"],
                    r["base_url"] or "-",
                    "yes" if r["has_credential"] else "no",
                    r["source"],
                    (r.get("health") or {}).get("status", "-"),
                    _checked((r.get("health") or {}).get("check")),
                )
                for r in rows
            ],
            status_column="HEALTH",
        )
        for r in rows:
            problem = (r.get("health") or {}).get("problem")
            if problem:
                print(f"warning: provider {r['name']}: {problem}", file=sys.stderr)
    elif args.kind == "models":
        _table(
            ("NAME", "INPUT", "OUTPUT", "CACHED", "ALIAS_OF", "SOURCE"),
            [
                (r["name"], r["input"], r["output"], r["cached"], r["alias_of"], r["source"])
                for r in rows
            ],
        )
    else:
        _table(
            ("PATTERN", "TARGETS", "POSITION", "SOURCE"),
            [(r["pattern"], _targets(r["targets"]), r["position"], r["source"]) for r in rows],
        )
    return 0


def cmd_provider_set(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"name": args.name, "kind": args.kind}
    if args.base_url:
        body["base_url"] = args.base_url
    if args.timeout is not None:
        body["timeout"] = args.timeout
    if args.api_key_stdin:
        body["api_key"] = sys.stdin.readline().strip()
    rec = _admin().registry_put("providers", body)
    cred = "with a credential" if rec["has_credential"] else "without a credential"
    print(f"Provider {rec['name']} ({rec['kind']}) saved {cred}.")
    return 0


def cmd_model_set(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"name": args.name}
    for key in ("input", "output", "cached", "alias_of"):
        value = getattr(args, key)
        if value is not None:
            body[key] = value
    rec = _admin().registry_put("models", body)
    print(f"Model {rec['name']} saved.")
    return 0


def cmd_route_set(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"pattern": args.pattern, "targets": args.to}
    if args.position is not None:
        body["position"] = args.position
    rec = _admin().registry_put("routes", body)
    print(f"Route {rec['pattern']} -> {_targets(rec['targets'])} saved.")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    _admin().registry_delete(args.kind, args.name)
    print(f"Deleted {args.kind[:-1]} {args.name}.")
    return 0


def add_registry_commands(sub: Any) -> None:
    """Add `providers`, `models` and `routes` to the `gateway` parser."""

    def group(kind: str, help_text: str) -> Any:
        parser = sub.add_parser(kind, help=help_text).add_subparsers(
            dest=f"{kind}_cmd", required=True
        )
        lst = parser.add_parser("list", help=f"list {kind}")
        lst.add_argument("--json", action="store_true")
        lst.set_defaults(func=cmd_list, kind=kind)
        return parser

    def delete(parser: Any, kind: str, what: str) -> None:
        rm = parser.add_parser("delete", help=f"delete a {kind[:-1]} (config ones return at start)")
        rm.add_argument("name", metavar=what)
        rm.set_defaults(func=cmd_delete, kind=kind)

    prov = group("providers", "upstream providers (credentials are never shown)")
    pset = prov.add_parser("set", help="add or change a provider")
    pset.add_argument("name")
    pset.add_argument("--kind", required=True, choices=PROVIDER_KINDS)
    pset.add_argument("--base-url")
    pset.add_argument("--timeout", type=float)
    pset.add_argument(
        "--api-key-stdin",
        action="store_true",
        help="read the provider's API key from the first line of standard input",
    )
    pset.set_defaults(func=cmd_provider_set)
    delete(prov, "providers", "name")

    models = group("models", "model prices (USD per million tokens) and aliases")
    mset = models.add_parser("set", help="set a model's price and/or alias")
    mset.add_argument("name")
    mset.add_argument("--input", type=float)
    mset.add_argument("--output", type=float)
    mset.add_argument("--cached", type=float)
    mset.add_argument("--alias-of")
    mset.set_defaults(func=cmd_model_set)
    delete(models, "models", "name")

    routes = group("routes", "which provider serves which model")
    rset = routes.add_parser("set", help="route a model name or glob to providers")
    rset.add_argument("pattern")
    rset.add_argument("--to", required=True, help="'provider[:upstream_model], ...' in order")
    rset.add_argument("--position", type=float, help="lower matches first (default: first)")
    rset.set_defaults(func=cmd_route_set)
    delete(routes, "routes", "pattern")
