"""The thinking-signature secret: from the config, else generated once and kept in the data directory,
so signatures stay valid across restarts (rotating it invalidates old ones)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

SECRET_FILE = "thinking-secret"


def thinking_secret(configured: str | None, data_dir: Path) -> bytes:
    """`configured` if set, else the secret kept in `data_dir` (created on first use)."""
    if configured:
        return configured.encode()
    folder = data_dir.expanduser()
    path = folder / SECRET_FILE
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        try:
            # O_EXCL: of two servers starting at once, one writes and both read the same secret.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32) + "\n")
    secret = path.read_text().strip()
    if len(secret) < 32:
        raise ValueError(f"{path} does not hold a usable secret; delete it to generate a new one")
    return bytes.fromhex(secret)
