"""ChatCompletionRequest -> GenerationRequest, for `/v1/chat/completions` and `/v1/text/chatcompletion_v2`.

The conversation goes through the same door-neutral modules as `/v1/messages` (role-play sections and
notes, tool prompting, the turn merge), so one scene is one prompt, token for token, through every door:

- every `system`/`developer` message before the first user, assistant or tool message is part of the one
  system turn, as the top-level `system` is on `/v1/messages`; a later one stays where it was sent, as an
  inline system message does there;
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
    scene = _Scene(traits)
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


class _Scene:
    """The conversation as it is walked: the system turn's parts until the first real turn, then turns."""

    def __init__(self, traits: EngineTraits) -> None:
        self._traits = traits
        self._system: list[str] = []
        self._setup: list[RolePlayMessage] = []
        self._started = False
        self._notes: list[str] = []  # role-play notes waiting for the next user turn
        self._turns = TurnCollector()

    def add(self, message: ChatMessage, i: int, last: bool) -> None:
        role: str = message.role
        name = message.name
        if role in ("system", "developer") and name in EXAMPLE_NAMES:
            role, name = EXAMPLE_NAMES[name], None
        if role in ROLE_PLAY_ROLES:
            self._role_play(RolePlayMessage(role, _plain_text(message, i, required=True), name))
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
        if self._notes:
            self._turns.add(Turn("user", "\n".join(self._notes)))
            self._notes = []
        system = "\n".join(self._system)
        leading = "\n\n".join(part for part in (system, setup_sections(self._setup), instructions) if part)
        return ([Turn("system", leading)] if leading else []) + self._turns.done()

    def _role_play(self, message: RolePlayMessage) -> None:
        if self._started:
            self._notes.append(inline_note(message))
        else:
            self._setup.append(message)

    def _system_message(self, message: ChatMessage, i: int) -> None:
        text = _plain_text(message, i, required=not message.name)
        if self._started:
            # Kept where it was sent (a group nudge, post-history instructions): hoisting it into the system
            # turn would rewrite the prefix every engine has cached. A later name alone says nothing.
            if text:
                self._turns.add(Turn("system", _labelled(message.name, text)))
            return
        if message.name:
            text = f"Your character ({message.name}): {text}" if text else f"Your character: {message.name}"
        self._system.append(text)

    def _user(self, message: ChatMessage, i: int) -> None:
        self._started = True
        texts, images = _user_content(message, i, self._traits)
        text = join("\n".join(self._notes), _labelled(message.name, texts))
        self._notes = []
        self._turns.add(Turn("user", text, images=images))

    def _assistant(self, message: ChatMessage, i: int, last: bool) -> None:
        self._started = True
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
        self._started = True
        result = _plain_text(message, i, required=False)
        if self._traits.prompted_tools != "never":
            # Templates without tools reject a `tool` role: the result is text in a user turn.
            self._turns.add(Turn("user", join("\n".join(self._notes), result_markup(result))))
            self._notes = []
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
