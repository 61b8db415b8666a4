"""Conversation affinity: follow-up turns go to the replica whose KV prefix cache holds the history.

A conversation is recognised by its leading turns (system prompt, tools, first user turn): every
follow-up resends them unchanged, so their hash is a stable key without any client cooperation.
"""

from __future__ import annotations

import collections
import hashlib
from typing import Protocol

import orjson

from rolecall.core.conversation import GenerationRequest

_DEFAULT_CAPACITY = 50_000  # conversations remembered; the least recently used are forgotten


def conversation_key(request: GenerationRequest) -> str:
    """A hash of what opens the conversation: system turns, tool names and the first other turn."""
    leading = []
    for turn in request.turns:
        leading.append((turn.role, turn.text, [call.arguments for call in turn.tool_calls]))
        if turn.role != "system":
            break
    tools = [tool.name for tool in request.tools]
    return hashlib.blake2b(orjson.dumps([leading, tools]), digest_size=16).hexdigest()


class AffinityTable:
    """Conversation key -> the replica (by URL) that last served it; bounded, least recently used out."""

    def __init__(self, capacity: int = _DEFAULT_CAPACITY) -> None:
        self._capacity = capacity
        self._homes: collections.OrderedDict[str, str] = collections.OrderedDict()

    def home(self, key: str) -> str | None:
        replica = self._homes.get(key)
        if replica is not None:
            self._homes.move_to_end(key)
        return replica

    def bind(self, key: str, replica: str) -> None:
        self._homes[key] = replica
        self._homes.move_to_end(key)
        while len(self._homes) > self._capacity:
            self._homes.popitem(last=False)

    def __len__(self) -> int:
        return len(self._homes)


class SharedHomes(Protocol):
    """An affinity table kept elsewhere (with several workers, in the parent's coordinator)."""

    async def home(self, key: str) -> str | None:
        """The replica that last served the conversation `key`, if any."""

    def bind(self, key: str, replica: str) -> None:
        """Remember `replica` as the conversation's home (sent without waiting for an answer)."""
