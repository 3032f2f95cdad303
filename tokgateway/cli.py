"""The `gateway` command: run, start/stop, config, keys, usage."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from tokgateway import __version__
from tokgateway.cli_governance import add_commands as add_governance_commands
from tokgateway.cli_governance import add_key_commands, add_key_create_flags
from tokgateway.cli_output import ConfirmationRequired, Output
from tokgateway.common.settings import ConfigError, Settings, load_settings, resolve_config_dir


def _load() -> Settings:
    return load_settings()


def _print_json(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], **kw: Any) -> None:
    """Aligned, coloured on a terminal only: see cli_output.Output.table."""
    Output.for_stdout().table(headers, rows, **kw)


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")


# -- run / start / stop -------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    from tokgateway.server import BindError, ensure_default_config, serve

    config_dir = resolve_config_dir()
    if ensure_default_config(config_dir):
        print(f"wrote default config to {config_dir / 'setting.ini'}", file=sys.stderr)
    try:
        serve(_load(), host=args.host, port=args.port, workers=args.workers)
    except BindError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    from tokgateway.process import start

    return start(_load(), host=args.host, port=args.port)


def cmd_stop(args: argparse.Namespace) -> int:
    from tokgateway.process import stop

    return stop(_load())


def cmd_status(args: argparse.Namespace) -> int:
    from tokgateway.cli_ops import mesh_status, mesh_urls
    from tokgateway.process import status

    settings = _load()
    if mesh_urls(settings):
        return mesh_status(settings, Output.for_stdout(json_mode=args.json), args.json)
    return status(settings)


def cmd_url(args: argparse.Namespace) -> int:
    from tokgateway.admin_client import gateway_url

    print(gateway_url(_load()))
    return 0


# -- config -------------------------------------------------------------------------
def cmd_config_show(args: argparse.Namespace) -> int:
    settings = _load()
    rows = settings.rows()
    if args.json:
        _print_json([{"key": k, "value": v, "layer": layer} for k, v, layer in rows])
        return 0
    _note_config_changes(settings)
    files = ", ".join(str(f) for f in settings.files) or "(none)"
    print(f"# config dir: {settings.config_dir}   files: {files}")
    _table(("KEY", "VALUE", "LAYER"), rows)
    return 0


def _note_config_changes(settings: Settings) -> None:
    """Say when the files differ from what the running gateway loaded."""
    from tokgateway import runfiles

    running = runfiles.read(settings.data_dir)
    changed = runfiles.config_changes(settings.data_dir, settings.files) if running else []
    if running and changed:
        print(
            f"note: the running gateway (pid {running.pid}) loaded an older version of "
            f"{', '.join(changed)}; `gateway reload` applies the files",
            file=sys.stderr,
        )


# -- keys ---------------------------------------------------------------------------
def cmd_keys_create(args: argparse.Namespace) -> int:
    from tokgateway.admin_client import connect
    from tokgateway.cli_governance import key_create_body

    params: dict[str, Any] = {"name": args.name}
    if args.models:
        params["models"] = [m.strip() for m in args.models.split(",") if m.strip()]
    if args.expires_days is not None:
        params["expires_days"] = args.expires_days
    params.update(key_create_body(args))
    created = connect(_load()).create_key(params)
    if args.json:
        _print_json(created)
        return 0
    print(f"Created key {created['id']} ({created['name']}):")
    print(f"  {created['key']}")
    print("Store it now: the gateway keeps only its hash and cannot show it again.")
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    from tokgateway.admin_client import connect

    keys = connect(_load()).list_keys()
    if args.json:
        _print_json(keys)
        return 0
    rows = [
        (
            k["id"],
            k["name"],
            _key_status(k),
            ",".join(k.get("models") or []) or "*",
            k.get("rpm") or "-",
            _when(k.get("created_at")),
            _when(k.get("expires_at")),
            k["hint"],
        )
        for k in keys
    ]
    _table(
        ("ID", "NAME", "STATUS", "MODELS", "RPM", "CREATED", "EXPIRES", "KEY"),
        rows,
        status_column="STATUS",
    )
    return 0


def _key_status(key: dict[str, Any]) -> str:
    """The key's status, and that it is the admin key: a revoked admin key
    reads "revoked (admin)", never just "admin"."""
    if not key.get("is_admin"):
        return str(key["status"])
    return "admin" if key["status"] == "active" else f"{key['status']} (admin)"


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    from tokgateway.admin_client import connect

    admin = connect(_load())
    target = next((k for k in admin.list_keys() if k["id"] == args.id), None)
    if target is not None and target.get("is_admin") and target["status"] == "active":
        Output.for_stdout().confirm(
            f"{args.id} is the admin key: revoking it locks the admin API out "
            "until a new admin key is set (GATEWAY_ADMIN_KEY).",
            assume_yes=args.yes,
        )
    rec = admin.revoke_key(args.id)
    print(f"Revoked key {rec['id']} ({rec['name']}).")
    return 0


# -- usage --------------------------------------------------------------------------
def cmd_usage(args: argparse.Namespace) -> int:
    from tokgateway.admin_client import connect

    params = {}
    if args.key:
        params["key"] = args.key
    if args.since:
        params["since"] = args.since
    if args.group_by:
        params["group_by"] = args.group_by
    admin = connect(_load())
    if args.summary:
        from tokgateway.cli_market import print_usage_summary, usage_summary

        summary = usage_summary(admin, args.since)
        _print_json(summary) if args.json else print_usage_summary(summary)
        return 0
    with Output.for_stdout().progress(f"reading the ledger at {admin.where}"):
        rows = admin.usage(params)
    if args.json:
        _print_json(rows)
        return 0
    if not rows:
        print("No usage recorded for this selection.")
        return 0
    _table(
        (
            (args.group_by or "").upper() or "ALL",
            "REQUESTS",
            "ERRORS",
            "PROMPT",
            "COMPLETION",
            "CACHED",
            "COST_USD",
        ),
        [
            (
                r["group"],
                r["requests"],
                r["errors"],
                r["prompt_tokens"],
                r["completion_tokens"],
                r["cached_tokens"],
                f"{r['cost_usd']:.6f}",
            )
            for r in rows
        ],
        totals=_usage_totals(rows) if len(rows) > 1 else None,
    )
    return 0


def _usage_totals(rows: Sequence[dict[str, Any]]) -> tuple[Any, ...]:
    def total(key: str) -> Any:
        return sum(r[key] for r in rows)

    return (
        "total",
        total("requests"),
        total("errors"),
        total("prompt_tokens"),
        total("completion_tokens"),
        total("cached_tokens"),
        f"{total('cost_usd'):.6f}",
    )


def build_parser() -> argparse.ArgumentParser:
    from tokgateway.cli_help import document, environment_epilog

    p = argparse.ArgumentParser(
        prog="gateway",
        description="Tokligence Gateway: one OpenAI- and Anthropic-compatible endpoint "
        "with keys, routing and a metered ledger.",
        epilog=environment_epilog(),
    )
    p.add_argument("--version", action="version", version=f"tokgateway {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="serve the all-in-one gateway in the foreground")
    run.add_argument("--host")
    run.add_argument("--port", type=int)
    run.add_argument("--workers", type=int, help="server processes (default 1, GATEWAY_WORKERS)")
    run.set_defaults(func=cmd_run)

    start = sub.add_parser("start", help="start the gateway in the background (pid + log file)")
    start.add_argument("--host")
    start.add_argument("--port", type=int)
    start.set_defaults(func=cmd_start)
    sub.add_parser("stop", help="stop a background gateway").set_defaults(func=cmd_stop)
    status = sub.add_parser(
        "status", help="is the gateway running, and where (a mesh: each service's readiness)"
    )
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)

    sub.add_parser("url", help="print the gateway's base URL").set_defaults(func=cmd_url)

    config = sub.add_parser("config", help="configuration").add_subparsers(
        dest="config_cmd", required=True
    )
    show = config.add_parser("show", help="every effective key and the layer that set it")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_config_show)

    keys = sub.add_parser("keys", help="API keys").add_subparsers(dest="keys_cmd", required=True)
    create = keys.add_parser("create", help="create a key and print its secret once")
    create.add_argument("--name", required=True)
    create.add_argument("--models", help="comma-separated allow-list (globs allowed)")
    create.add_argument("--expires-days", type=float)
    add_key_create_flags(create)
    create.add_argument("--json", action="store_true")
    create.set_defaults(func=cmd_keys_create)
    klist = keys.add_parser("list", help="list keys (secrets are never shown)")
    klist.add_argument("--json", action="store_true")
    klist.set_defaults(func=cmd_keys_list)
    revoke = keys.add_parser("revoke", help="revoke a key; refused on its next request")
    revoke.add_argument("id")
    revoke.add_argument("--yes", action="store_true")
    revoke.set_defaults(func=cmd_keys_revoke)
    add_key_commands(keys)

    usage = sub.add_parser("usage", help="tokens and cost from the ledger")
    usage.add_argument("--key", help="only this key id")
    usage.add_argument("--since", help="ISO 8601 time, e.g. 2026-11-01 or 2026-11-01T12:00Z")
    usage.add_argument("--group-by", choices=("model", "provider", "key", "day", "user", "team"))
    usage.add_argument("--summary", action="store_true")
    usage.add_argument("--json", action="store_true")
    usage.set_defaults(func=cmd_usage)

    from tokgateway.mesh_cli import add_registry_commands

    add_registry_commands(sub)
    add_governance_commands(sub)
    from tokgateway.cli_ops import add_commands as add_ops_commands

    add_ops_commands(sub)
    from tokgateway.cli_hooks import add_commands as add_hook_commands

    add_hook_commands(sub)
    from tokgateway.cli_market import add_commands as add_market_commands

    add_market_commands(sub)
    from tokgateway.cli_prices import add_commands as add_price_commands

    add_price_commands(sub)
    document(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from tokgateway.admin_client import AdminError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"gateway: configuration error: {exc}", file=sys.stderr)
        return 2
    except (AdminError, ConfirmationRequired) as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
