"""`gatewayd`: the daemon entry. All-in-one by default; ``--service NAME`` runs one
service of the mesh (router, auth, ledger or registry)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from tokgateway.common.settings import (
    LAYER_DEFAULT,
    ConfigError,
    default_state_dir,
    load_settings,
    resolve_config_dir,
)

SERVICES = ("all", "router", "auth", "ledger", "registry")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gatewayd", description="Tokligence Gateway daemon")
    parser.add_argument("--service", choices=SERVICES, default="all")
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--workers", type=int, help="all-in-one server processes")
    args = parser.parse_args(argv)
    from tokgateway.server import BindError, ensure_default_config, serve

    config_dir = resolve_config_dir()
    # Started from any directory, the daemon creates no ./config there: it
    # writes a setting.ini only into a config dir that was chosen or exists.
    if "GATEWAY_CONFIG_DIR" in os.environ or config_dir.is_dir():
        ensure_default_config(config_dir)
    try:
        settings = load_settings()
        if settings.values["gateway.data_dir"].layer == LAYER_DEFAULT:
            # nor ./data: state goes to the user's state dir unless set; the
            # variable is inherited by the worker processes
            os.environ["GATEWAY_DATA_DIR"] = str(default_state_dir())
            settings = load_settings()
    except ConfigError as exc:
        print(f"gatewayd: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.service != "all":
        try:
            from tokgateway.mesh_common import serve_node

            serve_node(args.service, settings, args.host, args.port)
        except ModuleNotFoundError as exc:
            print(
                f"gatewayd: --service {args.service} needs the mesh drivers ({exc.name} is "
                "missing): pip install 'tokgateway[mesh]'",
                file=sys.stderr,
            )
            return 2
        except ConfigError as exc:
            print(f"gatewayd: configuration error: {exc}", file=sys.stderr)
            return 2
        return 0
    try:
        serve(settings, host=args.host, port=args.port, workers=args.workers)
    except BindError as exc:
        print(f"gatewayd: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
