"""The OpenAI-side doors' way into the service: a chat-completions request, shaped by `shaping.openai`,
becomes a prepared call. Everything after that is the door-neutral generation (n of them for `n`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rolecall.core.conversation import GenerationRequest
from rolecall.core.errors import InvalidRequest
from rolecall.protocol.openai.requests import ChatCompletionRequest
from rolecall.service.prepare import PreparedCall, prepare
from rolecall.service.render import render
from rolecall.service.runtime import Runtime
from rolecall.shaping.openai import ai_character, to_generation
from rolecall.shaping.thinking import SignaturePolicy
from rolecall.shaping.traits import EngineTraits, Shaper


@dataclass(frozen=True, slots=True)
class PreparedChat:
    call: PreparedCall
    ai_name: str | None  # the AI character a named system message set up: the reply's `message.name`


def _shaper(body: ChatCompletionRequest) -> Shaper:
    def shape(traits: EngineTraits, signatures: SignaturePolicy) -> GenerationRequest:
        # Reasoning sent back on this side carries no signatures: it is the client's text, taken as is.
        return to_generation(body, traits)

    return shape


async def prepare_chat(runtime: Runtime, body: ChatCompletionRequest) -> PreparedChat:
    """`POST /v1/chat/completions` or `/v1/text/chatcompletion_v2`: resolved, shaped, counted and fitted."""
    call = await prepare(runtime, body.model, _shaper(body))
    n, slots = body.n or 1, runtime.admission.gate(call.model.id).slots
    if n > slots:
        # Each choice holds an engine slot for its whole generation: more choices than slots could never all run.
        raise InvalidRequest(
            f"n: model {body.model} runs at most {slots} generations at once; ask for n <= {slots} "
            "(or serve it with more parallel slots)"
        )
    return PreparedChat(call, ai_character(body))


async def render_chat(runtime: Runtime, door: str, body: ChatCompletionRequest) -> dict[str, Any]:
    """This side's part of `POST /v1/render`: what the model would see for a chat-completions body."""
    return await render(runtime, door, body.model, _shaper(body))
