"""Two `rolecall serve` processes on one PostgreSQL enforce one key's limits together: a key allowed 30
requests per minute gets exactly 30 of the 90 requests fired at both instances at once (tolerance: none; the
counters change by compare-and-set on one row per key), and both instances' 429s are in the ledger.

The minute windows are aligned to the clock, so a burst may straddle two: the responses' reset header
names each one's window, and every window admits exactly its 30 (or all it got, when fewer)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import func, select

from rolecall.core.caller import KeyLimits
from rolecall.service.runtime import MIGRATIONS
from rolecall.store import schema
from rolecall.store.database import Database
from tests.support.server import free_port
from tests.support.store_keys import create_keys
from tests.support.waiting import wait_until

CONFIG = '[[models]]\nid = "scripted"\nengine = "scripted"\n'
REQUESTS, RPM = 90, 30  # 90: however the burst falls on the windows, one of them refuses some


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url + "/health", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture(scope="module")
def instances(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """Two rolecall processes (scripted engine) on the module's PostgreSQL database; their URLs."""
    root = tmp_path_factory.mktemp("instances")
    config = root / "rolecall.toml"
    config.write_text(CONFIG)
    servers, urls = [], []
    try:
        for i in range(2):
            port = free_port()
            env = {**os.environ, "ROLECALL_DATA_DIR": str(root / f"i{i}"), "ROLECALL_DATABASE_URL": postgres_url}
            env.pop("ROLECALL_API_KEYS", None)
            command = [sys.executable, "-m", "rolecall", "serve", "--port", str(port), "--config", str(config)]
            log = open(root / f"i{i}.log", "w")
            servers.append(subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT))
            urls.append(f"http://127.0.0.1:{port}")
        for url, server in zip(urls, servers, strict=True):
            assert wait_until(lambda url=url, server=server: _healthy(url) or server.poll() is not None, timeout=60)
            assert server.poll() is None, (root / "i0.log").read_text() + (root / "i1.log").read_text()
        yield urls
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def _statuses_in_ledger(url: str, key: str) -> dict[int, int]:
    async def count() -> dict[int, int]:
        database = await Database.open(url, MIGRATIONS)
        try:
            ledger = schema.ledger
            query = select(ledger.c.status, func.count()).where(ledger.c.key == key).group_by(ledger.c.status)
            async with database.reading() as connection:
                return {int(status): int(n) for status, n in await connection.execute(query)}
        finally:
            await database.close()

    return asyncio.run(count())


def test_two_instances_admit_exactly_the_keys_requests_per_minute(instances: list[str], postgres_url: str) -> None:
    key = create_keys(postgres_url, {"shared": KeyLimits(requests_per_minute=RPM)})["shared"]
    body = {"model": "scripted", "max_tokens": 4, "messages": [{"role": "user", "content": "Hi"}]}

    def post(i: int) -> tuple[int, str]:
        response = httpx.post(instances[i % 2] + "/v1/messages", json=body, headers={"x-api-key": key}, timeout=60)
        assert response.status_code in (200, 429), response.text
        return response.status_code, response.headers["anthropic-ratelimit-requests-reset"]

    # Each instance learns of the new key within a second (the store's key directory). Until then it has no
    # key at all and serves loopback openly, so wait until it refuses a wrong key.
    def knows_the_key(url: str) -> bool:
        refused = httpx.get(url + "/v1/models", headers={"x-api-key": "wrong"}).status_code == 401
        return refused and httpx.get(url + "/v1/models", headers={"x-api-key": key}).status_code == 200

    assert all(wait_until(lambda url=url: knows_the_key(url)) for url in instances)
    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(post, range(REQUESTS)))
    windows: dict[str, Counter[int]] = {}
    for status, window in answers:
        windows.setdefault(window, Counter())[status] += 1
    assert 1 <= len(windows) <= 2, answers
    # Counted apart, each instance would admit 30 of its own 45.
    for counts in windows.values():
        assert set(counts) <= {200, 429}, answers
        assert counts[200] == (RPM if counts[429] else counts[200]) <= RPM, windows
    assert any(counts[429] for counts in windows.values())
    # Every answer has its ledger row, the 429s of both instances included.
    statuses = dict(Counter(status for status, _ in answers))
    assert wait_until(lambda: _statuses_in_ledger(postgres_url, "shared") == statuses, timeout=10)
