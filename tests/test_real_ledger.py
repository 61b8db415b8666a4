"""The ledger against what the real model's responses reported, through the official SDKs on all three doors,
streamed and not: one row per request, under the config key's label, whose tokens equal the usage the client
was told, and whose per-key sum equals the sum of those usages."""

from __future__ import annotations

from pathlib import Path

import anthropic
import httpx
import openai
import orjson

from rolecall.app.auth import key_id
from tests.conftest import API_KEY
from tests.support.ledger import ledger_rows

PROMPT = [{"role": "user", "content": "Name a colour."}]
MODEL = "MiniMax-M2.7"


def _anthropic(client: anthropic.Anthropic) -> list[tuple[str, tuple[int, int, int], str]]:
    """(request id, (input, cached, output) as reported, door) of a plain and a streamed Messages call."""
    raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=6, messages=PROMPT)  # type: ignore[arg-type]
    message = raw.parse()
    reported = [(raw.headers["request-id"], message.usage)]
    with client.messages.stream(model=MODEL, max_tokens=6, messages=PROMPT) as stream:  # type: ignore[arg-type]
        final = stream.get_final_message()
        reported.append((stream.response.headers["request-id"], final.usage))
    return [
        (rid, (u.input_tokens, u.cache_read_input_tokens or 0, u.output_tokens), "anthropic") for rid, u in reported
    ]


def _openai(client: openai.OpenAI) -> list[tuple[str, tuple[int, int, int], str]]:
    raw = client.chat.completions.with_raw_response.create(model=MODEL, max_tokens=6, messages=PROMPT)  # type: ignore[arg-type]
    usages = [(raw.headers["request-id"], raw.parse().usage)]
    with client.chat.completions.with_streaming_response.create(
        model=MODEL,
        max_tokens=6,
        messages=PROMPT,
        stream=True,
        stream_options={"include_usage": True},  # type: ignore[arg-type]
    ) as response:
        chunks = list(response.parse())
        usages.append((response.headers["request-id"], chunks[-1].usage))
    found = []
    for rid, usage in usages:
        assert usage is not None
        cached = usage.prompt_tokens_details.cached_tokens if usage.prompt_tokens_details else 0
        cached = cached or 0
        found.append((rid, (usage.prompt_tokens - cached, cached, usage.completion_tokens), "openai"))
    return found


def _minimax(http: httpx.Client) -> list[tuple[str, tuple[int, int, int], str]]:
    body = {"model": MODEL, "max_tokens": 6, "messages": PROMPT}
    plain = http.post("/v1/text/chatcompletion_v2", json=body)
    found = [(plain.headers["request-id"], plain.json()["usage"])]
    with http.stream("POST", "/v1/text/chatcompletion_v2", json={**body, "stream": True}) as streamed:
        frames = [line[6:] for line in streamed.iter_lines() if line.startswith("data: ") and line != "data: [DONE]"]
        found.append((streamed.headers["request-id"], orjson.loads(frames[-1])["usage"]))
    result = []
    for rid, usage in found:
        cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
        result.append((rid, (usage["prompt_tokens"] - cached, cached, usage["completion_tokens"]), "minimax"))
    return result


def test_ledger_rows_equal_the_usage_every_door_reported(
    real_client: anthropic.Anthropic, real_openai: openai.OpenAI, real_http: httpx.Client, data_dir: Path
) -> None:
    reported = [*_anthropic(real_client), *_openai(real_openai), *_minimax(real_http)]
    rows = {
        row.request_id: row for row in ledger_rows(f"sqlite:///{data_dir / 'rolecall.db'}", [r[0] for r in reported])
    }
    assert len(rows) == len(reported) == 6  # exactly one row per request
    label = f"config:{key_id(API_KEY)}"
    for request_id, (input_tokens, cached, output), door in reported:
        row = rows[request_id]
        assert (row.key, row.door, row.status, row.model_asked) == (label, door, 200, MODEL)
        assert (row.input_tokens, row.cached_tokens, row.output_tokens) == (input_tokens, cached, output)
        assert row.output_tokens > 0 and row.stop_reason is not None and row.latency_ms > 0
    for column, index in (("input_tokens", 0), ("cached_tokens", 1), ("output_tokens", 2)):
        assert sum(getattr(row, column) for row in rows.values()) == sum(r[1][index] for r in reported)
