"""A one-line progress bar on stderr, redrawn at most ten times a second."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    def __init__(self, total: int, *, enabled: bool, stream: TextIO | None = None, width: int = 30) -> None:
        self._total = max(total, 1)
        self._enabled = enabled
        self._stream = stream or sys.stderr
        self._width = width
        self._done = 0
        self._errors = 0
        self._label = ""
        self._drawn_at = 0.0

    def stage(self, label: str) -> None:
        """Name what runs now (target, concurrency, round)."""
        self._label = label
        self._draw(force=True)

    def advance(self, ok: bool) -> None:
        self._done += 1
        self._errors += not ok
        self._draw(force=self._done == self._total)

    def close(self) -> None:
        if self._enabled:
            self._stream.write("\n")
            self._stream.flush()

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not self._enabled or (not force and now - self._drawn_at < 0.1):
            return
        self._drawn_at = now
        filled = self._width * self._done // self._total
        bar = "#" * filled + "." * (self._width - filled)
        errors = f" {self._errors} errors" if self._errors else ""
        self._stream.write(f"\r[{bar}] {self._done}/{self._total}{errors}  {self._label}\033[K")
        self._stream.flush()
