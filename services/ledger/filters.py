"""Which usage rows a ledger query reads: one value from the admin API or the
CLI through the service to either store, and the SQL condition it stands for."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageFilter:
    """Rows of one key, user and/or team (an empty id does not narrow), with
    ``since <= ts < until`` (Unix seconds; None leaves that side open)."""

    key_id: str | None = None
    user_id: str | None = None
    team_id: str | None = None
    since: float | None = None
    until: float | None = None

    def where(self, placeholder: Callable[[int], str]) -> tuple[list[str], list[Any]]:
        """The conditions (to be joined with AND) and their arguments;
        ``placeholder(n)`` spells the n-th argument (1-based) in the driver's
        style: ``?`` for SQLite, ``$n`` for PostgreSQL."""
        where: list[str] = []
        args: list[Any] = []

        def add(condition: str, value: Any) -> None:
            args.append(value)
            where.append(f"{condition} {placeholder(len(args))}")

        for column, value in (
            ("key_id", self.key_id),
            ("user_id", self.user_id),
            ("team_id", self.team_id),
        ):
            if value:
                add(f"{column} =", value)
        if self.since is not None:
            add("ts >=", self.since)
        if self.until is not None:
            add("ts <", self.until)
        return where, args


# Every row: the default of the usage and latency queries.
EVERYTHING = UsageFilter()
