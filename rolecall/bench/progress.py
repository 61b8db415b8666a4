"""Progress on stderr: a one-line bar redrawn in place on a terminal, plain periodic lines elsewhere
(CI logs, pipes, `nohup`), so a long run is never silent."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Protocol, TextIO


class Progress(Protocol):
    def stage(self, label: str) -> None:
        """Name what runs now (target, concurrency, round)."""

    def advance(self, ok: bool) -> None:
        """One measured request finished."""

    def tick(self) -> None:
        """Called about once a second while the run goes on, whether requests finish or not."""

    def close(self) -> None:
        """The run is over."""


class ProgressBar:
    """A bar redrawn at most ten times a second; for terminals."""

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
        self._label = label
        self._draw(force=True)

    def advance(self, ok: bool) -> None:
        self._done += 1
        self._errors += not ok
        self._draw(force=self._done == self._total)

    def tick(self) -> None:
        pass  # the bar moves with the requests

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


class ProgressLines:
    """One plain line when a stage starts, then one every `interval` seconds (however slow the requests),
    and one at the end."""

    def __init__(
        self,
        total: int,
        *,
        stream: TextIO | None = None,
        interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._total = total
        self._stream = stream or sys.stderr
        self._interval = interval
        self._clock = clock
        self._began = clock()
        self._written_at = self._began
        self._done = 0
        self._errors = 0
        self._label = ""

    def stage(self, label: str) -> None:
        self._label = label
        self._write()

    def advance(self, ok: bool) -> None:
        self._done += 1
        self._errors += not ok

    def tick(self) -> None:
        if self._clock() - self._written_at >= self._interval:
            self._write()

    def close(self) -> None:
        self._label = "done"
        self._write()

    def _write(self) -> None:
        now = self._written_at = self._clock()
        errors = f", {self._errors} failed" if self._errors else ""
        self._stream.write(
            f"bench: {self._done}/{self._total} requests{errors}, {now - self._began:.0f} s  [{self._label}]\n"
        )
        self._stream.flush()


def progress_for(total: int, choice: bool | None, stream: TextIO | None = None) -> Progress:
    """`--progress` (True): the bar; `--no-progress` (False): nothing; neither: the bar on a terminal,
    plain lines elsewhere."""
    stream = stream or sys.stderr
    if choice is False:
        return ProgressBar(total, enabled=False, stream=stream)
    if choice or stream.isatty():
        return ProgressBar(total, enabled=True, stream=stream)
    return ProgressLines(total, stream=stream)
