"""Two scripted replicas behind one model: affinity, retry before the first byte, passive
ejection and re-admission by the health probe, and per-replica metrics."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from rolecall.settings import ModelConfig, Settings
from tests.support import vllm_streams as vllm
from tests.support.server import running_server
from tests.support.sse import check_stream
from tests.support.upstream import ScriptedUpstream, Status, Stream, serving
from tests.support.waiting import wait_until

HEALTH_INTERVAL = 0.2


@pytest.fixture(scope="module")
def replicas() -> Iterator[dict[str, ScriptedUpstream]]:
    first, second = ScriptedUpstream(), ScriptedUpstream()
    with serving(first) as url_a, serving(second) as url_b:
        yield {url_a: first, url_b: second}


@pytest.fixture(scope="module")
def url(replicas: dict[str, ScriptedUpstream], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    model = ModelConfig(
        id="minimax-m2",
        aliases=["MiniMax-M2.7"],
        engine="openai",
        upstreams=list(replicas),
        upstream_model="MiniMaxAI/MiniMax-M2.7",
        health_interval=HEALTH_INTERVAL,
    )
    settings = Settings(models=[model], data_dir=tmp_path_factory.mktemp("failover-data"), ping_interval=5)
    with running_server(settings) as base:
        yield base


@pytest.fixture(autouse=True)
def reset(replicas: dict[str, ScriptedUpstream]) -> Iterator[None]:
    yield
    for app in replicas.values():
        app.answers.clear()
        app.fail_with = None
        app.healthy = True


def conversation(tag: str, turns: int) -> dict:
    messages: list[dict] = []
    for n in range(turns):
        if n:
            messages.append({"role": "assistant", "content": "Hello there."})
        messages.append({"role": "user", "content": f"{tag} turn {n}"})
    return {"model": "MiniMax-M2.7", "max_tokens": 32, "messages": messages, "stream": True}


def send(url: str, body: dict) -> list[dict]:
    response = httpx.post(url + "/v1/messages", json=body, timeout=30)
    assert response.status_code == 200, response.text
    return check_stream(response.content)


def served_by(replicas: dict[str, ScriptedUpstream], tag: str) -> list[str]:
    """The replica URLs that received chat requests of conversation `tag`, in no particular order."""
    return [u for u, app in replicas.items() for body in app.chats() if tag in body["messages"][0]["content"]]


def metric(url: str, name: str, replica: str) -> float:
    text = httpx.get(url + "/metrics", timeout=10).text
    found = re.search(rf'^{name}{{model="minimax-m2",replica="{re.escape(replica)}"}} (\S+)$', text, re.M)
    assert found, f"{name} for {replica} missing from /metrics"
    return float(found.group(1))


def test_follow_ups_stay_on_their_replica_and_new_conversations_spread(url: str, replicas: dict) -> None:
    for turns in (1, 2, 3):
        for tag in ("alpha", "beta"):
            send(url, conversation(tag, turns))
    homes = {tag: set(served_by(replicas, tag)) for tag in ("alpha", "beta")}
    assert all(len(home) == 1 for home in homes.values()), homes
    assert homes["alpha"] != homes["beta"], "two idle replicas: the second conversation goes to the other one"


def test_failure_before_the_first_byte_retries_elsewhere_then_readmits(url: str, replicas: dict) -> None:
    send(url, conversation("gamma", 1))
    (home,) = served_by(replicas, "gamma")
    (other,) = [u for u in replicas if u != home]
    errors_before = metric(url, "rolecall_upstream_errors_total", home)
    replicas[home].fail_with = Status(500, {"error": {"message": "CUDA error"}})
    events = send(url, conversation("gamma", 2))
    assert events[-1]["type"] == "message_stop", "the client never saw the failed attempt"
    served = served_by(replicas, "gamma")
    assert served.count(home) == 2 and served.count(other) == 1  # tried at home, answered 500, retried
    assert metric(url, "rolecall_upstream_errors_total", home) == errors_before + 1
    # Down for good: the active probe keeps it out; back up: the probe re-admits it.
    replicas[home].healthy = False
    assert wait_until(lambda: metric(url, "rolecall_upstream_healthy", home) == 0, timeout=20.0)
    replicas[home].fail_with, replicas[home].healthy = None, True
    assert wait_until(lambda: metric(url, "rolecall_upstream_healthy", home) == 1, timeout=20.0)
    # The conversation moved and stays where its cache now is.
    send(url, conversation("gamma", 3))
    assert served_by(replicas, "gamma").count(other) == 2


def test_overloaded_replica_is_skipped_but_not_ejected(url: str, replicas: dict) -> None:
    send(url, conversation("delta", 1))
    (home,) = served_by(replicas, "delta")
    replicas[home].fail_with = Status(503, {"error": {"message": "queue full"}})
    send(url, conversation("delta", 2))
    (other,) = [u for u in replicas if u != home]
    served = served_by(replicas, "delta")
    assert served.count(home) == 2 and served.count(other) == 1  # tried, answered 503, retried elsewhere
    assert metric(url, "rolecall_upstream_healthy", home) == 1


def test_no_retry_once_bytes_were_sent(url: str, replicas: dict) -> None:
    for app in replicas.values():
        app.enqueue(Stream(vllm.broken_off(), drop=True))
    events = send(url, conversation("epsilon", 1))
    assert events[-1]["type"] == "error"
    assert len(served_by(replicas, "epsilon")) == 1, "a stream that already sent text must not be replayed"


def test_every_replica_overloaded_is_529(url: str, replicas: dict) -> None:
    for app in replicas.values():
        app.fail_with = Status(429, {"error": {"message": "rate limited"}}, {"retry-after": "3"})
    response = httpx.post(url + "/v1/messages", json={**conversation("zeta", 1), "stream": False}, timeout=30)
    assert response.status_code == 529 and response.headers["retry-after"] == "3"
    assert len(served_by(replicas, "zeta")) == 2, "each replica was tried once"
    streamed = httpx.post(url + "/v1/messages", json={**conversation("zeta", 1), "stream": True}, timeout=30)
    assert streamed.status_code == 529, "a stream commits to 200 only once the engine call has not failed at once"
    assert streamed.headers["retry-after"] == "3"


def test_metrics_list_every_replica(url: str, replicas: dict) -> None:
    # Its own traffic, so that it holds run alone: two new conversations on idle, admitted replicas take
    # turns (an earlier test may have left one ejected until its next health probe).
    assert wait_until(lambda: all(metric(url, "rolecall_upstream_healthy", r) == 1 for r in replicas), timeout=20.0)
    for tag in ("iota", "kappa"):
        send(url, conversation(tag, 1))
    served = served_by(replicas, "iota") + served_by(replicas, "kappa")
    assert sorted(served) == sorted(replicas)
    for replica in replicas:
        assert metric(url, "rolecall_upstream_requests_total", replica) >= served.count(replica)
        assert metric(url, "rolecall_upstream_in_flight", replica) == 0
