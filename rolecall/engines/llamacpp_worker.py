"""Child process of the embedded engine: runs llama.cpp's server (xllamacpp) on a loopback port.

Protocol with the parent: one JSON line of settings on stdin, one JSON line `{"url": ...}` on stdout
once listening. The parent keeps stdin open; end-of-file (the parent closed it, or died) stops us, so
an orphaned engine never outlives rolecall.
"""

from __future__ import annotations

import json
import sys


def main() -> int:
    settings = json.loads(sys.stdin.readline())
    import xllamacpp  # heavy: imported only in the child

    params = xllamacpp.CommonParams()
    params.model.path = settings["model_path"]
    params.n_ctx = settings["n_ctx"]
    params.n_parallel = settings["n_parallel"]
    # One pool shared by all slots: one long request (Claude Code sends ~4k tokens) may use the whole context.
    params.kv_unified = True
    params.use_jinja = True  # the model's own chat template, tool calling included
    params.cache_prompt = True
    params.ctx_shift = False  # stop at the context end instead of silently dropping the prompt's start
    # Prompts are processed 256 tokens per step (llama.cpp's default: 2,048). A step is never interrupted, so
    # this bounds how long a new request waits behind another's prompt once that request is stopped (a batch
    # request gives way to an interactive one: docs/performance.md, "Message batches beside interactive
    # traffic"); a 3,500-token prompt took as long either way.
    params.n_batch = 256
    params.n_ubatch = 256
    # Below a few threads per slot llama.cpp's HTTP server drops connections under concurrent streams.
    params.n_threads_http = max(16, 4 * settings["n_parallel"])
    params.api_keys = [settings["api_key"]]
    params.port = settings.get("port") or 0  # a restart keeps the port the first start was given
    params.endpoint_props = True
    params.endpoint_slots = True
    params.endpoint_metrics = True
    if settings.get("n_threads"):
        params.cpuparams.n_threads = settings["n_threads"]
        params.cpuparams_batch.n_threads = settings["n_threads"]
    server = xllamacpp.Server(params)
    print(json.dumps({"url": server.listening_address}), flush=True)
    sys.stdin.read()  # block until the parent closes our stdin
    del server
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
