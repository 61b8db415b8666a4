"""MessagesRequest -> GenerationRequest: the Messages API's conversation rules (wire contract), in order."""

from __future__ import annotations

import json

from rolecall.core.conversation import GenerationRequest, Sampling, ThinkingMode, ToolCall, Turn
from rolecall.core.errors import InvalidRequest
from rolecall.protocol.anthropic.blocks import (
    DocumentBlock,
    HistoryOnlyBlock,
    ImageBlock,
    RedactedThinkingBlock,
    SearchResultBlock,
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    ToolUseBlock,
)
from rolecall.protocol.anthropic.requests import CountTokensRequest, Message, MessagesRequest
from rolecall.shaping.anthropic.cache_control import check_breakpoints
from rolecall.shaping.anthropic.media import image_url, media_text, tool_result_text
from rolecall.shaping.anthropic.output_format import output_schema
from rolecall.shaping.anthropic.thinking import check_thinking_request
from rolecall.shaping.anthropic.tool_pairing import check_tool_pairing
from rolecall.shaping.anthropic.tools import offered_tools
from rolecall.shaping.notes import Kind, NotePlacement, place_notes, system_note
from rolecall.shaping.roles import ROLE_PLAY_ROLES, RolePlayMessage, inline_note, setup_sections
from rolecall.shaping.thinking import SignaturePolicy
from rolecall.shaping.tools import call_markup, forced_call_schema, result_markup, tool_instructions
from rolecall.shaping.traits import EngineTraits
from rolecall.shaping.turns import TurnCollector, join

BILLING_HEADER = "x-anthropic-billing-header:"


def to_generation(
    request: MessagesRequest | CountTokensRequest,
    traits: EngineTraits,
    signatures: SignaturePolicy | None = None,
    betas: frozenset[str] = frozenset(),
) -> GenerationRequest:
    """Apply the conversation rules and build the neutral request every engine understands.

    `signatures` admits thinking blocks from history (None: carry them all); `betas` are the
    `anthropic-beta` values the client sent."""
    if not request.messages:
        raise InvalidRequest("messages: at least one message is required")
    check_thinking_request(request, betas)
    check_breakpoints(request)
    turns = TurnCollector()
    system = _system_text(request)
    setup: list[RolePlayMessage] = []
    last = len(request.messages) - 1
    for i, message in enumerate(request.messages):
        _check_not_empty(message, i, last)
    notes = _notes(request.messages)
    for i, message in enumerate(request.messages):
        role = "user" if message.role in ("ctx", "msg") else message.role
        if i in notes.notes:
            if i in notes.alone:
                turns.add(Turn("user", notes.alone[i]))  # no user turn next to it: a user turn of its own
        elif role in ROLE_PLAY_ROLES:
            setup.append(RolePlayMessage(role, _plain_text(message, i), message.name))
        elif role == "user":
            _add_user(turns, message, i, traits, notes.before.get(i, []), notes.after.get(i, []))
        else:
            _add_assistant(turns, message, i, signatures, traits.prompted_tools != "never")
    check_tool_pairing(request.messages)
    tools, tool_mode, parallel = offered_tools(request)
    prompting = (tool_mode == "required" and traits.prompted_tools != "never") or (
        tool_mode == "auto" and traits.prompted_tools == "always"
    )
    instructions = tool_instructions(tools) if prompting else ""
    leading = "\n\n".join(part for part in (system, setup_sections(setup), instructions) if part)
    answer_schema = output_schema(request, traits)
    all_turns = ([Turn("system", leading)] if leading else []) + turns.done()
    return GenerationRequest(
        turns=tuple(all_turns),
        max_tokens=getattr(request, "max_tokens", 1),
        sampling=Sampling(
            temperature=getattr(request, "temperature", None),
            top_p=getattr(request, "top_p", None),
            top_k=getattr(request, "top_k", None) or None,  # 0 means off: no limit, as if unset
        ),
        stop_sequences=tuple(getattr(request, "stop_sequences", None) or ()),
        tools=tools,
        tool_mode=tool_mode,
        parallel_tool_calls=parallel,
        thinking=_thinking_mode(request),
        tool_syntax=("json" if tool_mode == "required" else "hermes") if prompting else None,
        # A forced call's schema wins: the turn is that call, and no text is produced to format.
        output_schema=forced_call_schema(tools) if prompting and tool_mode == "required" else answer_schema,
    )


def _system_text(request: MessagesRequest | CountTokensRequest) -> str:
    texts = []
    for block in request.system or ():
        if not block.text:
            raise InvalidRequest("system: text content blocks must be non-empty")
        # The billing header carries a per-request nonce; keeping it would defeat the prefix cache.
        if not block.text.startswith(BILLING_HEADER):
            texts.append(block.text)
    return "\n".join(texts)


def _notes(messages: list[Message]) -> NotePlacement:
    """Once the conversation has started, an inline system message or a role-play message is a note on a
    user turn (shaping/notes.py); role-play messages before it are the setup sections."""
    kinds: list[Kind] = []
    texts: dict[int, str] = {}
    started = False
    for i, message in enumerate(messages):
        role = "user" if message.role in ("ctx", "msg") else message.role
        if role == "system":
            text = _plain_text(message, i)
            texts[i] = system_note(text, message.name) if text else ""
        elif started and role in ROLE_PLAY_ROLES:
            texts[i] = inline_note(RolePlayMessage(role, _plain_text(message, i), message.name))
        kinds.append("note" if i in texts else "user" if role == "user" else "other")
        started = started or role not in ROLE_PLAY_ROLES
    return place_notes(kinds, texts)


def _check_not_empty(message: Message, i: int, last: int) -> None:
    if not message.content and not (i == last and message.role == "assistant"):
        raise InvalidRequest(
            f"messages.{i}: all messages must have non-empty content except for the optional final assistant message"
        )
    for block in message.content:
        if isinstance(block, TextBlock) and not block.text:
            raise InvalidRequest("messages: text content blocks must be non-empty")


def _plain_text(message: Message, i: int) -> str:
    texts = []
    for j, block in enumerate(message.content):
        if not isinstance(block, TextBlock):
            raise InvalidRequest(
                f"messages.{i}.content.{j}.type: only text blocks are allowed in '{message.role}' messages"
            )
        if message.role == "system" and block.text.startswith(BILLING_HEADER):
            continue  # its per-request nonce would defeat the prefix cache, as in the leading system
        texts.append(block.text)
    return "\n".join(texts)


def _add_user(
    turns: TurnCollector, message: Message, i: int, traits: EngineTraits, before: list[str], after: list[str]
) -> None:
    """A user message as a user turn: its notes first (those sent before it, its own `mid_conv_system`
    text, those sent after it), then its words."""
    texts: list[str] = []
    images: list[str] = []
    own_notes: list[str] = []
    for j, block in enumerate(message.content):
        if isinstance(block, TextBlock):
            texts.append(block.text)
        elif isinstance(block, ToolResultBlock):
            result = tool_result_text(block, f"messages.{i}.content.{j}", traits.model_name, traits.vision)
            if traits.prompted_tools != "never":
                texts.append(result_markup(result))
            else:
                turns.add(Turn("tool", result, tool_call_id=block.tool_use_id))
        elif isinstance(block, ImageBlock):
            images.append(image_url(block, f"messages.{i}.content.{j}", traits.model_name, traits.vision))
        elif isinstance(block, (DocumentBlock, SearchResultBlock)):
            texts.append(media_text(block, f"messages.{i}.content.{j}", traits.model_name))
        elif isinstance(block, HistoryOnlyBlock):
            own_notes.extend(system_note(text) for text in _mid_conversation_system(block))
        else:
            raise InvalidRequest(
                f"messages.{i}.content.{j}.type: `{block.type}` blocks are not allowed in user messages"
            )
    # The speaker label goes on the message's own text, after the notes it carries.
    own = "\n".join(texts)
    if message.name and own:
        own = f"{message.name}: {own}"
    text = "\n".join([*before, *own_notes, *after, own] if own else [*before, *own_notes, *after])
    if text or images:
        turns.add(Turn("user", text, images=tuple(images)))


def _mid_conversation_system(block: HistoryOnlyBlock) -> list[str]:
    """The text of a `mid_conv_system` block (trailing system text of a turn): a note on its own turn.

    Other history-only blocks (server-tool calls and results) are opaque to open models: nothing."""
    if block.type != "mid_conv_system":
        return []
    content = getattr(block, "content", None)
    if isinstance(content, str):
        return [content] if content else []
    parts = content if isinstance(content, list) else []
    return [
        part["text"] for part in parts if isinstance(part, dict) and isinstance(part.get("text"), str) and part["text"]
    ]


def _add_assistant(
    turns: TurnCollector, message: Message, i: int, signatures: SignaturePolicy | None, prompted_tools: bool
) -> None:
    texts: list[str] = []
    reasoning: list[str] = []
    calls: list[ToolCall] = []
    for j, block in enumerate(message.content):
        if isinstance(block, TextBlock):
            texts.append(block.text)
        elif isinstance(block, ThinkingBlock):
            admitted = (
                signatures.admit(block.thinking, block.signature, f"messages.{i}.content.{j}")
                if signatures
                else block.thinking
            )
            if admitted is not None:
                reasoning.append(admitted)
        elif isinstance(block, ToolUseBlock):
            arguments = json.dumps(block.input, ensure_ascii=False, separators=(", ", ": "))
            calls.append(ToolCall(block.id, block.name, arguments))
        elif isinstance(block, (RedactedThinkingBlock, HistoryOnlyBlock)):
            continue  # opaque to open models
        else:
            raise InvalidRequest(
                f"messages.{i}.content.{j}.type: `{block.type}` blocks are not allowed in assistant messages"
            )
    text = "".join(texts)
    if message.name and text:
        text = f"{message.name}: {text}"  # a speaker label, as on the user side (docs/role-play.md, names)
    if prompted_tools and calls:
        text, calls = join(text, call_markup(tuple(calls))), []
    turns.add(Turn("assistant", text, "\n".join(reasoning) or None, tuple(calls)))


def _thinking_mode(request: MessagesRequest | CountTokensRequest) -> ThinkingMode:
    if request.thinking is None or request.thinking.type == "adaptive":
        return "default"
    return request.thinking.type
