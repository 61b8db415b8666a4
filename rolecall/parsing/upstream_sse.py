"""Server-sent events from an upstream, as bytes arrive: each socket read in, the `data:` fields of the lines it
completed out (a `ChunkParser[bytes, bytes]`). A line split across reads is held until its end arrives.

Only `data:` lines matter to an OpenAI-compatible stream; blank separators, `: keep-alive` comments and
`event:` / `id:` fields are skipped. Lines end in LF or CRLF (every known server); each `data:` line is its
own payload (OpenAI-compatible servers put one JSON object on one line), with the one optional space after
the colon and surrounding whitespace removed.
"""

from __future__ import annotations

from rolecall.core.errors import UpstreamError

# A line longer than this is not an event stream (or a runaway one): refuse it rather than buffer it all.
MAX_LINE = 16 << 20


class UpstreamSSE:
    """`feed(bytes) -> list[data payload]`; `flush()` returns a last `data:` line left without its newline."""

    def __init__(self) -> None:
        self._rest = b""

    def feed(self, piece: bytes) -> list[bytes]:
        if self._rest:
            piece = self._rest + piece
        lines = piece.split(b"\n")
        self._rest = lines.pop()
        if len(self._rest) > MAX_LINE:
            raise UpstreamError(f"the upstream sent a line longer than {MAX_LINE} bytes: not an event stream")
        payloads = []
        for line in lines:  # a loop, not a comprehension: on Python 3.11 that is one more call per read
            if line.startswith(b"data:"):
                payloads.append(line[5:].strip())
        return payloads

    def flush(self) -> list[bytes]:
        rest, self._rest = self._rest, b""
        return [rest[5:].strip()] if rest.startswith(b"data:") else []
