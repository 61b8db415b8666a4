"""`rolecall serve` as users start it: mistakes at start-up get one clear line and exit 2 (never a
traceback), and an `openai` model whose upstreams are not up yet starts anyway and serves once they are."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.server import free_port
from tests.support.upstream import ScriptedUpstream, serving
from tests.support.waiting import wait_until

REPO = Path(__file__).resolve().parents[1]
BODY = {"model": "MiniMax-M2.7", "max_tokens": 16, "messages": [{"role": "user", "content": "hello"}]}


def _serve(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "ROLECALL_DATA_DIR": str(tmp_path)}
    for name in ("ROLECALL_API_KEYS", "ROLECALL_PORT", "ROLECALL_HOST", "ROLECALL_CONFIG"):
        env.pop(name, None)
    return subprocess.Popen(
        [sys.executable, "-m", "rolecall", "serve", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _finish(server: subprocess.Popen[str], timeout: float = 60) -> tuple[int, str]:
    try:
        output, _ = server.communicate(timeout=timeout)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    return server.returncode, output


def test_a_model_file_that_is_not_gguf_is_one_line_and_exit_2(tmp_path: Path) -> None:
    fake = tmp_path / "model.gguf"
    fake.write_text("<html>404 Not Found</html>\n")  # what a failed download often leaves behind
    code, output = _finish(_serve(tmp_path, "--port", str(free_port()), "--model", str(fake)))
    assert code == 2, output
    assert output.count("\n") == 1 and "Traceback" not in output, output
    assert str(fake) in output and "not a GGUF model file" in output, output


def test_openai_upstream_down_at_start_serves_once_it_comes_up(tmp_path: Path) -> None:
    """GPU servers often come up after the gateway: rolecall starts, says which replica is down,
    answers 529 with retry-after meanwhile, and serves as soon as the replica answers."""
    upstream_port, port = free_port(), free_port()
    upstream_url = f"http://127.0.0.1:{upstream_port}"
    config = tmp_path / "rolecall.toml"
    config.write_text(
        f'[[models]]\nid = "m2"\naliases = ["MiniMax-M2.7"]\nengine = "openai"\n'
        f'upstreams = ["{upstream_url}"]\nhealth_interval = 0.2\n'
    )
    server = _serve(tmp_path, "--port", str(port), "--config", str(config))
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_until(lambda: _status(url + "/health") is not None, timeout=60), "rolecall did not start"
        health = httpx.get(url + "/health")
        assert health.status_code == 503
        assert health.json()["replicas"] == {"m2": {upstream_url: "down"}}
        refused = httpx.post(url + "/v1/messages", json=BODY)
        assert refused.status_code == 529, refused.text
        assert refused.json()["error"]["type"] == "overloaded_error"
        assert int(refused.headers["retry-after"]) >= 1
        with serving(ScriptedUpstream(), port=upstream_port):
            assert wait_until(lambda: _status(url + "/health") == 200, timeout=30), "the replica was not admitted"
            assert httpx.get(url + "/health").json()["replicas"] == {"m2": {upstream_url: "up"}}
            answered = httpx.post(url + "/v1/messages", json=BODY, timeout=30)
            assert answered.status_code == 200, answered.text
            assert answered.json()["content"][0]["text"] == "Hello there."
            server.terminate()
            code, output = _finish(server)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert code == 0 and "Traceback" not in output, output
    assert f"replica {upstream_url}: down" in output


def _status(url: str) -> int | None:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.TransportError:
        return None


def test_a_busy_port_is_one_line_and_exit_2_before_the_model_loads(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, output = _finish(_serve(tmp_path, "--port", str(port)))
    assert code == 2, output
    assert f"rolecall: cannot listen on http://127.0.0.1:{port}: Address already in use" in output, output
    assert "loading" not in output and "serving" not in output and "Traceback" not in output, output


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="this machine has no IPv6 loopback (::1)")
def test_make_serve_takes_port_and_host_and_prints_the_address_once_listening(tmp_path: Path) -> None:
    """`make serve PORT=... HOST=...` as the README shows it; the banner names the address, an IPv6
    one in brackets, only after the engine is ready and the socket listens."""
    port = free_port()
    env = {**os.environ, "ROLECALL_DATA_DIR": str(tmp_path), "ROLECALL_PORT": "1"}  # make's PORT wins
    env.pop("ROLECALL_API_KEYS", None)
    server = subprocess.Popen(
        ["make", "--no-print-directory", "serve", f"PORT={port}", "HOST=::1", "ARGS=--log-level info"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # make and rolecall in one group, as in a terminal
    )
    url = f"http://[::1]:{port}"
    try:
        assert wait_until(lambda: _status(url + "/health") == 200, timeout=300), "make serve did not come up"
        os.killpg(server.pid, signal.SIGTERM)
        code, output = _finish(server)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    # make itself dies of the signal once rolecall has stopped; rolecall's own shutdown is what counts.
    assert code in (0, -signal.SIGTERM) and "Application shutdown complete" in output, output
    assert "Traceback" not in output, output
    banner = f"rolecall: serving {url}  (Messages API"
    assert output.count(banner) == 1, output
    assert output.index("engine ready") < output.index(banner), "the address was printed before it listened"
