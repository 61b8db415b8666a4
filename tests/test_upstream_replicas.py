"""engine = "openai" over two real llama.cpp servers (separate processes): follow-up turns land on the
replica holding their KV prefix (cache_read_input_tokens > 0), and killing a replica loses nothing."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from rolecall.settings import ModelConfig, Settings
from tests.support.llamacpp_replica import LlamaCppReplica, llamacpp_replica
from tests.support.server import running_server
from tests.support.sse import check_stream

UPSTREAM_KEY = "replica-key"
KEY_ENV = "ROLECALL_TEST_UPSTREAM_KEY"
TOPICS = ["the sea", "mountains", "old clocks", "bread baking"]


@pytest.fixture(scope="module")
def replicas() -> Iterator[list[LlamaCppReplica]]:
    with llamacpp_replica(UPSTREAM_KEY) as first, llamacpp_replica(UPSTREAM_KEY) as second:
        yield [first, second]


@pytest.fixture(scope="module")
def url(replicas: list[LlamaCppReplica], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    model = ModelConfig(
        id="smollm2-replicas",
        aliases=["MiniMax-M2.7"],
        engine="openai",
        upstreams=[replicas[0].url, replicas[1].url + "/v1"],
        api_key_env=KEY_ENV,
        # Slow probes: the kill below must be noticed by the failing requests themselves (passive ejection).
        health_interval=30,
    )
    settings = Settings(models=[model], data_dir=tmp_path_factory.mktemp("replica-data"))
    with pytest.MonkeyPatch.context() as env:
        env.setenv(KEY_ENV, UPSTREAM_KEY)
        with running_server(settings) as base:
            yield base


class Conversation:
    """One multi-turn chat; each conversation opens with its own system prompt, so replicas share
    no prefix beyond the template's first tokens and a cache hit proves the follow-up's routing."""

    def __init__(self, topic: str) -> None:
        self.system = f"You are a poet who only writes about {topic}. Keep every answer short."
        self.messages: list[dict] = []
        self.turn_usage: list[dict] = []

    def say(self, url: str, text: str) -> dict:
        self.messages.append({"role": "user", "content": text})
        body = {
            "model": "MiniMax-M2.7",
            "max_tokens": 12,
            "system": self.system,
            "messages": self.messages,
            "stream": True,
            "top_k": 1,
        }
        response = httpx.post(url + "/v1/messages", json=body, timeout=120)
        assert response.status_code == 200, response.text
        events = check_stream(response.content)
        assert events[-1]["type"] == "message_stop", f"request lost: {events[-1]}"
        reply = "".join(e["delta"].get("text", "") for e in events if e["type"] == "content_block_delta")
        self.messages.append({"role": "assistant", "content": reply or "..."})
        usage = events[-2]["usage"]
        self.turn_usage.append(usage)
        return usage


def prompt_total(usage: dict) -> int:
    return usage["input_tokens"] + usage["cache_read_input_tokens"]


def per_replica(url: str, metric: str) -> dict[str, float]:
    """One /metrics series of the replica set, by replica URL."""
    text = httpx.get(url + "/metrics", timeout=10).text
    pattern = rf'^{metric}\{{[^}}]*replica="([^"]+)"\}} (\S+)$'
    return {replica: float(value) for replica, value in re.findall(pattern, text, re.M)}


def requests_per_replica(url: str) -> dict[str, float]:
    return per_replica(url, "rolecall_upstream_requests_total")


def healthy(url: str) -> dict[str, float]:
    return per_replica(url, "rolecall_upstream_healthy")


def test_follow_ups_hit_their_replicas_prefix_cache(url: str) -> None:
    conversations = [Conversation(topic) for topic in TOPICS]
    for turn in ("Write one line.", "Another line, please.", "And a last one."):
        for conversation in conversations:  # interleaved, as concurrent users would be
            conversation.say(url, turn)
    follow_ups = [(c.turn_usage[n - 1], c.turn_usage[n]) for c in conversations for n in (1, 2)]
    hits = [after["cache_read_input_tokens"] for _, after in follow_ups]
    hit_rate = sum(1 for h in hits if h > 0) / len(hits)
    print(f"\naffinity: {hit_rate:.0%} of {len(hits)} follow-up turns read the cache; cached tokens {hits}")
    for before, after in follow_ups:
        # The whole previous prompt was cached where the follow-up landed, not only the template's opening.
        assert after["cache_read_input_tokens"] >= prompt_total(before) - 2, (before, after)
    spread = requests_per_replica(url)
    assert len(spread) == 2 and min(spread.values()) >= 4, f"conversations were not spread: {spread}"


def test_killing_a_replica_loses_no_request(url: str, replicas: list[LlamaCppReplica]) -> None:
    conversations = [Conversation(topic) for topic in TOPICS]
    for conversation in conversations:
        conversation.say(url, "Write one line.")
    before = requests_per_replica(url)
    replicas[1].kill()
    survivor = replicas[0].url
    # Half of these conversations lived on the dead replica: their next turns must fail over.
    for turn in ("Another line, please.", "And a last one."):
        for conversation in conversations:
            conversation.say(url, turn)
    fresh = Conversation("rivers")
    fresh.say(url, "Write one line.")
    after = requests_per_replica(url)
    dead = replicas[1].url
    # The first generation sent to the dead replica ejected it and failed over before any byte reached the
    # client; every later one went to the survivor at once: all nine ran there, one attempt met the dead one.
    assert after[survivor] - before[survivor] == 9 and after[dead] - before[dead] == 1, (before, after)
    assert per_replica(url, "rolecall_upstream_errors_total")[dead] >= 1
    assert healthy(url) == {survivor: 1.0, dead: 0.0}
    # After moving, a conversation's next turn hits the survivor's cache again.
    for conversation in conversations:
        assert conversation.turn_usage[2]["cache_read_input_tokens"] >= prompt_total(conversation.turn_usage[1]) - 2
    print(f"\nfailover: {sum(len(c.turn_usage) for c in conversations) + 1} requests, all answered after the kill")
