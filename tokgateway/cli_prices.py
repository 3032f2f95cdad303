"""`gateway prices list|set|refresh`: the price table the ledger meters with,
the date it was read, and the routed models it does not cover."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import httpx
import orjson

from tokgateway.cli_market import _call, _print_json, _table


def cmd_list(args: argparse.Namespace) -> int:
    table = _call("GET", "/admin/prices")
    rows = [r for r in table["data"] if not args.model or args.model in r["model"]]
    if args.json:
        _print_json({**table, "data": rows})
        return 0
    print(f"# price table of {table['as_of'] or 'unknown date'} ({table['source']}), USD per 1M")
    _table(
        ("MODEL", "INPUT", "OUTPUT", "CACHED", "CACHE_WRITE", "SOURCE"),
        [
            (
                r["model"],
                r["input"],
                r["output"],
                r["cached"],
                r["cache_write"],
                r["source"] + (f" {r['provider']}" if r.get("provider") else ""),
            )
            for r in rows
        ],
    )
    for model in table["unpriced"]:
        print(f"warning: model {model} has no price (metered at 0)", file=sys.stderr)
    return 0


def cmd_set(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"name": args.model, "input": args.input, "output": args.output}
    if args.cached is not None:
        body["cached"] = args.cached
    rec = _call("POST", "/admin/models", body)
    if args.json:
        _print_json({"id": rec["name"], **rec})
        return 0
    print(f"Price of {rec['name']} set: {rec['input']:g} in, {rec['output']:g} out per 1M.")
    return 0


def _read(source: str) -> Any:
    if source.startswith(("http://", "https://")):
        resp = httpx.get(source, timeout=30.0, follow_redirects=True)
        resp.raise_for_status()
        raw = resp.content
    else:
        raw = Path(source).read_bytes()
    return orjson.loads(raw)


def cmd_refresh(args: argparse.Namespace) -> int:
    from tokgateway.admin_client import AdminError

    try:
        doc = _read(args.source)
    except (OSError, httpx.HTTPError, orjson.JSONDecodeError) as exc:
        raise AdminError(f"cannot read a price table from {args.source}: {exc}") from None
    if not isinstance(doc, dict):
        raise AdminError(f"{args.source} is not a price table (a JSON object)")
    rec = _call("POST", "/admin/prices/table", {**doc, "source": args.source})
    if args.json:
        _print_json(rec)
        return 0
    print(f"Price table of {rec['as_of']} loaded from {rec['source']}: {rec['models']} models.")
    return 0


def add_commands(sub: Any) -> None:
    prices = sub.add_parser("prices", help="the price table the ledger meters with").add_subparsers(
        dest="prices_cmd", required=True
    )
    lst = prices.add_parser("list", help="every price, the table's date, unpriced models")
    lst.add_argument("--model")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=cmd_list)
    pset = prices.add_parser("set", help="price one model (wins over any table)")
    pset.add_argument("model")
    pset.add_argument("--input", type=float, required=True)
    pset.add_argument("--output", type=float, required=True)
    pset.add_argument("--cached", type=float)
    pset.add_argument("--json", action="store_true")
    pset.set_defaults(func=cmd_set)
    ref = prices.add_parser("refresh", help="replace the table from a JSON file or URL")
    ref.add_argument("--from", dest="source", required=True)
    ref.add_argument("--json", action="store_true")
    ref.set_defaults(func=cmd_refresh)
