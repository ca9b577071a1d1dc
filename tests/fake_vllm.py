"""A stand-in for vLLM's OpenAI server (``python -m vllm.entrypoints.openai.api_server ...``) for the process
tests: /health and /v1/chat/completions on the given port, answering with the question's first word.

Environment: FAKE_VLLM_PIDFILE (its pid is written there), FAKE_VLLM_REQUESTS (one line appended per answered
request), FAKE_VLLM_DELAY_S (seconds per answer), FAKE_VLLM_NEVER_READY (never answers /health),
FAKE_VLLM_CHILD (also starts a grandchild process, as vLLM starts its engine core, whose pid goes to
FAKE_VLLM_PIDFILE + ".child")."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--served-model-name", default="model")
    args, _ = p.parse_known_args()
    env = os.environ
    if env.get("FAKE_VLLM_PIDFILE"):
        with open(env["FAKE_VLLM_PIDFILE"], "w", encoding="utf-8") as fh:
            fh.write(str(os.getpid()))
    if env.get("FAKE_VLLM_CHILD"):
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        with open(env["FAKE_VLLM_PIDFILE"] + ".child", "w", encoding="utf-8") as fh:
            fh.write(str(child.pid))
    print("fake vllm: starting on port", args.port, flush=True)
    delay = float(env.get("FAKE_VLLM_DELAY_S", "0"))
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a: object) -> None:
            pass

        def do_GET(self) -> None:
            ready = not env.get("FAKE_VLLM_NEVER_READY")
            self.send_response(200 if ready else 503)
            self.end_headers()

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            time.sleep(delay)
            user = body["messages"][-1]["content"]
            question = user.split("Pergunta:")[-1].split()
            text = question[0] if question else "?"
            if env.get("FAKE_VLLM_REQUESTS"):
                with lock, open(env["FAKE_VLLM_REQUESTS"], "a", encoding="utf-8") as fh:
                    fh.write(text + "\n")
            out = {"choices": [{"message": {"content": text}, "finish_reason": "stop"}],
                   "usage": {"prompt_tokens": 10, "completion_tokens": 1}}  # fmt: skip
            data = json.dumps(out).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
