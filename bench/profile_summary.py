"""Summarise py-spy collapsed stacks (``py-spy record --format raw``): where the
samples end (self time) by package and by function, and which of the gateway's
own functions are on the stack most (inclusive time).

    python bench/profile_summary.py /tmp/profile.txt [--top 20]
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

FRAME_RE = re.compile(r"^(?P<func>.*?) \((?P<file>.*?)(?::(?P<line>\d+))?\)$")
# Where the gateway's own code lives, and its package names. py-spy shortens a
# file to its path below the sys.path entry, so the editable install's folders
# show up as router/..., common/... and the full paths only now and then.
OWN_CODE = (
    ("services/router/", "tokgateway.router"),
    ("services/auth/", "tokgateway.auth"),
    ("services/ledger/", "tokgateway.ledger"),
    ("services/registry/", "tokgateway.registry"),
    ("libs/common/", "tokgateway.common"),
    ("tokgateway/", "tokgateway"),
)
SHORT_OWN = {
    "router": "tokgateway.router",
    "auth": "tokgateway.auth",
    "ledger": "tokgateway.ledger",
    "registry": "tokgateway.registry",
    "common": "tokgateway.common",
}
# The start-up chain (cli -> server -> event loop) is under every sample; it says nothing.
ENTRY_FILES = ("tokgateway/cli.py", "tokgateway/server.py")


@dataclass(frozen=True)
class Stack:
    thread: str  # "" unless recorded with --threads
    frames: list[tuple[str, str]]  # root first, as (function, file)
    samples: int


THREAD_RE = re.compile(r"^thread \((?P<tid>[^)]*)\)")


def parse(text: str) -> list[Stack]:
    """Collapsed stacks, one ``frame;frame;... count`` per line."""
    stacks = []
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        thread = ""
        frames: list[tuple[str, str]] = []
        for raw in stack.split(";"):
            if raw.startswith("process "):
                continue
            if not frames and (t := THREAD_RE.match(raw)):
                thread = t["tid"]
                continue
            m = FRAME_RE.match(raw)
            frames.append((m["func"], m["file"]) if m else (raw, ""))
        if frames:
            stacks.append(Stack(thread, frames, int(count)))
    return stacks


def package(file: str) -> str:
    """The package a frame belongs to: the gateway's own packages by their source
    folder, everything else by its first path component."""
    norm = file.replace("\\", "/")
    for marker, name in OWN_CODE:
        if norm.startswith(marker) or f"/{marker}" in norm:
            return name
    for marker in ("site-packages/", "dist-packages/"):
        if marker in norm:
            norm = norm.split(marker, 1)[1]
    if "/lib/python3" in norm:
        norm = norm.split("/lib/python3", 1)[1].split("/", 1)[-1]
    head = norm.split("/", 1)[0] if "/" in norm else norm.removesuffix(".py")
    return SHORT_OWN.get(head, head or "?")


def is_own(file: str) -> bool:
    norm = file.replace("\\", "/")
    if any(norm.endswith(entry) for entry in ENTRY_FILES):
        return False
    return package(file).startswith("tokgateway")


def _short(func: str, file: str) -> str:
    norm = file.replace("\\", "/")
    for marker in ("site-packages/", "dist-packages/", "/work/main/"):
        if marker in norm:
            norm = norm.split(marker, 1)[1]
    return f"{func} ({norm})"


def _pct(part: int, total: int) -> str:
    return f"{100.0 * part / total:5.1f}%"


def _section(title: str, rows: Iterable[tuple[str, int]], total: int, top: int) -> list[str]:
    out = [title]
    for i, (name, count) in enumerate(rows):
        if i >= top:
            break
        out.append(f"  {_pct(count, total)}  {name}")
    return out


def summarize(text: str, top: int = 15, main_thread: str = "") -> str:
    """A plain-text report of the stacks; ``main_thread`` (the process id) names
    the event-loop thread when the stacks were recorded with ``--threads``."""
    stacks = parse(text)
    total = sum(st.samples for st in stacks)
    if not total:
        return "profile: no samples"
    threads: Counter[str] = Counter()
    self_pkg: Counter[str] = Counter()
    self_func: Counter[str] = Counter()
    own_incl: Counter[str] = Counter()
    own_self: Counter[str] = Counter()
    lib_under_own: Counter[str] = Counter()
    for st in stacks:
        n = st.samples
        if st.thread:
            label = "event loop (main thread)" if st.thread == main_thread else "other"
            threads[f"thread {st.thread} {label}"] += n
        func, file = st.frames[-1]
        self_pkg[package(file)] += n
        self_func[_short(func, file)] += n
        seen = set()
        innermost = None
        for f, fl in st.frames:
            if is_own(fl):
                innermost = _short(f, fl)
                if innermost not in seen:
                    seen.add(innermost)
                    own_incl[innermost] += n
        if innermost is None:
            lib_under_own[f"(no gateway frame) -> {package(file)}"] += n
        elif is_own(file):
            own_self[innermost] += n
        else:
            lib_under_own[f"{innermost} -> {package(file)}"] += n
    lines = [f"py-spy profile: {total} samples (on CPU)"]
    if threads:
        lines += _section("samples by thread:", threads.most_common(), total, top)
    lines += _section("self time by package:", self_pkg.most_common(), total, top)
    lines += _section("self time by function:", self_func.most_common(), total, top)
    lines += _section(
        "gateway functions, inclusive (on the stack):", own_incl.most_common(), total, top
    )
    lines += _section("gateway functions, self time:", own_self.most_common(), total, top)
    lines += _section(
        "library time by innermost gateway frame -> library:",
        lib_under_own.most_common(),
        total,
        top,
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Summarise py-spy raw (collapsed) stacks.")
    p.add_argument("path", type=Path)
    p.add_argument("--top", type=int, default=15)
    p.add_argument("--main-thread", default="", help="the process id (names the loop thread)")
    args = p.parse_args(argv)
    print(summarize(args.path.read_text(errors="replace"), args.top, args.main_thread))
    return 0


if __name__ == "__main__":
    sys.exit(main())
