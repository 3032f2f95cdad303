"""What the `gateway` command prints, in one place for every command module:
aligned tables (numbers right-aligned, a totals row where columns add up),
colour only on a terminal (never with --json, never under NO_COLOR), progress
on stderr for operations that take a while, and a confirmation prompt for
destructive ones.

    from tokgateway.cli_output import Output
    out = Output.for_stdout()
    out.table(("MODEL", "REQUESTS"), rows, totals=("total", 12))
    with out.progress("querying the ledger"):
        rows = admin.usage(params)
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import orjson

STYLES = {
    "bold": "1",
    "dim": "2",
    "red": "31",
    "green": "32",
    "yellow": "33",
    "cyan": "36",
}
# the words a status column uses, and how each is shown on a terminal
STATUS_STYLES = {
    "active": "green",
    "ready": "green",
    "ok": "green",
    "admin": "cyan",
    "revoked": "red",
    "expired": "yellow",
    "down": "red",
    "not ready": "yellow",
    "fail": "red",
}
_NUMBER = re.compile(r"^[-+]?(\d{1,3}(,\d{3})*|\d+)(\.\d+)?%?$")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def use_colour(stream: TextIO, environ: dict[str, str] | None = None) -> bool:
    """Colour for a terminal only: not when piped, not with NO_COLOR or TERM=dumb."""
    env = os.environ if environ is None else environ
    if env.get("NO_COLOR") or env.get("TERM") == "dumb":
        return False
    return _isatty(stream)


def _isatty(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def visible_len(text: str) -> int:
    return len(_ANSI.sub("", text))


def is_number(text: str) -> bool:
    return bool(_NUMBER.match(text.strip()))


class ConfirmationRequired(Exception):
    """A destructive operation was not confirmed (no terminal, no --yes)."""


@dataclass
class Output:
    """One destination for a command's output; ``colour`` decided once."""

    stream: TextIO
    colour: bool
    err: TextIO

    @classmethod
    def for_stdout(cls, *, json_mode: bool = False) -> Output:
        return cls(sys.stdout, (not json_mode) and use_colour(sys.stdout), sys.stderr)

    # -- text -------------------------------------------------------------------
    def paint(self, text: str, style: str) -> str:
        codes = ";".join(STYLES[s] for s in style.split("+") if s in STYLES)
        if not self.colour or not codes:
            return text
        return f"\x1b[{codes}m{text}\x1b[0m"

    def status(self, word: str) -> str:
        """A status word, coloured by its first part ("revoked (admin)" is red)."""
        key = next((k for k in STATUS_STYLES if word.startswith(k)), "")
        return self.paint(word, STATUS_STYLES[key]) if key else word

    def line(self, text: str = "") -> None:
        self.stream.write(text + "\n")

    def json(self, data: Any) -> None:
        self.stream.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")

    # -- tables -------------------------------------------------------------------
    def table(
        self,
        headers: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        totals: Sequence[Any] | None = None,
        empty: str = "-",
        status_column: str | None = None,
    ) -> None:
        """Columns aligned to their widest cell, numbers right-aligned; a
        ``totals`` row is set off by a rule. ``status_column``: the header
        whose cells are status words, coloured on a terminal."""
        body = [[empty if c is None or c == "" else str(c) for c in r] for r in rows]
        cells = [[str(h) for h in headers], *body]
        if totals is not None:
            cells.append(["" if c is None else str(c) for c in totals])
        widths = [max(visible_len(row[i]) for row in cells) for i in range(len(headers))]
        numeric = [
            bool(body) and all(is_number(r[i]) or r[i] == empty for r in body)
            for i in range(len(headers))
        ]
        names = list(headers)
        status_idx = names.index(status_column) if status_column in names else -1

        def render(row: list[str], style: str = "") -> str:
            parts = []
            for i, cell in enumerate(row):
                pad = " " * (widths[i] - visible_len(cell))
                shown = self.status(cell) if i == status_idx and not style else cell
                parts.append(pad + shown if numeric[i] else shown + pad)
            text = "  ".join(parts).rstrip()
            return self.paint(text, style) if style else text

        self.line(render(cells[0], "bold"))
        for row in cells[1 : len(body) + 1]:
            self.line(render(row))
        if totals is not None:
            self.line(self.paint("  ".join("-" * w for w in widths), "dim"))
            self.line(render(cells[-1], "bold"))

    # -- progress and confirmation ------------------------------------------------
    @contextlib.contextmanager
    def progress(self, label: str, *, interval: float = 0.25) -> Iterator[None]:
        """``label ... 3.2 s`` on stderr while the block runs, on a terminal
        only (a pipe or a log gets nothing), then cleared."""
        if not _isatty(self.err):
            yield
            return
        started = time.monotonic()
        stop = threading.Event()

        def tick() -> None:
            while not stop.wait(interval):
                self.err.write(f"\r{label} ... {time.monotonic() - started:.1f} s")
                self.err.flush()

        ticker = threading.Thread(target=tick, name="cli-progress", daemon=True)
        ticker.start()
        try:
            yield
        finally:
            stop.set()
            ticker.join()
            self.err.write("\r\x1b[2K")
            self.err.flush()

    def confirm(self, question: str, *, assume_yes: bool, stdin: TextIO | None = None) -> None:
        """Return when confirmed; raise ConfirmationRequired otherwise. Without a
        terminal to ask on, only ``--yes`` confirms."""
        if assume_yes:
            return
        source = stdin if stdin is not None else sys.stdin
        if not _isatty(source):
            raise ConfirmationRequired(f"{question} Not confirmed: pass --yes to do it anyway.")
        self.err.write(f"{question} [y/N] ")
        self.err.flush()
        answer = source.readline().strip().lower()
        if answer not in ("y", "yes"):
            raise ConfirmationRequired("Cancelled.")
