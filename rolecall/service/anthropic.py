"""The Anthropic door's way into the service: its decoded request, shaped by `shaping.anthropic`, becomes
a prepared call (or a prompt count). Everything after that is the door-neutral generation."""

from __future__ import annotations

from rolecall.core.conversation import GenerationRequest
from rolecall.protocol.anthropic.requests import CountTokensRequest, MessagesRequest
from rolecall.service.prepare import PreparedCall, count_prompt, prepare
from rolecall.service.render import render
from rolecall.service.runtime import Runtime
from rolecall.shaping.anthropic import to_generation
from rolecall.shaping.thinking import SignaturePolicy
from rolecall.shaping.traits import EngineTraits, Shaper


def _shaper(body: MessagesRequest | CountTokensRequest, betas: frozenset[str]) -> Shaper:
    def shape(traits: EngineTraits, signatures: SignaturePolicy) -> GenerationRequest:
        return to_generation(body, traits, signatures, betas)

    return shape


async def prepare_message(runtime: Runtime, body: MessagesRequest, betas: frozenset[str]) -> PreparedCall:
    """`POST /v1/messages`: resolved, shaped, counted and fitted, ready for `generation.start`."""
    return await prepare(runtime, body.model, _shaper(body, betas))


async def count_message_tokens(runtime: Runtime, body: CountTokensRequest, betas: frozenset[str]) -> int:
    """`POST /v1/messages/count_tokens`: the prompt tokens exactly as `/v1/messages` would serve them."""
    _, _, tokens = await count_prompt(runtime, body.model, _shaper(body, betas))
    return tokens


async def render_message(runtime: Runtime, body: CountTokensRequest, betas: frozenset[str]) -> dict:
    """`POST /v1/render?door=anthropic`: what the model sees for this body, shaped as `/v1/messages` shapes it."""
    return await render(runtime, "anthropic", body.model, _shaper(body, betas))
