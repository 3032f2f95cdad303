"""`gatewayd`: the daemon entry. All-in-one by default; ``--service NAME`` runs one
service of the mesh (router, auth, ledger or registry)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from tokgateway.common.settings import ConfigError, load_settings, resolve_config_dir

SERVICES = ("all", "router", "auth", "ledger", "registry")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gatewayd", description="Tokligence Gateway daemon")
    parser.add_argument("--service", choices=SERVICES, default="all")
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--workers", type=int, help="all-in-one server processes")
    args = parser.parse_args(argv)
    from tokgateway.server import ensure_default_config, serve

    ensure_default_config(resolve_config_dir())
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"gatewayd: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.service != "all":
        from tokgateway.mesh_common import serve_node

        try:
            serve_node(args.service, settings, args.host, args.port)
        except ConfigError as exc:
            print(f"gatewayd: configuration error: {exc}", file=sys.stderr)
            return 2
        return 0
    serve(settings, host=args.host, port=args.port, workers=args.workers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
