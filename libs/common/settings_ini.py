"""The INI layers: where the config directory is, and one parsed file."""

from __future__ import annotations

import configparser
import os
from collections.abc import Mapping
from pathlib import Path

from tokgateway.common.settings_values import ConfigError


class IniLayer:
    """One parsed INI file."""

    def __init__(self, path: Path, label: str) -> None:
        self.path = path
        self.label = label
        parser = configparser.ConfigParser(interpolation=None, delimiters=("=",))
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        try:
            with path.open(encoding="utf-8") as fh:
                parser.read_file(fh)
        except (configparser.Error, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot parse: {exc}") from None
        self.parser = parser

    def sections(self) -> list[str]:
        return list(self.parser.sections())

    def items(self, section: str) -> list[tuple[str, str]]:
        return [(k, v) for k, v in self.parser.items(section, raw=True)]


def resolve_config_dir(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    return Path(env.get("GATEWAY_CONFIG_DIR") or "./config").expanduser()


def default_state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where ``gatewayd`` keeps its state when no data dir is set: the user's
    XDG state directory, never whatever directory the daemon was started in."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_STATE_HOME") or str(Path(env.get("HOME") or "~") / ".local" / "state")
    return Path(base).expanduser() / "tokgateway"
