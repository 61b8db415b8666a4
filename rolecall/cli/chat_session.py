"""The conversation behind `rolecall chat`: a character (MiniMax roles), the history, and rolecall's HTTP API.

It is a client only: it talks to a running server over HTTP, like any other MiniMax client would.
Saved files use the playground's conversation format, so a terminal chat opens in the browser too.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from rolecall.cli.lorebook import fired_entries, user_message_with_notes


class ChatError(Exception):
    """A failure the person can act on; its message says what to do."""


@dataclass
class Character:
    name: str = ""
    system: str = ""
    user_name: str = ""
    persona: str = ""
    scene: str = ""
    examples: list[tuple[str, str]] = field(default_factory=list)
    greetings: list[str] = field(default_factory=list)
    post_history: str = ""
    lorebook: dict[str, Any] = field(default_factory=lambda: {"scan_depth": None, "entries": []})

    @classmethod
    def from_import(cls, imported: dict[str, Any]) -> Character:
        """The server's `/v1/characters/import` answer."""
        examples: list[tuple[str, str]] = []
        for message in imported["messages"]:
            if message["role"] == "sample_message_user":
                examples.append((message["content"], ""))
            elif message["role"] == "sample_message_ai":
                if examples and not examples[-1][1]:
                    examples[-1] = (examples[-1][0], message["content"])
                else:
                    examples.append(("", message["content"]))
        scene = "\n\n".join(m["content"] for m in imported["messages"] if m["role"] == "group")
        return cls(
            name=imported["char_name"],
            system=imported["system"],
            user_name=imported["user_name"],
            scene=scene,
            examples=examples,
            greetings=imported["greetings"],
            post_history=imported["post_history_instructions"],
            lorebook=imported["lorebook"],
        )


@dataclass
class Reply:
    """One streamed reply: its text, its thinking, and the usage the server reported."""

    text: str = ""
    thinking: str = ""
    usage: dict[str, int] = field(default_factory=dict)
    stop_reason: str | None = None
    seconds: float = 0.0


Printer = Callable[[str, str], None]  # (kind: "text" | "thinking", piece)


class ChatSession:
    def __init__(self, url: str, key: str, model: str, max_tokens: int, character: Character) -> None:
        self.model = model
        self.max_tokens = max_tokens
        self.character = character
        self.history: list[dict[str, str]] = []  # {"role": "user" | "assistant", "content": ...}
        headers = {"x-api-key": key, "anthropic-version": "2023-06-01"} if key else {"anthropic-version": "2023-06-01"}
        self._http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=httpx.Timeout(600, connect=5))
        self.url = url

    def close(self) -> None:
        self._http.close()

    def import_card(self, path: Path, user_name: str) -> None:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ChatError(f"cannot read the card {path}: {exc.strerror}") from None
        response = self._post("/v1/characters/import", content=raw, params={"user": user_name} if user_name else None)
        self.character = Character.from_import(response.json())

    def start(self) -> str | None:
        """Open the scene: the character's greeting, when it has one, is the first assistant turn."""
        if self.character.greetings and not self.history:
            self.history.append({"role": "assistant", "content": self.character.greetings[0]})
            return self.character.greetings[0]
        return None

    def body(self, history: list[dict[str, str]]) -> dict[str, Any]:
        """The `/v1/messages` body: the character as role-play roles, then the history (the playground's rule)."""
        character = self.character
        messages: list[dict[str, str]] = []
        if character.persona.strip():
            messages.append({"role": "user_system", "content": character.persona})
        if character.scene.strip():
            messages.append({"role": "group", "content": character.scene})
        for user, ai in character.examples:
            if user.strip():
                messages.append({"role": "sample_message_user", "content": user})
            if ai.strip():
                messages.append({"role": "sample_message_ai", "content": ai})
        texts = [m["content"] for m in history]
        for index, message in enumerate(history):
            content = message["content"]
            if index == len(history) - 1 and message["role"] == "user":
                lore = fired_entries(character.lorebook, texts)
                content = user_message_with_notes(content, lore, character.post_history)
            messages.append({"role": message["role"], "content": content})
        body: dict[str, Any] = {"model": self.model, "max_tokens": self.max_tokens, "messages": messages}
        if character.system.strip():
            body["system"] = character.system
        return body

    def say(self, text: str, show: Printer) -> Reply:
        """Send a user message and stream the reply; a failed request leaves the history as it was."""
        self.history.append({"role": "user", "content": text})
        try:
            reply = self._stream(self.history, show)
        except BaseException:
            self.history.pop()
            raise
        self.history.append({"role": "assistant", "content": reply.text})
        return reply

    def regenerate(self, show: Printer) -> Reply:
        """A new reply in place of the last one."""
        if len(self.history) < 2 or self.history[-1]["role"] != "assistant" or self.history[-2]["role"] != "user":
            raise ChatError("nothing to regenerate yet: say something first")
        reply = self._stream(self.history[:-1], show)
        self.history[-1] = {"role": "assistant", "content": reply.text}
        return reply

    def undo(self) -> int:
        """Drop the last exchange (your message and its reply); returns how many messages went."""
        dropped = 0
        while self.history and dropped < 2:
            last = self.history.pop()
            dropped += 1
            if last["role"] == "user":
                break
        return dropped

    def render(self, draft: str = "") -> dict[str, Any]:
        """What the model would see next (`POST /v1/render`)."""
        history = [*self.history, {"role": "user", "content": draft or "(your next message)"}]
        return self._post("/v1/render", json=self.body(history)).json()

    def save(self, path: Path) -> None:
        """The conversation in the playground's export format."""
        character = self.character
        messages = [
            {"role": m["role"], "swipes": [{"text": m["content"], "thinking": "", "stats": None}], "pick": 0}
            for m in self.history
        ]
        conversation = {
            "id": f"t{int(time.time() * 1000):x}",
            "title": f"{character.name or 'Chat'} (terminal)",
            "updated": int(time.time() * 1000),
            "character": {
                "name": character.name,
                "system": character.system,
                "userName": character.user_name,
                "persona": character.persona,
                "scene": character.scene,
                "examples": [{"user": u, "ai": a} for u, a in character.examples],
                "greeting": character.greetings[0] if character.greetings else "",
                "alternateGreetings": character.greetings[1:],
                "postHistory": character.post_history,
                "lorebook": character.lorebook,
            },
            "messages": messages,
        }
        document = {"rolecall_conversations": 1, "conversations": [conversation]}
        path.write_text(json.dumps(document, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")

    def _stream(self, history: list[dict[str, str]], show: Printer) -> Reply:
        reply = Reply()
        began = time.perf_counter()
        body = {**self.body(history), "stream": True}
        try:
            with self._http.stream("POST", "/v1/messages", json=body) as response:
                if response.status_code != 200:
                    response.read()
                    raise ChatError(self._failure(response))
                for event in _sse_events(response.iter_lines()):
                    _apply(event, reply, show)
        except KeyboardInterrupt:
            reply.stop_reason = "stopped"  # Ctrl-C stops the reply; what came so far is kept
        except httpx.TransportError as exc:
            raise ChatError(self._unreachable(exc)) from None
        reply.seconds = time.perf_counter() - began
        return reply

    def _post(self, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.post(path, **kwargs)
        except httpx.TransportError as exc:
            raise ChatError(self._unreachable(exc)) from None
        if response.status_code != 200:
            raise ChatError(self._failure(response))
        return response

    def _unreachable(self, exc: httpx.TransportError) -> str:
        reason = "connection refused" if isinstance(exc, httpx.ConnectError) else type(exc).__name__
        return (
            f"cannot reach rolecall at {self.url} ({reason}). Start the server with `rolecall serve`, "
            "or point --url at a running one."
        )

    def _failure(self, response: httpx.Response) -> str:
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = response.text[:200] or response.reason_phrase
        status = response.status_code
        if status == 401:
            return f"the server refused the API key ({message}). Pass the right one with --key or ROLECALL_API_KEY."
        if status in (429, 503, 529):
            wait = response.headers.get("retry-after")
            return f"the server is busy ({message}). Try again{f' in {wait} s' if wait else ' shortly'}."
        return f"the server answered {status}: {message}"


def _sse_events(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    for line in lines:
        if line.startswith("data:"):
            yield json.loads(line[5:].strip())


def _apply(event: dict[str, Any], reply: Reply, show: Printer) -> None:
    kind = event.get("type")
    if kind == "error":
        raise ChatError(f"the reply failed: {event['error']['message']}")
    if kind == "message_start":
        reply.usage.update(event["message"]["usage"])
    elif kind == "message_delta":
        reply.usage.update(event.get("usage") or {})
        reply.stop_reason = event["delta"].get("stop_reason")
    elif kind == "content_block_delta":
        delta = event["delta"]
        if delta["type"] == "text_delta":
            reply.text += delta["text"]
            show("text", delta["text"])
        elif delta["type"] == "thinking_delta":
            reply.thinking += delta["thinking"]
            show("thinking", delta["thinking"])
