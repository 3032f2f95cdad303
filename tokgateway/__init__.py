"""Tokligence Gateway: the composition root (CLI, daemon, all-in-one wiring)."""

__version__ = "0.1.0"
