"""Keys from the store and the ledger through the real server, on SQLite and on PostgreSQL (scripted engine:
what is checked here is auth, /admin and the rows, not the model): auth switches on with the first stored
key, revocation and expiry are refused within a second in each door's envelope, /admin takes only the admin
key, and every request, errors included, leaves exactly one ledger row."""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import anthropic
import httpx
import openai
import pytest

from rolecall.cli import main
from rolecall.core.chunks import FinishChunk, TextChunk
from rolecall.core.errors import UpstreamError
from rolecall.engines.fake import ScriptedEngine
from rolecall.service.registry import ModelRegistry, ServedModel
from rolecall.settings import Settings
from rolecall.store.ledger import LedgerRow
from tests.support.ledger import ledger_rows
from tests.support.postgres import PostgresServer
from tests.support.server import running_server
from tests.support.waiting import wait_until

ADMIN = "admin-secret-0001"
MESSAGES = {"model": "scripted", "max_tokens": 8, "messages": [{"role": "user", "content": "hello there"}]}
CHAT = {"model": "scripted", "max_tokens": 8, "messages": [{"role": "user", "content": "hello there"}]}


class Server:
    def __init__(self, url: str, store_url: str, data_dir: Path, engine: ScriptedEngine) -> None:
        self.engine = engine
        self.url = url
        self.store_url = store_url
        self.data_dir = data_dir

    def post(self, path: str, body: object, key: str | None = None, bearer: bool = False) -> httpx.Response:
        headers = {}
        if key is not None:
            headers = {"authorization": f"Bearer {key}"} if bearer else {"x-api-key": key}
        return httpx.post(self.url + path, json=body, headers=headers, timeout=30)

    def admin(self, method: str, path: str, key: str = ADMIN, **kwargs: object) -> httpx.Response:
        return httpx.request(method, self.url + "/admin" + path, headers={"x-api-key": key}, timeout=30, **kwargs)  # type: ignore[arg-type]

    def cli(self, *args: str) -> Ran:
        """`rolecall ARGS` in this process (its own connections to the store, as a separate command has)."""
        env = {"ROLECALL_DATA_DIR": str(self.data_dir)}
        if self.store_url.startswith("postgresql"):
            env["ROLECALL_DATABASE_URL"] = self.store_url
        out, err = io.StringIO(), io.StringIO()
        with mock.patch.dict(os.environ, env), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(args))
        return Ran(code, out.getvalue(), err.getvalue())


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("tenants")
    database_url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    settings = Settings(data_dir=data_dir, admin_key=ADMIN, database_url=database_url)
    engine = ScriptedEngine()
    registry = ModelRegistry([ServedModel("scripted", engine, "Scripted", "2024-11-01T00:00:00Z")])
    store_url = database_url or f"sqlite:///{data_dir / 'rolecall.db'}"
    with running_server(settings, registry=registry) as url:
        yield Server(url, store_url, data_dir, engine)


def test_first_key_turns_auth_on_and_revocation_is_seen_within_a_second(server: Server) -> None:
    # No key anywhere: open (loopback), and the anonymous request is in the ledger too.
    opened = server.post("/v1/messages", MESSAGES)
    assert opened.status_code == 200
    created = server.cli("keys", "create", "alice", "--rpm", "1000", "--models", "scripted,other-*")
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    assert secret.startswith("rc-") and "only time it is shown" in created.stderr
    # The running server learns of the first key by itself.
    assert wait_until(lambda: server.post("/v1/messages", MESSAGES).status_code == 401, timeout=3)
    refused = server.post("/v1/messages", MESSAGES)
    assert refused.json()["error"]["type"] == "authentication_error"
    for bearer in (False, True):
        assert server.post("/v1/messages", MESSAGES, secret, bearer=bearer).status_code == 200
    chat = server.post("/v1/chat/completions", CHAT, secret)
    assert chat.status_code == 200 and chat.json()["usage"]["completion_tokens"] > 0

    revoked = server.cli("keys", "revoke", "alice")
    assert revoked.returncode == 0 and "revoked" in revoked.stdout
    assert wait_until(lambda: server.post("/v1/messages", MESSAGES, secret).status_code == 401, timeout=1.5)
    anthropic_door = server.post("/v1/messages", MESSAGES, secret).json()
    assert "was revoked" in anthropic_door["error"]["message"]
    openai_door = server.post("/v1/chat/completions", CHAT, secret)
    assert openai_door.status_code == 401 and "was revoked" in openai_door.json()["error"]["message"]
    minimax_door = server.post("/v1/text/chatcompletion_v2", CHAT, secret)
    assert minimax_door.status_code == 200  # MiniMax's own form: the code in base_resp
    assert minimax_door.json()["base_resp"]["status_code"] == 2049
    assert "was revoked" in minimax_door.json()["base_resp"]["status_msg"]

    rows = ledger_rows(server.store_url, [opened.headers["request-id"], chat.headers["request-id"]])
    by_id = {row.request_id: row for row in rows}
    assert len(rows) == 2
    assert by_id[opened.headers["request-id"]].key == "anonymous"
    row = by_id[chat.headers["request-id"]]
    assert (row.key, row.door, row.status, row.model_asked, row.model_served) == (
        "alice",
        "openai",
        200,
        "scripted",
        "scripted",
    )
    assert row.output_tokens == chat.json()["usage"]["completion_tokens"]
    assert row.input_tokens == chat.json()["usage"]["prompt_tokens"]
    (minimax_row,) = ledger_rows(server.store_url, [minimax_door.headers["request-id"]])
    assert (minimax_row.key, minimax_row.status, minimax_row.door) == (None, 401, "minimax")


def test_admin_takes_only_the_admin_key(server: Server) -> None:
    created = server.admin(
        "POST", "/keys", json={"name": "bob", "tpm": 5000, "quota_tokens": 100, "quota_window": "5h"}
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["key"].startswith("rc-") and body["quota_window_seconds"] == 18000 and body["state"] == "active"
    bob = body["key"]
    # An ordinary key may generate, never administer.
    assert server.post("/v1/messages", MESSAGES, bob).status_code == 200
    forbidden = server.admin("GET", "/keys", key=bob)
    assert forbidden.status_code == 403 and "admin key" in forbidden.json()["error"]["message"]
    assert server.admin("GET", "/keys", key="wrong").status_code == 401
    listed = server.admin("GET", "/keys").json()["data"]
    assert "bob" in [key["name"] for key in listed] and all("key" not in key for key in listed)
    assert server.admin("GET", "/keys/bob").json()["tpm"] == 5000
    assert server.admin("GET", "/keys/nobody").status_code == 404
    taken = server.admin("POST", "/keys", json={"name": "bob"})
    assert taken.status_code == 409 and "choose another name" in taken.json()["error"]["message"]
    bad = server.admin("POST", "/keys", json={"name": "carol", "rpm": 0})
    assert bad.status_code == 400 and "rpm" in bad.json()["error"]["message"]
    assert server.admin("DELETE", "/keys/bob").json()["state"] == "revoked"
    # The instance that revoked it refuses it at once.
    assert server.post("/v1/messages", MESSAGES, bob).status_code == 401


def test_expired_key_is_refused_and_says_so(server: Server) -> None:
    created = server.admin("POST", "/keys", json={"name": "dave", "expires": "2020-01-01"})
    assert created.json()["state"] == "expired"
    refused = server.post("/v1/messages", MESSAGES, created.json()["key"])
    assert refused.status_code == 401 and "expired at 2020-01-01 23:59 UTC" in refused.json()["error"]["message"]


def test_every_request_leaves_one_row_and_usage_sums_them(server: Server) -> None:
    erin = server.admin("POST", "/keys", json={"name": "erin"}).json()["key"]
    sent = [
        server.post("/v1/messages", MESSAGES, erin),
        server.post("/v1/messages", {**MESSAGES, "stream": True}, erin),
        server.post("/v1/chat/completions", {**CHAT, "n": 3}, erin),
        server.post("/v1/text/chatcompletion_v2", CHAT, erin),
        server.post("/v1/messages", {"model": "scripted"}, erin),  # 400: no messages
        server.post("/v1/messages", {**MESSAGES, "model": "no-such-model"}, erin),  # 404
    ]
    ids = [response.headers["request-id"] for response in sent]
    rows = {row.request_id: row for row in ledger_rows(server.store_url, ids)}
    assert len(rows) == len(ids)
    assert [rows[i].status for i in ids] == [200, 200, 200, 200, 400, 404]
    assert [rows[i].door for i in ids] == ["anthropic", "anthropic", "openai", "minimax", "anthropic", "anthropic"]
    assert rows[ids[5]].output_tokens == 0 and rows[ids[5]].key == "erin"
    # n=3: one row, the three choices' tokens together, as the response's usage reports them.
    assert rows[ids[2]].output_tokens == sent[2].json()["usage"]["completion_tokens"] > 0
    reported = sent[0].json()["usage"]
    assert (rows[ids[0]].input_tokens, rows[ids[0]].output_tokens) == (
        reported["input_tokens"],
        reported["output_tokens"],
    )

    usage = server.admin("GET", "/usage", params={"key": "erin"}).json()
    assert usage == [
        {
            "key": "erin",
            "requests": 6,
            "input_tokens": sum(row.input_tokens for row in rows.values()),
            "cached_tokens": 0,
            "output_tokens": sum(row.output_tokens for row in rows.values()),
        }
    ]
    assert server.admin("GET", "/usage", params={"by": "week"}).status_code == 400
    metrics = httpx.get(server.url + "/metrics", headers={"x-api-key": erin}).text
    assert 'rolecall_key_requests_total{key="erin",status="200"} 4.0' in metrics
    if not server.store_url.startswith("sqlite"):
        return  # the CLI reads either backend alike (the key commands above ran on both)
    printed = server.cli("usage", "--key", "erin", "--json")
    assert printed.returncode == 0 and printed.stdout.strip().startswith("[")
    assert json.loads(printed.stdout) == usage
    table = server.cli("usage", "--by", "model", "--key", "erin")
    assert "scripted" in table.stdout and "no-such-model" in table.stdout and "total" in table.stdout


def test_requests_cut_short_are_recorded_with_what_they_generated(server: Server) -> None:
    key = server.admin("POST", "/keys", json={"name": "frank"}).json()["key"]
    # The client leaves after the first words of a stream.
    server.engine.enqueue([TextChunk("one"), TextChunk(" two"), 30.0, TextChunk(" never"), FinishChunk("stop")])
    with httpx.Client(timeout=10) as client:
        body = {**MESSAGES, "stream": True}
        with client.stream("POST", server.url + "/v1/messages", json=body, headers={"x-api-key": key}) as response:
            gone = response.headers["request-id"]
            received = b""
            for chunk in response.iter_bytes():
                received += chunk
                if received.count(b"content_block_delta") >= 2 and received.endswith(b"\n\n"):
                    break
    # The engine fails mid-stream, after the 200: the row has its 502 and the words generated before.
    server.engine.enqueue([TextChunk("half"), TextChunk(" way"), UpstreamError("engine fell over")])
    failed = server.post("/v1/chat/completions", {**CHAT, "stream": True}, key)
    assert failed.status_code == 200 and "engine fell over" in failed.text

    def recorded() -> list[LedgerRow]:
        return ledger_rows(server.store_url, [gone, failed.headers["request-id"]])

    assert wait_until(lambda: len(recorded()) == 2, timeout=10)
    rows = {row.request_id: row for row in recorded()}
    assert (rows[gone].status, rows[gone].key, rows[gone].output_tokens) == (499, "frank", 2)
    row = rows[failed.headers["request-id"]]
    assert (row.status, row.door, row.output_tokens) == (502, "openai", 2)


def test_admin_is_off_without_an_admin_key(tmp_path: Path) -> None:
    registry = ModelRegistry([ServedModel("scripted", ScriptedEngine(), "Scripted", "2024-11-01T00:00:00Z")])
    with running_server(Settings(data_dir=tmp_path, api_keys=["cfg-key"]), registry=registry) as url:
        answer = httpx.get(url + "/admin/keys", headers={"x-api-key": "cfg-key"})
        assert answer.status_code == 404 and "ROLECALL_ADMIN_KEY" in answer.json()["error"]["message"]
        # A key from the config file keeps working, as a key without limits, named config:<key id>.
        ok = httpx.post(url + "/v1/messages", json=MESSAGES, headers={"x-api-key": "cfg-key"})
        assert ok.status_code == 200
        (row,) = ledger_rows(f"sqlite:///{tmp_path / 'rolecall.db'}", [ok.headers["request-id"]])
        assert row.key.startswith("config:") and len(row.key) == len("config:") + 8


def test_two_instances_on_one_postgresql_share_keys_and_the_ledger(
    postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A key created on one instance works on the other within a second, its revocation too, and both
    instances' rows are in the one ledger."""
    postgres_url = postgres.create_database("t_two_instances")  # no key yet: both instances start open
    urls = []
    with contextlib.ExitStack() as stack:
        for name in ("a", "b"):
            settings = Settings(data_dir=tmp_path_factory.mktemp(name), admin_key=ADMIN, database_url=postgres_url)
            registry = ModelRegistry([ServedModel("scripted", ScriptedEngine(), "Scripted", "2024-11-01T00:00:00Z")])
            urls.append(stack.enter_context(running_server(settings, registry=registry)))
        a, b = (Server(url, postgres_url, Path(), ScriptedEngine()) for url in urls)
        key = a.admin("POST", "/keys", json={"name": "gina"}).json()["key"]
        # b knew no key at all, so it was open: it learns of the first key, and turns auth on, within a second.
        assert wait_until(lambda: b.post("/v1/messages", MESSAGES).status_code == 401, timeout=1.5)
        assert wait_until(lambda: b.post("/v1/messages", MESSAGES, key).status_code == 200, timeout=1.5)
        served = [a.post("/v1/messages", MESSAGES, key), b.post("/v1/chat/completions", CHAT, key)]
        rows = ledger_rows(postgres_url, [response.headers["request-id"] for response in served])
        assert sorted((row.key, row.door) for row in rows) == [("gina", "anthropic"), ("gina", "openai")]
        a.admin("DELETE", "/keys/gina")
        assert wait_until(lambda: b.post("/v1/messages", MESSAGES, key).status_code == 401, timeout=1.5)


def test_the_sdks_see_revocation_and_expiry_as_authentication_errors(server: Server) -> None:
    key = server.admin("POST", "/keys", json={"name": "hank"}).json()["key"]
    claude = anthropic.Anthropic(base_url=server.url, api_key=key, max_retries=0)
    gpt = openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)
    message = claude.messages.create(model="scripted", max_tokens=8, messages=[{"role": "user", "content": "hi"}])
    assert message.usage.output_tokens > 0
    server.admin("POST", "/keys/hank/revoke")
    with pytest.raises(anthropic.AuthenticationError, match="was revoked"):
        claude.messages.create(model="scripted", max_tokens=8, messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.AuthenticationError, match="was revoked"):
        gpt.chat.completions.create(model="scripted", max_tokens=8, messages=[{"role": "user", "content": "hi"}])
    expired = server.admin("POST", "/keys", json={"name": "ida", "expires": "2021-06-01T12:00:00Z"}).json()["key"]
    with pytest.raises(anthropic.AuthenticationError, match="expired at 2021-06-01 12:00 UTC"):
        anthropic.Anthropic(base_url=server.url, api_key=expired, max_retries=0).messages.create(
            model="scripted", max_tokens=8, messages=[{"role": "user", "content": "hi"}]
        )
