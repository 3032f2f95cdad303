"""`gateway hooks`: provisioning hooks (webhooks and scripts fired by user,
team and key events), their delivery log and replays. Talks to the admin API
of a running gateway (or, in a mesh, of the auth service); on a stopped
all-in-one gateway it works on the SQLite file (deliveries then go out at the
next start)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson

from tokgateway.admin_client import AdminError, connect


def _print_json(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")


def _table(headers: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    cells = [list(headers)] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _call(method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """An admin hooks route: of the running gateway (or the mesh's auth
    service), else served in this process on the stopped gateway's file."""
    from tokgateway.cli import _load

    return connect(_load()).request(method, path, "auth", body)


def cmd_list(args: argparse.Namespace) -> int:
    hooks = _call("GET", "/admin/hooks")["data"]
    if args.json:
        _print_json(hooks)
        return 0
    rows = [
        (
            h["name"],
            h["kind"],
            ",".join(h["events"]),
            h["url"] or h["command"],
            h["source"],
            "yes" if h["enabled"] else "no",
        )
        for h in hooks
    ]
    _table(("NAME", "KIND", "EVENTS", "TARGET", "SOURCE", "ENABLED"), rows)
    return 0


def cmd_add(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"name": args.name, "events": args.events}
    if args.url:
        body |= {"kind": "webhook", "url": args.url}
    elif args.command:
        body |= {"kind": "script", "command": args.command}
    else:
        raise AdminError("give --url (a webhook) or --command (a script)")
    for key in ("secret_env", "secret", "timeout_s"):
        value = getattr(args, key)
        if value is not None:
            body[key] = value
    created = _call("POST", "/admin/hooks", body)
    if args.json:
        _print_json(created)
        return 0
    print(f"Added {created['kind']} hook {created['name']} for {', '.join(created['events'])}.")
    if created.get("secret"):
        print("Signing secret (shown once; receivers verify webhook-signature with it):")
        print(f"  {created['secret']}")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    _call("DELETE", f"/admin/hooks/{args.name}")
    print(f"Removed hook {args.name}.")
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    result = _call("POST", f"/admin/hooks/{args.name}/test")
    if args.json:
        _print_json(result)
    elif result["ok"]:
        print(f"{args.name}: delivered (status {result['status']}).")
    else:
        print(f"{args.name}: failed: {result['error']}")
    return 0 if result["ok"] else 1


def cmd_log(args: argparse.Namespace) -> int:
    query = f"?limit={args.limit}" + ("&failed=1" if args.failed else "")
    if args.event:
        query += f"&event_id={args.event}"
    rows = _call("GET", "/admin/hooks/log" + query)["data"]
    if args.json:
        _print_json(rows)
        return 0
    from tokgateway.cli import _when

    _table(
        ("EVENT", "TYPE", "HOOK", "STATE", "ATTEMPTS", "STATUS", "UPDATED", "LAST ERROR"),
        [
            (
                r["event_id"],
                r["type"],
                r["hook"],
                r["state"],
                r["attempts"],
                r["last_status"],
                _when(r["updated_at"]),
                (r["last_error"] or "")[:60],
            )
            for r in rows
        ],
    )
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    result = _call("POST", f"/admin/hooks/replay/{args.event_id}")
    print(f"Queued {result['queued']} deliveries of {args.event_id}.")
    return 0


def add_commands(sub: Any) -> None:
    hooks = sub.add_parser("hooks", help="provisioning hooks: webhooks and scripts").add_subparsers(
        dest="hooks_cmd", required=True
    )
    hlist = hooks.add_parser("list", help="hooks from the config files and the API")
    hlist.add_argument("--json", action="store_true")
    hlist.set_defaults(func=cmd_list)

    add = hooks.add_parser("add", help="add a webhook (--url) or a script (--command)")
    add.add_argument("name")
    add.add_argument("--events", required=True, help="globs, e.g. 'key.*,user.created'")
    add.add_argument("--url", help="webhook URL (Standard Webhooks signed POST)")
    add.add_argument("--command", help="script: gets the event JSON on stdin")
    add.add_argument("--secret-env", help="variable of the gateway holding the whsec_ secret")
    add.add_argument("--secret", help="a whsec_ secret (default: one is generated and shown once)")
    add.add_argument("--timeout-s", type=float)
    add.add_argument("--json", action="store_true")
    add.set_defaults(func=cmd_add)

    remove = hooks.add_parser("remove", help="remove a hook added through the CLI or API")
    remove.add_argument("name")
    remove.set_defaults(func=cmd_remove)

    test = hooks.add_parser("test", help="send a hook.test event to a hook now")
    test.add_argument("name")
    test.add_argument("--json", action="store_true")
    test.set_defaults(func=cmd_test)

    hlog = hooks.add_parser("log", help="deliveries: state, attempts, last status and error")
    hlog.add_argument("--failed", action="store_true", help="dead ones and failing retries only")
    hlog.add_argument("--event", help="only this event id")
    hlog.add_argument("--limit", type=int, default=50)
    hlog.add_argument("--json", action="store_true")
    hlog.set_defaults(func=cmd_log)

    replay = hooks.add_parser("replay", help="send one event again to its hooks")
    replay.add_argument("event_id")
    replay.set_defaults(func=cmd_replay)
