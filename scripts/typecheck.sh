#!/usr/bin/env bash
# mypy --strict over the installed layout: the tokgateway package maps folders
# (services/*, libs/common) to subpackages, so build that view with symlinks.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
view="$root/build/typecheck"
rm -rf "$view"
mkdir -p "$view/tokgateway"
for f in "$root"/tokgateway/*.py; do ln -s "$f" "$view/tokgateway/"; done
ln -s "$root/services/router" "$view/tokgateway/router"
ln -s "$root/services/auth" "$view/tokgateway/auth"
ln -s "$root/services/ledger" "$view/tokgateway/ledger"
ln -s "$root/services/registry" "$view/tokgateway/registry"
ln -s "$root/libs/common" "$view/tokgateway/common"
cd "$view"
exec "${PYTHON:-$root/.venv/bin/python}" -m mypy --config-file "$root/pyproject.toml" -p tokgateway
