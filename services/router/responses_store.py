"""Responses the gateway made by translation, kept so a later request can name
them in ``previous_response_id``. Bounded and in memory: the conversation of
the newest responses (10,000 by default) survives until the process stops."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any


class ResponseStore:
    def __init__(self, limit: int = 10_000) -> None:
        self.limit = limit
        self._items: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()

    def put(self, response_id: str, conversation: list[dict[str, Any]]) -> None:
        self._items[response_id] = conversation
        self._items.move_to_end(response_id)
        while len(self._items) > self.limit:
            self._items.popitem(last=False)

    def get(self, response_id: str) -> list[dict[str, Any]] | None:
        found = self._items.get(response_id)
        if found is not None:
            self._items.move_to_end(response_id)
        return found
