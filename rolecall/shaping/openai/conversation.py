"""ChatCompletionRequest -> GenerationRequest, for `/v1/chat/completions` and `/v1/text/chatcompletion_v2`.

The conversation goes through the same door-neutral modules as `/v1/messages` (role-play sections and
notes, tool prompting, the turn merge), so one scene is one prompt, token for token, through every door:

- every `system`/`developer` message before the first user, assistant or tool message is part of the one
  system turn, as the top-level `system` is on `/v1/messages`; a later one is a note on a user turn, as an
  inline system message is there (shaping/notes.py);
- SillyTavern's example messages (`system` named `example_user` / `example_assistant`) are MiniMax's
  `sample_message_user` / `sample_message_ai`;
- a `name` labels its message (`<name>: <text>`); a named leading system message names the AI character
  (`Your character (<name>): <text>`), and that name is the reply's `message.name`;
- reasoning sent back in `<think>` tags, `reasoning_content` or `reasoning_details` is that turn's reasoning.

docs/role-play.md shows the rendering; tests/unit/test_door_rendering.py pins it across the doors.
"""

from __future__ import annotations

import re

from rolecall.core.conversation import GenerationRequest, Sampling, ToolCall, Turn
from rolecall.core.errors import InvalidRequest
from rolecall.protocol.openai.requests import ChatCompletionRequest, ChatMessage, ImagePart
from rolecall.shaping.notes import Kind, NotePlacement, place_notes, system_note
from rolecall.shaping.openai.tools import answer_schema, canonical_arguments, check_tool_pairing, offered_tools
from rolecall.shaping.roles import ROLE_PLAY_ROLES, RolePlayMessage, inline_note, setup_sections
from rolecall.shaping.tools import call_markup, forced_call_schema, result_markup, tool_instructions
from rolecall.shaping.traits import EngineTraits
from rolecall.shaping.turns import TurnCollector, join

# SillyTavern sends its example dialogue as system messages with these names (OpenAI's own old convention).
EXAMPLE_NAMES = {"example_user": "sample_message_user", "example_assistant": "sample_message_ai"}
DEFAULT_MAX_TOKENS = 4096  # when the client names no cap; clamped to the room left in the context anyway
_THINK = re.compile(r"\A\s*<think>(.*?)</think>\s*", re.DOTALL)


def ai_character(request: ChatCompletionRequest) -> str | None:
    """The AI character's name: that of the first named system message before the conversation starts
    (SillyTavern's example names aside). The reply's `message.name` carries it."""
    for message in request.messages:
        if message.role not in ("system", "developer", *ROLE_PLAY_ROLES):
            return None
        if message.role in ("system", "developer") and message.name and message.name not in EXAMPLE_NAMES:
            return message.name
    return None


def to_generation(request: ChatCompletionRequest, traits: EngineTraits) -> GenerationRequest:
    """Apply the conversation rules and build the neutral request every engine understands."""
    if not request.messages:
        raise InvalidRequest("messages: at least one message is required")
    check_tool_pairing(request.messages)
    scene = _Scene(traits, _notes(request.messages, traits))
    last = len(request.messages) - 1
    for i, message in enumerate(request.messages):
        scene.add(message, i, i == last)
    tools, tool_mode, parallel = offered_tools(request)
    prompting = (tool_mode == "required" and traits.prompted_tools != "never") or (
        tool_mode == "auto" and traits.prompted_tools == "always"
    )
    instructions = tool_instructions(tools) if prompting else ""
    forced = prompting and tool_mode == "required"
    return GenerationRequest(
        turns=tuple(scene.turns(instructions)),
        max_tokens=request.output_cap or DEFAULT_MAX_TOKENS,
        sampling=Sampling(
            temperature=request.temperature,
            top_p=request.top_p,
            top_k=request.top_k or None,  # 0 = off
            seed=request.seed,
            presence_penalty=request.presence_penalty,
            frequency_penalty=request.frequency_penalty,
        ),
        stop_sequences=request.stop_sequences,
        tools=tools,
        tool_mode=tool_mode,
        parallel_tool_calls=parallel,
        tool_syntax=("json" if forced else "hermes") if prompting else None,
        output_schema=forced_call_schema(tools) if forced else answer_schema(request),
    )


def _role(message: ChatMessage) -> tuple[str, str | None]:
    """The message's role and speaker, SillyTavern's example names read as MiniMax's sample roles."""
    if message.role in ("system", "developer") and message.name in EXAMPLE_NAMES:
        return EXAMPLE_NAMES[message.name], None
    return message.role, message.name


def _notes(messages: list[ChatMessage], traits: EngineTraits) -> NotePlacement:
    """Once the conversation has started (a user, assistant or tool message), a system message or a
    role-play message is a note on a user turn, as on /v1/messages (shaping/notes.py). A tool result
    written as text (prompted tools) is a user turn and carries notes; a `tool` turn does not."""
    kinds: list[Kind] = []
    texts: dict[int, str] = {}
    started = False
    for i, message in enumerate(messages):
        role, name = _role(message)
        if started and role in ("system", "developer"):
            text = _plain_text(message, i, required=not message.name)
            texts[i] = system_note(text, name) if text else ""
        elif started and role in ROLE_PLAY_ROLES:
            texts[i] = inline_note(RolePlayMessage(role, _plain_text(message, i, required=True), name))
        hosts = role == "user" or (role == "tool" and traits.prompted_tools != "never")
        kinds.append("note" if i in texts else "user" if hosts else "other")
        started = started or role in ("user", "assistant", "tool")
    return place_notes(kinds, texts)


class _Scene:
    """The conversation as it is walked: the system turn's parts until the first real turn, then turns."""

    def __init__(self, traits: EngineTraits, notes: NotePlacement) -> None:
        self._traits = traits
        self._system: list[str] = []
        self._setup: list[RolePlayMessage] = []
        self._notes = notes
        self._turns = TurnCollector()

    def add(self, message: ChatMessage, i: int, last: bool) -> None:
        role, name = _role(message)
        if i in self._notes.notes:
            if i in self._notes.alone:
                self._turns.add(Turn("user", self._notes.alone[i]))  # no user turn next to it: its own
        elif role in ROLE_PLAY_ROLES:
            self._setup.append(RolePlayMessage(role, _plain_text(message, i, required=True), name))
        elif role in ("system", "developer"):
            self._system_message(message, i)
        elif role == "user":
            self._user(message, i)
        elif role == "assistant":
            self._assistant(message, i, last)
        else:
            self._tool(message, i)

    def turns(self, instructions: str) -> list[Turn]:
        """All turns: the system turn (character, setup sections, tool instructions), then the rest."""
        system = "\n".join(self._system)
        leading = "\n\n".join(part for part in (system, setup_sections(self._setup), instructions) if part)
        return ([Turn("system", leading)] if leading else []) + self._turns.done()

    def _carried(self, i: int, text: str) -> str:
        """A user turn's text with the notes it carries ahead of it (shaping/notes.py)."""
        return "\n".join([*self._notes.before.get(i, []), *self._notes.after.get(i, []), text] if text else [])

    def _system_message(self, message: ChatMessage, i: int) -> None:
        """A system message before the conversation starts: a line of the system turn (later ones are notes)."""
        text = _plain_text(message, i, required=not message.name)
        if message.name:
            text = f"Your character ({message.name}): {text}" if text else f"Your character: {message.name}"
        self._system.append(text)

    def _user(self, message: ChatMessage, i: int) -> None:
        texts, images = _user_content(message, i, self._traits)
        self._turns.add(Turn("user", self._carried(i, _labelled(message.name, texts)), images=images))

    def _assistant(self, message: ChatMessage, i: int, last: bool) -> None:
        text = _parts_text(message, i, "")
        reasoning = _history_reasoning(message)
        think = _THINK.match(text)
        if think:
            reasoning = join(reasoning or "", think.group(1).strip("\n")) or None
            text = text[think.end() :]
        calls = tuple(
            ToolCall(call.id, call.function.name, canonical_arguments(call.function.arguments, _at(i, k)))
            for k, call in enumerate(message.tool_calls or ())
        )
        if not (text or calls or last):
            raise InvalidRequest(f"messages.{i}.content: an assistant message needs `content` or `tool_calls`")
        text = _labelled(message.name, text)
        if self._traits.prompted_tools != "never" and calls:
            text, calls = join(text, call_markup(calls)), ()
        self._turns.add(Turn("assistant", text, reasoning, calls))

    def _tool(self, message: ChatMessage, i: int) -> None:
        result = _plain_text(message, i, required=False)
        if self._traits.prompted_tools != "never":
            # Templates without tools reject a `tool` role: the result is text in a user turn.
            self._turns.add(Turn("user", self._carried(i, result_markup(result))))
        else:
            self._turns.add(Turn("tool", result, tool_call_id=message.tool_call_id))


def _at(i: int, k: int) -> str:
    return f"messages.{i}.tool_calls.{k}.function.arguments"


def _labelled(name: str | None, text: str) -> str:
    """A speaker label: every named message reaches the model as `<name>: <text>`."""
    return f"{name}: {text}" if name and text else text


def _plain_text(message: ChatMessage, i: int, *, required: bool) -> str:
    """A text-only message's text; `required`: null or empty content is a 400."""
    text = _parts_text(message, i, "\n", text_only=True)
    if required and not text:
        raise InvalidRequest(f"messages.{i}.content: `{message.role}` messages must have non-empty content")
    return text


def _parts_text(message: ChatMessage, i: int, separator: str, *, text_only: bool = False) -> str:
    content = message.content
    if content is None or isinstance(content, str):
        return content or ""
    texts = []
    for j, part in enumerate(content):
        if isinstance(part, ImagePart):
            if text_only or message.role != "user":
                raise InvalidRequest(
                    f"messages.{i}.content.{j}.type: only text parts are allowed in '{message.role}' messages"
                )
            continue
        texts.append(part.text)
    return separator.join(texts)


def _user_content(message: ChatMessage, i: int, traits: EngineTraits) -> tuple[str, tuple[str, ...]]:
    """A user message's text (parts a line apart) and image URLs (to engines with vision only)."""
    content = message.content
    if not content:
        raise InvalidRequest(f"messages.{i}.content: `user` messages must have non-empty content")
    images = []
    if isinstance(content, list):
        for j, part in enumerate(content):
            if isinstance(part, ImagePart):
                if not traits.vision:
                    raise InvalidRequest(
                        f"messages.{i}.content.{j}: image input is not supported by model {traits.model_name}"
                    )
                images.append(part.image_url.url)
    return _parts_text(message, i, "\n"), tuple(images)


def _history_reasoning(message: ChatMessage) -> str | None:
    if message.reasoning_content:
        return message.reasoning_content
    texts = [detail.text for detail in message.reasoning_details or () if detail.text]
    return "\n".join(texts) or None
