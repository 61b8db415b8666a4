"""The Anthropic door's way into the service: its decoded request, shaped by `shaping.anthropic`, becomes
a prepared call (or a prompt count). Everything after that is the door-neutral generation."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from functools import partial
from typing import Any

from rolecall.core.caller import Caller
from rolecall.core.conversation import GenerationRequest
from rolecall.protocol.anthropic.encoder import MessageEncoder
from rolecall.protocol.anthropic.fold import MessageFold
from rolecall.protocol.anthropic.requests import CountTokensRequest, MessagesRequest
from rolecall.service.accounting import RequestRecord
from rolecall.service.generation import start
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


async def message_body(
    runtime: Runtime,
    caller: Caller,
    body: MessagesRequest,
    betas: frozenset[str],
    record: RequestRecord | None,
    *,
    limit_headers: dict[str, str] | None = None,
    background: bool = False,
) -> dict[str, Any]:
    """`POST /v1/messages` with `stream` false, and each request of a message batch: the whole Message.

    `limit_headers` receives the key's rate-limit standing once the request is admitted (the route sends them,
    on an error too). `background` (a batch item): admitted only while no interactive request waits, and its
    ledger row is the caller's to write (the runner stores it with the item's result, in one transaction)."""
    call = await prepare_message(runtime, body, betas)
    generation = await start(runtime, caller, call, record=record, commits=not background, background=background)
    if limit_headers is not None:
        limit_headers.update(generation.ticket.headers)
    folded = MessageFold()
    reads: AsyncGenerator[None, None] = generation.each_read(partial(folded.add_events, MessageEncoder(body.model)))
    async with generation, contextlib.aclosing(reads):  # the engine request ends before its slot is given back
        async for _ in reads:
            pass  # each read is folded in the generation's loop, which passes nothing on
    return folded.message()
