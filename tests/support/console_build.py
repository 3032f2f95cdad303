"""Builds the web console for the tests through `make ui` (npm ci only when
the lock file changed, the Vite build only when a source is newer than the
build), so a second run costs a `make` dry check."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FE = ROOT / "fe"


def npm_missing() -> str | None:
    for tool in ("node", "npm", "make"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


def ensure_built() -> Path:
    """fe/dist, built and current; raises with npm's output when it fails."""
    problem = npm_missing()
    assert problem is None, f"the console needs Node.js and npm: {problem}"
    done = subprocess.run(
        ["make", "-s", "--no-print-directory", "ui"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    dist = FE / "dist"
    assert (dist / "web" / "index.html").is_file() and (dist / "h5" / "index.html").is_file()
    return dist
