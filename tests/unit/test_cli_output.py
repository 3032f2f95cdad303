"""The CLI's output helpers and help texts."""

from __future__ import annotations

import argparse
import io
from typing import Any

import pytest

from tokgateway.cli import build_parser
from tokgateway.cli_output import ConfirmationRequired, Output, use_colour


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _out(colour: bool = False) -> tuple[Output, io.StringIO]:
    buf = io.StringIO()
    return Output(buf, colour, io.StringIO()), buf


def test_table_aligns_numbers_right_and_adds_totals() -> None:
    out, buf = _out()
    out.table(
        ("MODEL", "REQUESTS", "COST_USD"),
        [("gpt-4o", 7, "0.120000"), ("echo", 12345, "0.000000")],
        totals=("total", 12352, "0.120000"),
    )
    lines = buf.getvalue().splitlines()
    assert lines[0] == "MODEL   REQUESTS  COST_USD"
    assert lines[1] == "gpt-4o         7  0.120000"
    assert lines[2] == "echo       12345  0.000000"
    assert set(lines[3].replace(" ", "")) == {"-"}
    assert lines[4] == "total      12352  0.120000"
    assert "\x1b" not in buf.getvalue()


def test_table_shows_missing_cells_as_a_dash() -> None:
    out, buf = _out()
    out.table(("A", "B"), [("x", None), ("y", "")])
    assert buf.getvalue().splitlines()[1:] == ["x  -", "y  -"]


def test_colour_only_on_a_terminal_and_never_for_json() -> None:
    assert not use_colour(io.StringIO(), {})
    assert use_colour(Tty(), {})
    assert not use_colour(Tty(), {"NO_COLOR": "1"})
    assert not use_colour(Tty(), {"TERM": "dumb"})
    coloured, buf = _out(colour=True)
    coloured.table(
        ("ID", "STATUS"), [("k1", "revoked (admin)"), ("k2", "active")], status_column="STATUS"
    )
    text = buf.getvalue()
    assert "\x1b[31mrevoked (admin)\x1b[0m" in text and "\x1b[32mactive\x1b[0m" in text
    # aligned by what is visible, not by the escape codes
    plain = [line.replace("\x1b[31m", "").replace("\x1b[32m", "") for line in text.splitlines()]
    assert plain[2].replace("\x1b[0m", "") == "k2  active"
    json_out, buf = _out(colour=True)
    json_out.json([{"status": "revoked"}])
    assert "\x1b" not in buf.getvalue()


def test_confirm_needs_yes_without_a_terminal() -> None:
    out, _ = _out()
    with pytest.raises(ConfirmationRequired, match="--yes"):
        out.confirm("Revoke?", assume_yes=False, stdin=io.StringIO("y\n"))
    out.confirm("Revoke?", assume_yes=True, stdin=io.StringIO(""))
    tty = Tty("y\n")
    out.confirm("Revoke?", assume_yes=False, stdin=tty)
    with pytest.raises(ConfirmationRequired, match="Cancelled"):
        out.confirm("Revoke?", assume_yes=False, stdin=Tty("\n"))


def test_progress_only_on_a_terminal() -> None:
    quiet = Output(io.StringIO(), False, io.StringIO())
    with quiet.progress("reading", interval=0.01):
        pass
    assert quiet.err.getvalue() == ""  # type: ignore[attr-defined]
    err = Tty()
    shown = Output(io.StringIO(), False, err)
    import time

    with shown.progress("reading the ledger", interval=0.01):
        time.sleep(0.08)
    assert "reading the ledger ... " in err.getvalue()
    assert err.getvalue().endswith("\r\x1b[2K")  # the line is cleared afterwards


def _walk(parser: argparse.ArgumentParser, path: str = "") -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found += _walk(child, f"{path} {name}".strip())
    return found


def test_every_command_and_option_has_help_with_an_example() -> None:
    missing = []
    for path, parser in _walk(build_parser()):
        if not path:
            continue
        if not parser.epilog or "example:" not in parser.epilog:
            missing.append(f"{path}: no example")
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
                continue
            if not action.help or "e.g." not in action.help:
                missing.append(f"{path} {action.option_strings or action.dest}: {action.help}")
    assert missing == []


def test_top_help_lists_the_environment_and_points_at_the_readme() -> None:
    text = build_parser().format_help()
    for var in ("GATEWAY_URL", "GATEWAY_CONFIG_DIR", "GATEWAY_DATA_DIR", "GATEWAY_ADMIN_KEY"):
        assert f"\n  {var} " in text
    assert "README.md" in text
    assert "example:" in text
