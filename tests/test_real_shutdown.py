"""`rolecall serve` as users run it: start-up output, and SIGTERM lets an in-flight stream finish,
stops the embedded engine's process and exits 0."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time

import httpx

from tests.support.server import free_port
from tests.support.sse import check_stream
from tests.support.waiting import wait_until
from tests.test_real_engine_faults import endless


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as handle:
        return [int(child) for child in handle.read().split()]


def test_sigterm_finishes_the_stream_stops_the_engine_and_exits_0(tmp_path) -> None:
    port = free_port()
    # A grace period far beyond the stream's length: on a busy shared machine 64 tokens can take 30 s.
    env = {**os.environ, "ROLECALL_DATA_DIR": str(tmp_path), "ROLECALL_SHUTDOWN_GRACE": "240"}
    env.pop("ROLECALL_API_KEYS", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "rolecall", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url)
        engines = _children(server.pid)
        assert len(engines) == 1, "the embedded engine runs as one child process"

        body = {
            "model": "MiniMax-M2.7",
            "max_tokens": 64,
            "stream": True,
            "top_k": 1,
            "messages": [{"role": "user", "content": "Tell me a story about a fox."}],
        }
        with httpx.stream("POST", url + "/v1/messages", json=body, timeout=60) as response:
            raw = b""
            for chunk in response.iter_bytes():
                if not raw:
                    server.send_signal(signal.SIGTERM)  # mid-stream
                raw += chunk
        events = check_stream(raw)
        assert events[-1]["type"] == "message_stop", "the in-flight stream was allowed to finish"
        assert server.wait(timeout=30) == 0
        output = server.stdout.read()
        for engine in engines:
            assert not os.path.exists(f"/proc/{engine}") or open(f"/proc/{engine}/stat").read().split()[2] == "Z"
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    # What a user sees at start-up: the names each model answers to, the address, auth, loading progress.
    assert "MiniMax-M2.7" in output and f"http://127.0.0.1:{port}" in output
    assert "auth: off" in output and "engine ready" in output


def test_ctrl_c_to_the_terminals_process_group_lets_the_stream_finish(tmp_path) -> None:
    """Ctrl-C in a terminal signals the whole foreground process group, engine child included. The
    engine keeps generating (it has its own session), the stream ends normally, nothing is restarted,
    and rolecall exits 0 without a traceback."""
    port = free_port()
    env = {**os.environ, "ROLECALL_DATA_DIR": str(tmp_path), "ROLECALL_SHUTDOWN_GRACE": "240"}
    env.pop("ROLECALL_API_KEYS", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "rolecall", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # a process group of its own, like a shell's foreground job
    )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url)
        body = {
            "model": "MiniMax-M2.7",
            "max_tokens": 48,
            "stream": True,
            "top_k": 1,
            "messages": [{"role": "user", "content": "Tell me a story about a fox."}],
        }
        with httpx.stream("POST", url + "/v1/messages", json=body, timeout=120) as response:
            raw = b""
            for chunk in response.iter_bytes():
                if b"content_block_delta" in chunk and b"content_block_delta" not in raw:
                    os.killpg(server.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
                raw += chunk
        events = check_stream(raw)
        assert events[-1]["type"] == "message_stop", [e["type"] for e in events[-3:]]
        deltas = [e for e in events if e["type"] == "message_delta"]
        assert deltas[0]["usage"]["output_tokens"] > 1, "generation went on after Ctrl-C"
        assert server.wait(timeout=60) == 0
        output = server.stdout.read()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert "restarting" not in output and "Traceback" not in output, output


def test_a_second_ctrl_c_during_the_drain_exits_at_once_in_one_line(tmp_path) -> None:
    """The first Ctrl-C drains; a second one means "now": rolecall exits at once with one line (no
    traceback of every cancelled stream), and the engine process goes with it."""
    port = free_port()
    env = {**os.environ, "ROLECALL_DATA_DIR": str(tmp_path), "ROLECALL_SHUTDOWN_GRACE": "240"}
    env.pop("ROLECALL_API_KEYS", None)
    # No output settings: greedy repetition keeps the stream going through both Ctrl-Cs.
    config = tmp_path / "rolecall.toml"
    config.write_text('[[models]]\nid = "smollm2-135m-instruct"\naliases = ["MiniMax-M2.7"]\nthreads = 1\n')
    server = subprocess.Popen(
        [sys.executable, "-m", "rolecall", "serve", "--port", str(port), "--config", str(config)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url)
        engines = _children(server.pid)
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(server.stdout), daemon=True)  # type: ignore[arg-type]
        reader.start()
        with httpx.stream("POST", url + "/v1/messages", json=endless(4000, stream=True), timeout=60) as response:
            with contextlib.suppress(httpx.TransportError):  # the stream is cut: that is the point
                for chunk in response.iter_bytes():
                    if b"content_block_delta" in chunk:
                        os.killpg(server.pid, signal.SIGINT)
                        assert wait_until(lambda: any("Shutting down" in line for line in lines), timeout=30)
                        os.killpg(server.pid, signal.SIGINT)
                        break
        assert server.wait(timeout=10) == 128 + signal.SIGINT
        reader.join(timeout=10)
        output = "".join(lines)
        assert wait_until(lambda: all(_gone(engine) for engine in engines), timeout=20), "the engine outlived rolecall"
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert "Traceback" not in output and "CancelledError" not in output, output
    tail = output[output.index("Shutting down") :].splitlines()
    assert [line for line in tail if line.startswith("rolecall:")] == [
        "rolecall: second Ctrl-C, stopping now; streams still running were cut off"
    ], output


def _gone(pid: int) -> bool:
    return not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"


SECRET_KEY = "sk-never-in-the-logs-7f3a"
SECRET_PROMPT = "zebra-canary-prompt-text"


def test_sigterm_grace_ends_long_streams_with_an_error_event_and_exits_0(tmp_path) -> None:
    """Past the grace period the stream still running ends with an `error` event; meanwhile no new
    connection is accepted. The output never shows the API key or the request body."""
    port = free_port()
    env = {
        **os.environ,
        "ROLECALL_DATA_DIR": str(tmp_path),
        "ROLECALL_SHUTDOWN_GRACE": "1",
        "ROLECALL_API_KEYS": SECRET_KEY,
    }
    # The bundled model without its output settings: their cap and repetition penalty would end the
    # endless greedy repetition this test needs to outlast the grace period.
    config = tmp_path / "rolecall.toml"
    config.write_text('[[models]]\nid = "smollm2-135m-instruct"\naliases = ["MiniMax-M2.7"]\n')
    server = subprocess.Popen(
        [sys.executable, "-m", "rolecall", "serve", "--port", str(port), "--config", str(config)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    headers = {"x-api-key": SECRET_KEY}
    try:
        _wait_healthy(url)
        assert (
            httpx.post(
                url + "/v1/messages",
                headers={"x-api-key": "wrong-key-also-secret"},
                json={"model": "x", "max_tokens": 1, "messages": []},
            ).status_code
            == 401
        )
        body = endless(4000, marker=f"{SECRET_PROMPT}. ", stream=True)
        refused = None
        with httpx.stream("POST", url + "/v1/messages", json=body, headers=headers, timeout=60) as response:
            raw = b""
            signalled_at = None
            for chunk in response.iter_bytes():
                raw += chunk
                if signalled_at is None and b"content_block_delta" in raw:
                    server.send_signal(signal.SIGTERM)
                    signalled_at = time.monotonic()
                    time.sleep(0.3)
                    try:
                        refused = httpx.get(url + "/health", timeout=2).status_code
                    except httpx.TransportError as exc:
                        refused = type(exc).__name__
            ended_after = time.monotonic() - signalled_at
        events = check_stream(raw)
        assert events[-1]["type"] == "error", [e["type"] for e in events[-3:]]
        assert events[-1]["error"]["type"] == "overloaded_error" and "shutting down" in events[-1]["error"]["message"]
        assert 0.9 < ended_after < 10, f"the stream should end when the 1 s grace period does ({ended_after:.1f} s)"
        assert refused == "ConnectError", f"a new connection during the drain got {refused!r}"
        assert server.wait(timeout=30) == 0
        output = server.stdout.read()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert "auth: 1 API key(s) required" in output
    for secret in (SECRET_KEY, "wrong-key-also-secret", SECRET_PROMPT):
        assert secret not in output, f"{secret!r} appeared in the server's output"


def _wait_healthy(url: str, timeout: float = 60.0) -> None:
    """Until the started server answers `/health` with 200 (it may not be listening yet)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
