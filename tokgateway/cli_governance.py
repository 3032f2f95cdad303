"""`gateway users|teams` and the key commands that carry limits (`keys update`,
`keys show`, `keys rotate`, and the owner, team and limit flags of `keys
create`). Every command reaches the admin API through admin_client.connect:
a running gateway, the SQLite file of a stopped one, or a mesh."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import orjson

from tokgateway.common.contracts import BUDGET_PERIODS, ROLES
from tokgateway.common.settings import load_settings

CLEAR = "none"  # `--rpm none` clears a limit


def _print_json(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[str(h) for h in headers]] + [["-" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _call(method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    from tokgateway.admin_client import connect

    return connect(load_settings()).request(method, path, "auth", body)


def _id(value: str) -> str:
    return quote(value, safe="")


# -- limit flags ------------------------------------------------------------------------
def _count(raw: str) -> int | str:
    if raw.lower() == CLEAR:
        return CLEAR
    value = int(raw)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive integer (or 'none' to clear)")
    return value


def _usd(raw: str) -> float | str:
    if raw.lower() == CLEAR:
        return CLEAR
    value = float(raw)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0 (or 'none' to clear)")
    return value


def add_limit_flags(parser: argparse.ArgumentParser) -> None:
    """The same limit flags on keys, users and teams."""
    parser.add_argument("--rpm", type=_count, help="requests per minute ('none' clears)")
    parser.add_argument("--tpm", type=_count, help="tokens per minute, prompt + completion")
    parser.add_argument("--budget-usd", type=_usd, help="spend budget in USD per period")
    parser.add_argument(
        "--budget-period", choices=BUDGET_PERIODS, help="UTC day, ISO week, month (default), total"
    )


def limit_body(args: argparse.Namespace) -> dict[str, Any]:
    """The limit flags given, as admin API fields ('none' -> null)."""
    body: dict[str, Any] = {}
    for name in ("rpm", "tpm", "budget_usd", "budget_period"):
        value = getattr(args, name, None)
        if value is not None:
            body[name] = None if value == CLEAR else value
    return body


def key_create_body(args: argparse.Namespace) -> dict[str, Any]:
    """Owner, team and limits of `keys create`: --user takes a user id, or an
    email (the user is made when new)."""
    body = limit_body(args)
    if args.user:
        body["user_email" if "@" in args.user else "user_id"] = args.user
    if args.team:
        body["team_id"] = args.team
    return body


def add_key_create_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--user", help="owner: a user id, or an email (default: the admin user)")
    parser.add_argument("--team", help="team id (the owner must be a member)")
    add_limit_flags(parser)


def _limits_text(obj: dict[str, Any]) -> tuple[Any, Any, Any]:
    budget = obj.get("budget_usd")
    shown = f"{budget:g}/{obj.get('budget_period') or 'month'}" if budget is not None else None
    return obj.get("rpm"), obj.get("tpm"), shown


def _show(obj: dict[str, Any], args: argparse.Namespace, title: str) -> int:
    if args.json:
        _print_json(obj)
        return 0
    print(title)
    for name, value in obj.items():
        shown = ", ".join(str(v) for v in value) if isinstance(value, list) else value
        print(f"  {name}: {'-' if shown is None or shown == '' else shown}")
    return 0


# -- users ------------------------------------------------------------------------------
def cmd_users_create(args: argparse.Namespace) -> int:
    body = {"email": args.email, "role": args.role, **limit_body(args)}
    user = _call("POST", "/admin/users", body)
    return _show(user, args, f"Created user {user['id']} ({user['email']}, {user['role']}).")


def cmd_users_list(args: argparse.Namespace) -> int:
    users = _call("GET", "/admin/users")["data"]
    if args.json:
        _print_json(users)
        return 0
    _table(
        ("ID", "EMAIL", "ROLE", "STATUS", "RPM", "TPM", "BUDGET", "TEAMS"),
        [
            (u["id"], u["email"], u["role"], u["status"], *_limits_text(u), ",".join(u["teams"]))
            for u in users
        ],
    )
    return 0


def cmd_users_show(args: argparse.Namespace) -> int:
    user = _call("GET", f"/admin/users/{_id(args.id)}")
    return _show(user, args, f"User {user['id']}")


def cmd_users_update(args: argparse.Namespace) -> int:
    body = limit_body(args)
    if args.role:
        body["role"] = args.role
    if args.status:
        body["status"] = args.status
    user = _call("PATCH", f"/admin/users/{_id(args.id)}", body)
    return _show(user, args, f"Updated user {user['id']}.")


def cmd_users_disable(args: argparse.Namespace) -> int:
    user = _call("POST", f"/admin/users/{_id(args.id)}/disable")
    return _show(user, args, f"Disabled user {user['id']}; its keys are refused from now on.")


def cmd_users_delete(args: argparse.Namespace) -> int:
    gone = _call("DELETE", f"/admin/users/{_id(args.id)}")
    return _show(gone, args, f"Deleted user {gone['id']}; its keys are revoked.")


# -- teams ------------------------------------------------------------------------------
def cmd_teams_create(args: argparse.Namespace) -> int:
    team = _call("POST", "/admin/teams", {"name": args.name, **limit_body(args)})
    return _show(team, args, f"Created team {team['id']} ({team['name']}).")


def cmd_teams_list(args: argparse.Namespace) -> int:
    teams = _call("GET", "/admin/teams")["data"]
    if args.json:
        _print_json(teams)
        return 0
    _table(
        ("ID", "NAME", "MEMBERS", "RPM", "TPM", "BUDGET"),
        [(t["id"], t["name"], len(t["members"]), *_limits_text(t)) for t in teams],
    )
    return 0


def cmd_teams_show(args: argparse.Namespace) -> int:
    team = _call("GET", f"/admin/teams/{_id(args.id)}")
    return _show(team, args, f"Team {team['id']}")


def cmd_teams_update(args: argparse.Namespace) -> int:
    body = limit_body(args)
    if args.name:
        body["name"] = args.name
    team = _call("PATCH", f"/admin/teams/{_id(args.id)}", body)
    return _show(team, args, f"Updated team {team['id']}.")


def cmd_teams_delete(args: argparse.Namespace) -> int:
    gone = _call("DELETE", f"/admin/teams/{_id(args.id)}")
    return _show(gone, args, f"Deleted team {gone['id']}.")


def cmd_teams_member(args: argparse.Namespace) -> int:
    method = "POST" if args.add else "DELETE"
    path = f"/admin/teams/{_id(args.team_id)}/members/{_id(args.user_id)}"
    team = _call(method, path)
    verb = "Added" if args.add else "Removed"
    prep = "to" if args.add else "from"
    return _show(team, args, f"{verb} user {args.user_id} {prep} team {team['id']}.")


# -- keys -------------------------------------------------------------------------------
def cmd_keys_update(args: argparse.Namespace) -> int:
    body = limit_body(args)
    if args.models is not None:
        body["models"] = [m.strip() for m in args.models.split(",") if m.strip()]
    if args.name:
        body["name"] = args.name
    key = _call("PATCH", f"/admin/keys/{_id(args.id)}", body)
    return _show(key, args, f"Updated key {key['id']} ({key['name']}).")


def cmd_keys_show(args: argparse.Namespace) -> int:
    key = _call("GET", f"/admin/keys/{_id(args.id)}")
    if args.json:
        _print_json(key)
        return 0
    rpm, tpm, budget = _limits_text(key)
    print(f"Key {key['id']} ({key['name']}, {key['status']}, {key['hint']})")
    print(f"  user: {key['user_id'] or '-'}   team: {key['team_id'] or '-'}")
    print(f"  models: {','.join(key['models']) or '*'}   rpm: {rpm or '-'}   tpm: {tpm or '-'}")
    print(f"  budget: {budget or '-'}")
    _table(
        ("BUDGET OF", "ID", "PERIOD", "SPENT_USD", "BUDGET_USD", "REMAINING_USD"),
        [
            (
                b["kind"],
                b["id"],
                b["period_id"],
                None if b["spend_usd"] is None else f"{b['spend_usd']:.6f}",
                b["budget_usd"],
                None if b["remaining_usd"] is None else f"{b['remaining_usd']:.6f}",
            )
            for b in key["budgets"]
        ],
    )
    return 0


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    key = _call("POST", f"/admin/keys/{_id(args.id)}/rotate")
    if args.json:
        _print_json(key)
        return 0
    print(f"Rotated key {key['id']} ({key['name']}); the old secret no longer works:")
    print(f"  {key['key']}")
    print("Store it now: the gateway keeps only its hash and cannot show it again.")
    return 0


def add_key_commands(keys: Any) -> None:
    """`keys update|show|rotate`, added to the existing `keys` group."""
    update = keys.add_parser("update", help="change a key's limits, models or name")
    update.add_argument("id")
    update.add_argument("--name")
    update.add_argument("--models", help="comma-separated allow-list; '' allows every model")
    add_limit_flags(update)
    update.add_argument("--json", action="store_true")
    update.set_defaults(func=cmd_keys_update)
    show = keys.add_parser("show", help="a key with its spend and remaining budget")
    show.add_argument("id")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_keys_show)
    rotate = keys.add_parser("rotate", help="new secret, same id and limits; old one stops")
    rotate.add_argument("id")
    rotate.add_argument("--json", action="store_true")
    rotate.set_defaults(func=cmd_keys_rotate)


def add_commands(sub: Any) -> None:
    """Add `users` and `teams` to the `gateway` parser."""

    def command(group: Any, name: str, help_text: str, func: Any, *ids: str) -> Any:
        parser = group.add_parser(name, help=help_text)
        for arg in ids:
            parser.add_argument(arg)
        parser.add_argument("--json", action="store_true")
        parser.set_defaults(func=func)
        return parser

    users = sub.add_parser("users", help="users: role, status and limits").add_subparsers(
        dest="users_cmd", required=True
    )
    create = command(users, "create", "create a user", cmd_users_create)
    create.add_argument("--email", required=True)
    create.add_argument("--role", choices=ROLES, default="member")
    add_limit_flags(create)
    command(users, "list", "list users", cmd_users_list)
    command(users, "show", "one user", cmd_users_show, "id")
    update = command(users, "update", "change a user's limits, role or status", cmd_users_update)
    update.add_argument("id")
    update.add_argument("--role", choices=ROLES)
    update.add_argument("--status", choices=("active", "disabled"))
    add_limit_flags(update)
    command(users, "disable", "disable a user: its keys are refused", cmd_users_disable, "id")
    command(users, "delete", "delete a user and revoke its keys", cmd_users_delete, "id")

    teams = sub.add_parser("teams", help="teams: members and limits").add_subparsers(
        dest="teams_cmd", required=True
    )
    tcreate = command(teams, "create", "create a team", cmd_teams_create)
    tcreate.add_argument("--name", required=True)
    add_limit_flags(tcreate)
    command(teams, "list", "list teams", cmd_teams_list)
    command(teams, "show", "one team with its members", cmd_teams_show, "id")
    tupdate = command(teams, "update", "change a team's limits or name", cmd_teams_update, "id")
    tupdate.add_argument("--name")
    add_limit_flags(tupdate)
    command(teams, "delete", "delete a team (its keys stay, teamless)", cmd_teams_delete, "id")
    add = command(teams, "add-member", "add a user to a team", cmd_teams_member)
    add.add_argument("team_id")
    add.add_argument("user_id")
    add.set_defaults(add=True)
    rm = command(
        teams, "remove-member", "remove a user (and its keys) from a team", cmd_teams_member
    )
    rm.add_argument("team_id")
    rm.add_argument("user_id")
    rm.set_defaults(add=False)
