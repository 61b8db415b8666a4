"""The answer of a forced tool choice decoded under a JSON schema: one `{"name": …, "arguments": {…}}`
object (shaping/tools.forced_call_schema), streamed as a tool call while it is generated.

Schema-constrained decoders emit properties in schema order, so the name arrives first; once
`"arguments":` has been seen, the arguments object streams through as it grows. Only the closing
brace of the outer object (and whitespace around it) is held back, since it is not part of the arguments.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rolecall.parsing.tool_calls import ParsedCall, json_call

_HEAD = re.compile(r'\s*\{\s*"name"\s*:\s*"((?:[^"\\]|\\.)*)"\s*,\s*"arguments"\s*:\s*(?=\{)')


@dataclass(frozen=True, slots=True)
class CallFragment:
    """Part of the one forced call: the first fragment names the tool, the rest extend its arguments."""

    name: str | None
    arguments: str


class ForcedCallStream:
    """Feed the constrained answer; get back call fragments, or, at the end, text if it was not a call."""

    def __init__(self) -> None:
        self._held = ""
        self._streaming = False
        self._undecided = True  # before the head is seen: it may still turn out not to be a call

    def feed(self, text: str) -> list[CallFragment]:
        self._held += text
        out: list[CallFragment] = []
        if self._undecided:
            head = _HEAD.match(self._held)
            if head is None:
                return out
            self._undecided, self._streaming = False, True
            out.append(CallFragment(_unescape(head.group(1)), ""))
            self._held = self._held[head.end() :]
        # Hold back a trailing run of `}` and whitespace: its last brace closes the outer object.
        body = self._held.rstrip("} \n\r\t")
        if body:
            out.append(CallFragment(None, body))
            self._held = self._held[len(body) :]
        return out

    def flush(self) -> list[CallFragment | ParsedCall | str]:
        held, self._held = self._held, ""
        if self._streaming:
            tail = held.rstrip()
            tail = tail[:-1].rstrip() if tail.endswith("}") else tail
            return [CallFragment(None, tail)] if tail else []
        # The head never matched (another key order, or cut short): parse the whole answer at once.
        call = json_call(held)
        if call is not None:
            return [call]
        return [held] if held else []


def _unescape(name: str) -> str:
    return re.sub(r"\\(.)", r"\1", name)
