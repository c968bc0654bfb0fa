"""A stand-in for `python -m vllm.entrypoints.openai.api_server`, so the process lifecycle is tested in
milliseconds. FAKE_VLLM_MODE picks the behaviour: serve | crash | hang | stubborn (serves, ignores SIGTERM).
Like vLLM it forks a long-lived child (the "engine core") into its process group."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model")
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--served-model-name")
    parser.add_argument("--max-model-len", type=int, default=321)
    args, _ = parser.parse_known_args()
    mode = os.environ.get("FAKE_VLLM_MODE", "serve")
    name = args.served_model_name or args.model
    print(f"fake vLLM: mode={mode} model={args.model}", flush=True)
    if nodes_file := os.environ.get("FAKE_VLLM_RAY_NODES_FILE"):
        # what vLLM's Ray backend would find at start-up: the cluster at RAY_ADDRESS (set by ray_cluster.sh)
        import ray

        ray.init(address=os.environ["RAY_ADDRESS"], logging_level=logging.ERROR, log_to_driver=False)
        alive = sum(1 for n in ray.nodes() if n.get("Alive"))
        ray.shutdown()
        with open(nodes_file, "w") as f:
            json.dump({"alive_nodes": alive, "argv": sys.argv[1:], "t": time.time()}, f)
    if mode == "crash":
        print("ValueError: config.json is not valid JSON", flush=True)
        sys.exit(3)
    if mode == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # inherited by the child below
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])  # the "engine core"
    if mode == "hang":
        time.sleep(600)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/health":
                body = b""
            elif self.path == "/v1/models":
                body = json.dumps({"data": [{"id": name, "max_model_len": args.max_model_len}]}).encode()
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a: object) -> None:
            pass

    ThreadingHTTPServer((args.host, args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
