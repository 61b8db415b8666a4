"""The coordinator channel's framing: one JSON object per line over a Unix socket.

orjson never writes a raw newline, so a line is a message; one `readline` per message keeps the
per-request cost at one small write and one wake-up each way. Messages that expect an answer carry an
`id`; the answer carries it back as `re`.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

Message = dict[str, Any]
LINE_LIMIT = 64 * 2**20  # a /metrics exposition travels as one line


def send(writer: asyncio.StreamWriter, message: Message) -> None:
    """Queue one message; the transport writes it without waiting (`drain` is not needed for small lines)."""
    writer.write(orjson.dumps(message) + b"\n")


async def receive(reader: asyncio.StreamReader) -> Message | None:
    """The next message, or None once the other side has closed the channel."""
    try:
        line = await reader.readline()
    except (ConnectionError, asyncio.IncompleteReadError):
        return None
    if not line:
        return None
    message: Message = orjson.loads(line)
    return message
