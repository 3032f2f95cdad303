"""A cached venv outside the clone with a pinned, older pair of the official
SDKs (``~/.cache/tokgateway/sdk-pinned/<pins>``), so the SDK tests run against
both the newest releases (the project's venv) and these. Built once (about a
minute), reused after; ``TOKGATEWAY_CACHE`` moves the cache."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

# Older majors that clients still run in the field: openai 2.x (httpx), and
# anthropic 1.x (x-api-key, anthropic-version 2023-06-01).
PINNED = {"openai": "2.54.0", "anthropic": "1.17.0"}


def cache_root() -> Path:
    base = os.environ.get("TOKGATEWAY_CACHE") or str(Path.home() / ".cache" / "tokgateway")
    return Path(base) / "sdk-pinned"


def pinned_python(pins: dict[str, str] = PINNED) -> Path:
    """The python of the pinned venv, created (or repaired) on first use."""
    name = "-".join(f"{k}{v}" for k, v in sorted(pins.items()))
    root = cache_root() / name
    python = root / "bin" / "python"
    stamp = root / ".installed"
    if stamp.exists() and python.exists():
        return python
    root.parent.mkdir(parents=True, exist_ok=True)
    print(f"sdk-pinned: building {root} ({', '.join(pins)}; once, ~1 min)", file=sys.stderr)
    venv.EnvBuilder(with_pip=True, clear=True).create(root)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", *(f"{k}=={v}" for k, v in pins.items())],
        check=True,
        timeout=600,
    )
    stamp.write_text(" ".join(f"{k}=={v}" for k, v in pins.items()) + "\n")
    return python
