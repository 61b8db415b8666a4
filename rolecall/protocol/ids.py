"""Identifiers in Anthropic's shape: a prefix and 24 base62 characters."""

from __future__ import annotations

import secrets

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_LENGTH = 24
_BITS = 143  # 62**24 > 2**142: every id keeps its full length of randomness


def new_id(prefix: str) -> str:
    """`msg_…`, `toolu_…`, `req_…`: unpredictable, fixed length."""
    n = secrets.randbits(_BITS)
    chars = []
    for _ in range(_LENGTH):
        n, r = divmod(n, 62)
        chars.append(_BASE62[r])
    return prefix + "".join(chars)
