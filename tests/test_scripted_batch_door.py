"""Message Batches' door through the real server and the official `anthropic` SDK, on the scripted engine (what
is checked here is the door: shapes, owners, states, errors, paging, the prefix, the body cap, the CLI; the real
model's acceptance run is tests/test_real_batches.py). The engine holds every generation while a test keeps its
gate closed, so a batch stays `in_progress` for exactly as long as a test needs."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import re
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import anthropic
import httpx
import pytest

from rolecall.cli import main
from rolecall.core.caller import KeyLimits
from rolecall.core.chunks import EngineChunk
from rolecall.core.conversation import GenerationRequest
from rolecall.engines.fake import ScriptedEngine
from rolecall.service.registry import ModelRegistry, ServedModel
from rolecall.settings import Settings
from rolecall.store.database import database_url
from tests.support.server import running_server
from tests.support.store_keys import create_keys
from tests.support.waiting import wait_until

BATCH_ID = re.compile(r"msgbatch_[0-9A-Za-z]{24}")
RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
PARAMS = {"model": "scripted", "max_tokens": 4, "messages": [{"role": "user", "content": "hello there"}]}
KEYS = {name: KeyLimits() for name in ("alice", "bob", "lister", "refused", "cli")} | {
    "narrow": KeyLimits(models=("other-*",))
}
BODY_CAP = 4096  # max_body_bytes of this server: a batch is read under its own, far larger cap


class GatedEngine(ScriptedEngine):
    """The scripted engine, but every generation waits while `gate` is closed."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.gate.set()

    async def generate(self, request: GenerationRequest) -> AsyncIterator[EngineChunk]:
        while not self.gate.is_set():
            await asyncio.sleep(0.01)
        async for chunk in super().generate(request):
            yield chunk


@dataclass
class Served:
    url: str
    keys: dict[str, str]
    data_dir: Path
    engine: GatedEngine

    def client(self, key: str = "alice", prefix: str = "") -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=self.url + prefix, api_key=self.keys[key], max_retries=0, timeout=30)

    def http(self, key: str = "alice") -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"x-api-key": self.keys[key]}, timeout=30)

    def cli(self, *args: str) -> tuple[int, str, str]:
        """`rolecall ARGS` in this process, on this server's store."""
        out, err = io.StringIO(), io.StringIO()
        env = {"ROLECALL_DATA_DIR": str(self.data_dir)}
        with mock.patch.dict(os.environ, env), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(args))
        return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    data_dir = tmp_path_factory.mktemp("batches")
    keys = create_keys(database_url(None, data_dir), KEYS)
    engine = GatedEngine()
    created = "2024-11-01T00:00:00Z"
    registry = ModelRegistry([ServedModel(id="scripted", engine=engine, display_name="S", created_at=created)])
    settings = Settings(data_dir=data_dir, max_body_bytes=BODY_CAP)
    with running_server(settings, registry=registry) as url:
        yield Served(url, keys, data_dir, engine)
    engine.gate.set()


@pytest.fixture
def held(served: Served) -> Iterator[GatedEngine]:
    """Generations wait until the test ends (or opens the gate itself)."""
    served.engine.gate.clear()
    yield served.engine
    served.engine.gate.set()


def _requests(count: int, **params: Any) -> list[dict[str, Any]]:
    return [{"custom_id": f"r-{i}", "params": {**PARAMS, **params}} for i in range(count)]


def _ended(client: anthropic.Anthropic, batch_id: str) -> Any:
    batch = None

    def ended() -> bool:
        nonlocal batch
        batch = client.messages.batches.retrieve(batch_id)
        return batch.processing_status == "ended"

    assert wait_until(ended, timeout=60, interval=0.05), batch
    return batch


def test_a_new_batch_is_in_progress_with_anthropics_shape(served: Served, held: GatedEngine) -> None:
    with served.http() as http:
        response = http.post("/v1/messages/batches", json={"requests": _requests(3)})
        assert response.status_code == 200, response.text
        shown = response.json()
        assert list(shown) == [
            "id", "type", "processing_status", "request_counts", "created_at", "expires_at", "ended_at",
            "cancel_initiated_at", "archived_at", "results_url",
        ]  # fmt: skip
        assert BATCH_ID.fullmatch(shown["id"]) and shown["type"] == "message_batch"
        assert shown["processing_status"] == "in_progress"
        assert shown["request_counts"] == {"processing": 3, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        assert RFC3339.fullmatch(shown["created_at"]) and RFC3339.fullmatch(shown["expires_at"])
        created, expires = (
            datetime.fromisoformat(shown[f].replace("Z", "+00:00")) for f in ("created_at", "expires_at")
        )
        assert expires - created == timedelta(hours=24)
        assert shown["ended_at"] is shown["cancel_initiated_at"] is shown["archived_at"] is shown["results_url"] is None
        assert http.get(f"/v1/messages/batches/{shown['id']}").json() == shown

        # Until it has ended: no results, no delete; each says what to do instead.
        for method, path in (("GET", "/results"), ("DELETE", "")):
            refused = http.request(method, f"/v1/messages/batches/{shown['id']}{path}")
            assert refused.status_code == 400, refused.text
            error = refused.json()
            assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
            assert "in_progress" in error["error"]["message"] and error["base_resp"]["status_code"] == 2013


def test_cancel_then_the_batch_ends_with_every_request_accounted_for(served: Served, held: GatedEngine) -> None:
    client = served.client()
    # More requests than the runner runs at once: some have not started when the cancel comes.
    batch = client.messages.batches.create(requests=_requests(20))  # type: ignore[arg-type]
    canceled = client.messages.batches.cancel(batch.id)
    assert canceled.processing_status in ("canceling", "ended") and canceled.cancel_initiated_at is not None
    again = client.messages.batches.cancel(batch.id)  # idempotent
    assert again.cancel_initiated_at == canceled.cancel_initiated_at
    held.gate.set()
    ended = _ended(client, batch.id)
    counts = ended.request_counts
    assert counts.processing == counts.errored == counts.expired == 0
    assert counts.canceled >= 1 and counts.succeeded + counts.canceled == 20, counts
    assert ended.ended_at >= ended.cancel_initiated_at
    kinds = [line.result.type for line in client.messages.batches.results(batch.id)]
    assert sorted(kinds) == sorted(["succeeded"] * counts.succeeded + ["canceled"] * counts.canceled)


def test_results_are_jsonl_streamed_in_submission_order_then_the_batch_can_be_deleted(served: Served) -> None:
    client = served.client()
    requests = [{"custom_id": f"id_{n:02d}", "params": {**PARAMS, "max_tokens": 1 + n % 3}} for n in range(12)]
    batch = client.messages.batches.create(requests=requests)  # type: ignore[arg-type]
    ended = _ended(client, batch.id)
    assert ended.request_counts.succeeded == 12 and ended.ended_at is not None
    assert ended.results_url == f"{served.url}/v1/messages/batches/{batch.id}/results"
    with served.http() as http:
        raw = http.get(ended.results_url)
    assert raw.status_code == 200
    assert raw.headers["content-type"] == "application/x-jsonl"
    assert raw.headers["content-disposition"] == f"attachment; filename*=utf-8''{batch.id}_results.jsonl"
    lines = raw.content.split(b"\n")
    assert lines[-1] == b"" and b"" not in lines[:-1] and len(lines) == 13  # one per request, no blank line
    parsed = [json.loads(line) for line in lines[:-1]]
    assert [line["custom_id"] for line in parsed] == [r["custom_id"] for r in requests]
    for line in lines[:-1]:
        assert line == json.dumps(json.loads(line), separators=(",", ":"), ensure_ascii=False).encode()
    for line, request in zip(parsed, requests, strict=True):
        message = line["result"]["message"]
        assert line["result"]["type"] == "succeeded" and message["type"] == "message"
        assert message["usage"]["output_tokens"] == request["params"]["max_tokens"]
        assert message["usage"]["service_tier"] == "batch"
    sdk_lines = list(client.messages.batches.results(batch.id))
    assert [line.model_dump(mode="json", exclude_unset=True) for line in sdk_lines] == parsed

    assert client.messages.batches.delete(batch.id).model_dump() == {"id": batch.id, "type": "message_batch_deleted"}
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.retrieve(batch.id)


def test_under_the_anthropic_prefix_results_url_keeps_the_prefix(served: Served) -> None:
    client = served.client(prefix="/anthropic")
    batch = client.messages.batches.create(requests=_requests(2))  # type: ignore[arg-type]
    ended = _ended(client, batch.id)
    assert ended.results_url == f"{served.url}/anthropic/v1/messages/batches/{batch.id}/results"
    assert [line.custom_id for line in client.messages.batches.results(batch.id)] == ["r-0", "r-1"]
    assert batch.id in [b.id for b in served.client().messages.batches.list(limit=1000).data]


def test_another_keys_batch_does_not_exist_for_it(served: Served) -> None:
    mine = served.client("alice").messages.batches.create(requests=_requests(1))  # type: ignore[arg-type]
    _ended(served.client("alice"), mine.id)
    theirs = served.client("bob").messages.batches
    for call in (theirs.retrieve, theirs.cancel, theirs.results, theirs.delete):
        with pytest.raises(anthropic.NotFoundError) as caught:
            call(mine.id)
        assert caught.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    with served.http("bob") as http:
        missing = http.get("/v1/messages/batches/msgbatch_000000000000000000000000").json()["error"]
        assert (
            missing["message"].replace("msgbatch_000000000000000000000000", mine.id)
            == (http.get(f"/v1/messages/batches/{mine.id}").json()["error"]["message"])
        )  # a foreign batch and a missing one read the same
    assert mine.id not in [b.id for b in theirs.list(limit=1000)]
    assert served.client("alice").messages.batches.retrieve(mine.id).id == mine.id


def test_the_list_pages_newest_first(served: Served) -> None:
    client = served.client("lister")
    ids = [client.messages.batches.create(requests=_requests(1)).id for _ in range(5)]  # type: ignore[arg-type]
    newest_first = ids[::-1]
    assert [b.id for b in client.messages.batches.list(limit=2)] == newest_first  # the SDK walks every page
    with served.http("lister") as http:
        page = http.get("/v1/messages/batches", params={"limit": 2}).json()
        assert [b["id"] for b in page["data"]] == newest_first[:2] and page["has_more"] is True
        assert (page["first_id"], page["last_id"]) == (newest_first[0], newest_first[1])
        after = http.get("/v1/messages/batches", params={"limit": 10, "after_id": ids[2]}).json()
        assert [b["id"] for b in after["data"]] == newest_first[3:] and after["has_more"] is False
        before = http.get("/v1/messages/batches", params={"limit": 1, "before_id": ids[2]}).json()
        assert [b["id"] for b in before["data"]] == [ids[3]] and before["has_more"] is True
        for limit in ("0", "1001", "ten"):
            refused = http.get("/v1/messages/batches", params={"limit": limit})
            assert refused.status_code == 400 and refused.json()["error"]["message"].startswith("limit: ")


@pytest.mark.parametrize(
    ("requests", "status", "message"),
    [
        (_requests(2) + _requests(1), 400, 'requests.2.custom_id: "r-0" is already the custom_id of requests.0'),
        (_requests(2, stream=True), 400, 'requests.0 (custom_id "r-0"): params.stream: batch requests cannot stream'),
        (_requests(1, model="nope"), 400, 'requests.0 (custom_id "r-0"): params.model: nope not found'),
        (_requests(1, max_tokens=0), 400, 'requests.0 (custom_id "r-0"): params.max_tokens: Input should be greater'),
        ([{"custom_id": "a b", "params": PARAMS}], 400, 'requests.0.custom_id: "a b" is not a valid custom_id'),
        ([], 400, "requests: a batch needs at least one request"),
    ],
)
def test_an_invalid_batch_is_refused_whole_naming_the_request(
    served: Served, requests: list[dict[str, Any]], status: int, message: str
) -> None:
    with served.http("refused") as http:
        before = http.get("/v1/messages/batches", params={"limit": 1000}).json()["data"]
        response = http.post("/v1/messages/batches", json={"requests": requests})
        assert response.status_code == status, response.text
        error = response.json()
        assert error["error"]["type"] == "invalid_request_error" and error["error"]["message"].startswith(message)
        assert error["error"]["message"].endswith(" (2013)") and error["base_resp"]["status_code"] == 2013
        assert http.get("/v1/messages/batches", params={"limit": 1000}).json()["data"] == before == []  # none queued


def test_a_model_outside_the_keys_allow_list_is_a_403_naming_the_request(served: Served) -> None:
    with pytest.raises(anthropic.PermissionDeniedError) as caught:
        served.client("narrow").messages.batches.create(requests=_requests(1))  # type: ignore[arg-type]
    assert 'requests.0 (custom_id "r-0"): this API key may not use model scripted' in str(caught.value)


def test_a_batch_has_its_own_body_cap(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    big = "word " * 2000  # one request alone is over this server's max_body_bytes
    with served.http() as http:
        assert http.post("/v1/messages", json={**PARAMS, "system": big}).status_code == 413
        accepted = http.post("/v1/messages/batches", json={"requests": _requests(3, system=big)})
        assert accepted.status_code == 200, accepted.text
        monkeypatch.setattr("rolecall.app.batches.MAX_BATCH_BYTES", 20_000)  # 256 MB stands in for this
        refused = http.post("/v1/messages/batches", json={"requests": _requests(3, system=big)})
        assert refused.status_code == 413 and refused.json()["error"]["type"] == "request_too_large"


def test_unauthenticated_requests_are_refused(served: Served) -> None:
    for key in (None, "wrong"):
        headers = {"x-api-key": key} if key else {}
        response = httpx.get(served.url + "/v1/messages/batches", headers=headers)
        assert response.status_code == 401 and response.json()["error"]["type"] == "authentication_error"


def test_the_operator_cli_lists_shows_saves_and_cancels_every_keys_batches(
    served: Served, held: GatedEngine, tmp_path: Path
) -> None:
    client = served.client("cli")
    running = client.messages.batches.create(requests=_requests(2))  # type: ignore[arg-type]

    code, out, _ = served.cli("batches", "list", "--limit", "1000")
    assert code == 0 and out.splitlines()[0].split() == [
        "ID", "OWNER", "STATUS", "REQUESTS", "SUCCEEDED", "ERRORED", "CANCELED", "EXPIRED", "CREATED", "(UTC)",
    ]  # fmt: skip
    row = next(line.split() for line in out.splitlines() if line.startswith(running.id))
    assert row[1:8] == ["cli", "in_progress", "2", "0", "0", "0", "0"]

    code, out, _ = served.cli("batches", "show", running.id)
    shown = json.loads(out)
    assert code == 0 and shown["owner"] == "cli" and shown["processing_status"] == "in_progress"

    code, _, err = served.cli("batches", "results", running.id)
    assert code == 1 and "still in_progress; results are available once it has ended" in err

    code, out, _ = served.cli("batches", "cancel", running.id)
    assert code == 0 and json.loads(out)["cancel_initiated_at"] is not None
    held.gate.set()
    _ended(client, running.id)

    target = tmp_path / "results.jsonl"
    code, _, err = served.cli("batches", "results", running.id, "--output", str(target))
    assert code == 0 and f"2 results of {running.id} written to {target}" in err
    with served.http("cli") as http:
        assert target.read_bytes() == http.get(f"/v1/messages/batches/{running.id}/results").content

    code, out, _ = served.cli("batches", "list", "--json", "--limit", "1000")
    assert running.id in [batch["id"] for batch in json.loads(out)["data"]]

    code, _, err = served.cli("batches", "show", "msgbatch_nope")
    assert code == 1 and err.startswith("rolecall: message batch msgbatch_nope not found")


def test_the_cli_pages_the_list_and_writes_results_to_stdout(
    served: Served, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    client = served.client("cli")
    batch = client.messages.batches.create(requests=_requests(3))  # type: ignore[arg-type]
    _ended(client, batch.id)
    with mock.patch.dict(os.environ, {"ROLECALL_DATA_DIR": str(served.data_dir)}):
        assert main(["batches", "results", batch.id]) == 0
        written = capsysbinary.readouterr().out
        with served.http("cli") as http:
            assert written == http.get(f"/v1/messages/batches/{batch.id}/results").content
        assert main(["batches", "list", "--limit", "1"]) == 0
        out = capsysbinary.readouterr().out.decode()
        assert out.splitlines()[1].startswith(batch.id)  # newest first, whoever owns it
        assert out.splitlines()[-1] == f"more: rolecall batches list --limit 1 --after-id {batch.id}"
