"""Tool pairing (§5.4), thinking rules (§6.1), signatures in history (§6.3) and cache breakpoints (§15)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rolecall.core.errors import InvalidRequest
from rolecall.protocol.anthropic.requests import MessagesRequest
from rolecall.protocol.anthropic.validation import parse_body
from rolecall.service.signing_secret import thinking_secret
from rolecall.settings import Settings
from rolecall.shaping.anthropic import to_generation
from rolecall.shaping.anthropic.thinking import INTERLEAVED_BETA
from rolecall.shaping.thinking import SignaturePolicy, ThinkingSigner
from rolecall.shaping.traits import EngineTraits

TOOL = {"name": "get_weather", "input_schema": {"type": "object"}}
SIGNER = ThinkingSigner(b"k" * 32)


def shape(messages, policy: SignaturePolicy | None = None, betas=frozenset(), **extra):
    body = {"model": "m", "max_tokens": 4096, "messages": messages, **extra}
    return to_generation(parse_body(MessagesRequest, json.dumps(body).encode()), EngineTraits("m"), policy, betas)


def use(tool_id: str) -> dict:
    return {"type": "tool_use", "id": tool_id, "name": "get_weather", "input": {}}


def result(tool_id: str) -> dict:
    return {"type": "tool_result", "tool_use_id": tool_id, "content": "ok"}


def user(*content) -> dict:
    return {"role": "user", "content": list(content) or "hi"}


def assistant(*content) -> dict:
    return {"role": "assistant", "content": list(content)}


@pytest.mark.parametrize(
    ("messages", "error"),
    [
        (
            [user(), assistant(use("a")), user({"type": "text", "text": "no result"})],
            "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: a. Each `tool_use` "
            "block must have a corresponding `tool_result` block in the next message.",
        ),
        (
            [user(), assistant(use("a"), use("b")), user(result("a"))],
            "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: b.",
        ),
        ([user(), assistant(use("a"))], "messages.1: `tool_use` ids were found without `tool_result`"),
        (
            [user(), assistant(use("a")), user(result("a"), result("zzz"))],
            "messages.2.content.1: unexpected `tool_use_id` found in `tool_result` blocks: zzz. Each `tool_result` block "
            "must have a corresponding `tool_use` block in the previous message.",
        ),
        ([user(result("a"))], "messages.0.content.0: unexpected `tool_use_id` found in `tool_result` blocks: a."),
        (
            [user(), assistant(use("a")), user(result("a")), assistant(use("a")), user(result("a"))],
            "messages.3.content.0: `tool_use` ids must be unique",
        ),
    ],
)
def test_tool_pairing_errors(messages, error: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        shape(messages, tools=[TOOL])
    assert caught.value.message.startswith(error)


def test_tool_pairing_across_merged_turns_and_role_play() -> None:
    # The results may sit in a later user message of the same merged turn; role-play messages are not turns.
    messages = [
        user(),
        assistant(use("a")),
        {"role": "group", "content": "scene"},
        user(result("a")),
        {"role": "user", "content": "more"},
    ]
    turns = shape(messages, tools=[TOOL]).turns
    assert [t.role for t in turns] == ["user", "assistant", "tool", "user"]


def test_thinking_budget_must_stay_below_max_tokens() -> None:
    thinking = {"type": "enabled", "budget_tokens": 4096}
    with pytest.raises(InvalidRequest, match=r"^`max_tokens` must be greater than `thinking.budget_tokens`"):
        shape([user()], thinking=thinking)
    assert shape([user()], betas=frozenset({INTERLEAVED_BETA}), thinking=thinking).thinking == "enabled"


@pytest.mark.parametrize("choice", [{"type": "any"}, {"type": "tool", "name": "get_weather"}])
def test_thinking_with_forced_tool_use_is_refused(choice) -> None:
    with pytest.raises(InvalidRequest, match=r"^Thinking may not be enabled when tool_choice forces tool use\.$"):
        shape([user()], tools=[TOOL], tool_choice=choice, thinking={"type": "enabled", "budget_tokens": 1024})
    assert shape([user()], tools=[TOOL], tool_choice=choice, thinking={"type": "adaptive"}).tool_mode == "required"


def _history(signature: str | None, thinking: str = "I reason.") -> list[dict]:
    block = {"type": "thinking", "thinking": thinking}
    if signature is not None:
        block["signature"] = signature
    return [user(), assistant(block, {"type": "text", "text": "Answer."}), user()]


def test_signed_thinking_is_carried_as_reasoning() -> None:
    policy = SignaturePolicy(SIGNER, "served")
    turns = shape(_history(SIGNER.sign("I reason.", "served")), policy).turns
    assert turns[1].role == "assistant" and turns[1].reasoning == "I reason." and turns[1].text == "Answer."


@pytest.mark.parametrize("signature", [None, ""])
def test_unsigned_thinking_is_accepted_and_carried(signature) -> None:
    assert shape(_history(signature), SignaturePolicy(SIGNER, "served")).turns[1].reasoning == "I reason."


@pytest.mark.parametrize(
    "signature",
    [
        SIGNER.sign("I reason, tampered.", "served"),
        SIGNER.sign("I reason.", "another-model"),
        ThinkingSigner(b"x" * 32).sign("I reason.", "served"),
        "0" * 64,
        "not-hex",
    ],
)
def test_a_signature_that_does_not_verify(signature: str) -> None:
    with pytest.raises(InvalidRequest, match=r"^messages\.1\.content\.0: Invalid `signature` in `thinking` block$"):
        shape(_history(signature), SignaturePolicy(SIGNER, "served"))
    lenient = shape(_history(signature), SignaturePolicy(SIGNER, "served", lenient=True)).turns[1]
    assert lenient.reasoning is None and lenient.text == "Answer."


def test_redacted_thinking_is_dropped() -> None:
    messages = [
        user(),
        assistant({"type": "redacted_thinking", "data": "opaque"}, {"type": "text", "text": "A."}),
        user(),
    ]
    assert shape(messages, SignaturePolicy(SIGNER, "served")).turns[1].reasoning is None


def test_more_than_four_cache_breakpoints() -> None:
    cached = {"type": "text", "text": "x", "cache_control": {"type": "ephemeral"}}
    assert shape([user(cached, cached), assistant(cached), user(cached)])  # four is fine
    with pytest.raises(InvalidRequest, match=r"^A maximum of 4 blocks with cache_control may be provided. Found 5.$"):
        shape(
            [user(cached, cached), assistant(cached), user(cached)],
            tools=[{**TOOL, "cache_control": {"type": "ephemeral"}}],
        )


def test_signing_secret_is_created_once_and_kept(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "state")
    first = thinking_secret(settings.thinking_secret, settings.data_dir)
    assert len(first) == 32 and thinking_secret(settings.thinking_secret, settings.data_dir) == first
    assert (tmp_path / "state" / "thinking-secret").stat().st_mode & 0o077 == 0
    assert thinking_secret("configured-secret", tmp_path) == b"configured-secret"
