"""Tool-call arguments streamed as `input_json_delta`: what goes out must be a valid JSON prefix at every
step (the SDKs re-parse the accumulated text after each delta), and the whole must end as one object.

Engines send arguments in arbitrary fragments and sometimes invalid JSON. `ToolArgumentsGuard` passes on
only what keeps the text a prefix of a valid object; it holds back an object member until its value
begins and an escape sequence until it is complete, stops at the first invalid character (the arguments
are cut at the last valid point), and `close()` returns the text that completes the object.

The character-by-character state machine runs only where it must: inside a string a run of plain characters
is taken by one regex match, and arguments that arrive whole (parsed markup, most upstreams' last fragment
of a short call) are checked by one `json.loads`.
"""

from __future__ import annotations

import json
import re
from typing import NoReturn

_WHITESPACE = frozenset(" \t\r\n")
_JSON_WHITESPACE = " \t\r\n"
_STRING_RUN = re.compile(r'[^"\\\x00-\x1f]+')  # string characters that change no state: all but `"`, `\`, controls
_NUMBER_START = frozenset("-0123456789")
_LITERALS = {"t": "true", "f": "false", "n": "null"}
_HEX = frozenset("0123456789abcdefABCDEF")
# Number states from which the number is already complete (others need a digit appended to close).
_NUMBER_COMPLETE = frozenset({"zero", "int", "frac", "exp"})


class ToolArgumentsGuard:
    def __init__(self) -> None:
        self._state = "start"
        self._stack: list[str] = []  # open containers: "{" or "["
        self._pending = ""  # held back: a member's `,` and key, or an unfinished escape
        self._holding_member = False
        self._escape_left = 0  # characters still expected in the current escape sequence
        self._number = ""
        self._literal = ""
        self._string_kind = "string"  # "string" or "key": where an escape sequence returns to
        self._opened = False  # the top-level "{" went out
        self._dead = False  # an invalid character arrived: everything after it is dropped

    def feed(self, fragment: str) -> str:
        """The part of everything fed so far that may be sent now."""
        if self._state == "start" and not self._dead and _is_whole_object(fragment):
            self._opened, self._state = True, "done"
            return fragment.lstrip(_JSON_WHITESPACE)
        out: list[str] = []
        i, size = 0, len(fragment)
        while i < size and not self._dead:
            if self._state in ("string", "key"):
                run = _STRING_RUN.match(fragment, i)
                if run is not None:
                    self._send(out, run.group())
                    i = run.end()
                    continue
            raw = fragment[i]
            i += 1
            # A raw control character inside a string (common in model output) is escaped, not fatal.
            chars = json.dumps(raw)[1:-1] if raw < " " and self._state in ("string", "key") else raw
            for char in chars:
                if not self._step(char):
                    self._dead = True
                    break
                if self._opened:  # whitespace before the object is not sent: the SDK cannot parse a blank buffer
                    self._send(out, char)
        return "".join(out)

    def _send(self, out: list[str], text: str) -> None:
        """Send `text`, or hold it while a member waits for its value or an escape sequence is unfinished."""
        if self._holding_member or self._state in ("escape", "unicode"):
            self._pending += text
        else:
            out.append(self._pending + text)
            self._pending = ""

    def close(self) -> str:
        """The text that turns what was sent into one complete JSON object ("" if nothing was sent)."""
        if not self._opened:
            return ""
        suffix = ""
        if not self._holding_member:
            if self._state in ("string", "escape", "unicode"):
                suffix = '"'
            elif self._state == "number" and self._number not in _NUMBER_COMPLETE:
                suffix = "0"
            elif self._state == "literal":
                suffix = self._literal
        return suffix + "".join("}" if c == "{" else "]" for c in reversed(self._stack))

    # --- the state machine: one character, True if it keeps the text a valid prefix -----------------------

    def _step(self, char: str) -> bool:
        state = self._state
        if state in ("string", "key", "escape", "unicode"):
            return self._in_string(char)
        if state == "number":
            if self._number_step(char):
                return True
            if self._number not in _NUMBER_COMPLETE:
                return False  # "1." or "-" cannot end a number
            self._state = "after_value"
            return self._step(char)
        if state == "literal":
            if not self._literal or char != self._literal[0]:
                return False
            self._literal = self._literal[1:]
            if not self._literal:
                self._state = "after_value"
            return True
        if char in _WHITESPACE:
            return True
        if state == "start":
            self._opened = char == "{"
            return self._open(char) if self._opened else False
        if state == "done":
            return False
        if state == "key_or_end":  # just after "{"
            if char == "}":
                return self._close_container("{")
            return self._begin_key(char)
        if state == "member":  # after "," inside an object
            return self._begin_key(char)
        if state == "colon":
            if char != ":":
                return False
            self._state = "value"
            return True
        if state in ("value", "value_or_end"):
            if char == "]" and state == "value_or_end":
                return self._close_container("[")
            return self._begin_value(char)
        if state == "after_value":
            if char == ",":
                self._holding_member = True  # a trailing comma never goes out alone
                self._state = "member" if self._stack[-1] == "{" else "value"
                return True
            return self._close_container("{" if char == "}" else "[") if char in "}]" else False
        return False

    def _open(self, char: str) -> bool:
        self._stack.append(char)
        self._state = "key_or_end" if char == "{" else "value_or_end"
        return True

    def _close_container(self, opener: str) -> bool:
        if not self._stack or self._stack[-1] != opener:
            return False
        self._stack.pop()
        self._state = "after_value" if self._stack else "done"
        return True

    def _begin_key(self, char: str) -> bool:
        if char != '"':
            return False
        self._holding_member = True  # the key waits for the first character of its value
        self._state = "key"
        return True

    def _begin_value(self, char: str) -> bool:
        self._holding_member = False
        if char in "{[":
            return self._open(char)
        if char == '"':
            self._state = "string"
            return True
        if char in _NUMBER_START:
            self._state, self._number = "number", ("sign" if char == "-" else "zero" if char == "0" else "int")
            return True
        if char in _LITERALS:
            self._state, self._literal = "literal", _LITERALS[char][1:]
            return True
        return False

    def _in_string(self, char: str) -> bool:
        state = self._state
        if state == "escape":
            if char == "u":
                self._state, self._escape_left = "unicode", 4
                return True
            if char not in '"\\/bfnrt':
                return False
            self._state = self._string_kind
            return True
        if state == "unicode":
            if char not in _HEX:
                return False
            self._escape_left -= 1
            if not self._escape_left:
                self._state = self._string_kind
            return True
        if char == "\\":
            self._string_kind = state
            self._state = "escape"
            return True
        if char == '"':
            self._state = "colon" if state == "key" else "after_value"
            return True
        return char >= " "  # control characters must be escaped inside JSON strings

    def _number_step(self, char: str) -> bool:
        n = self._number
        if char.isdigit() and char.isascii():
            if n == "zero":
                return False
            self._number = {"sign": "int" if char != "0" else "zero", "dot": "frac", "e": "exp", "esign": "exp"}.get(
                n, n
            )
            return True
        if char == "." and n in ("zero", "int"):
            self._number = "dot"
            return True
        if char in "eE" and n in ("zero", "int", "frac"):
            self._number = "e"
            return True
        if char in "+-" and n == "e":
            self._number = "esign"
            return True
        return False


def _is_whole_object(fragment: str) -> bool:
    """Whether `fragment` is, alone, one complete JSON object (as strict as the state machine: no NaN)."""
    if not fragment.rstrip(_JSON_WHITESPACE).endswith("}"):
        return False
    try:
        return isinstance(json.loads(fragment, parse_constant=_refuse), dict)
    except (ValueError, RecursionError):
        return False


def _refuse(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")
