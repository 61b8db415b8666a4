"""An incremental server-sent-events decoder: bytes in, the `data:` payload of each event out."""

from __future__ import annotations


class SSEDecoder:
    """feed() raw bytes as they arrive; it returns the data of every event completed so far."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, raw: bytes) -> list[bytes]:
        # Normalised as a whole: a CRLF split across two reads joins up in the buffer.
        self._buffer = (self._buffer + raw).replace(b"\r\n", b"\n")
        *complete, self._buffer = self._buffer.split(b"\n\n")
        return [data for event in complete if (data := _data_of(event))]

    def flush(self) -> list[bytes]:
        rest, self._buffer = self._buffer, b""
        data = _data_of(rest)
        return [data] if data else []


def _data_of(event: bytes) -> bytes:
    lines = [line[5:].lstrip(b" ") for line in event.split(b"\n") if line.startswith(b"data:")]
    return b"\n".join(lines)
