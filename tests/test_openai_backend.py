"""OpenAI-compatible backend against a stdlib HTTP stub on 127.0.0.1 that the test scripts per request."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from bench.config import Config, ModelConfig, OpenAIConfig
from bench.generation.openai_compat import OpenAIGenerator
from bench.generation.registry import make_generator

MSGS = [
    {"role": "system", "content": "Responda em português, de forma breve."},
    {"role": "user", "content": "Qual é a capital da Alemanha?"},
]
OK_BODY = {
    "choices": [{"message": {"role": "assistant", "content": " Berlim. "}}],
    "usage": {"prompt_tokens": 21, "completion_tokens": 3},
}


class Stub:
    """Replies with the next scripted action: (status, body) | "sleep" | "garbage"; the last one repeats."""

    def __init__(self) -> None:
        self.script: list[Any] = []
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def next(self) -> Any:
        with self.lock:
            return self.script.pop(0) if len(self.script) > 1 else self.script[0]


@pytest.fixture()
def stub() -> Iterator[tuple[Stub, str]]:
    state = Stub()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            state.requests.append(
                {"path": self.path, "json": json.loads(body), "auth": self.headers.get("Authorization")}
            )
            action = state.next()
            if action == "sleep":
                time.sleep(0.6)
                action = (200, OK_BODY)
            payload = b"{not json" if action == "garbage" else json.dumps(action[1]).encode()
            status = 200 if action == "garbage" else action[0]
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:
                pass  # the client gave up (timeout test)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def cfg_for(url: str, retries: int = 2, timeout: float = 0.3, key_env: str = "BENCH_TEST_KEY") -> Config:
    return Config(
        model=ModelConfig(backend="openai"),
        openai=OpenAIConfig(
            base_url=url,
            model="stub-model",
            api_key_env=key_env,
            timeout_s=timeout,
            max_retries=retries,
            backoff_s=0.01,
        ),
        seed=7,
    )


def test_normal_answer_sends_greedy_request_with_env_key(
    stub: tuple[Stub, str], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    state, url = stub
    state.script = [(200, OK_BODY)]
    monkeypatch.setenv("BENCH_TEST_KEY", "sk-secret-123")
    gen = make_generator(cfg_for(url))
    g = gen.generate(MSGS, max_new_tokens=16)
    assert g.error is None
    assert (g.text, g.prompt_tokens, g.new_tokens) == ("Berlim.", 21, 3)
    assert g.ttft_ms == g.total_ms > 0
    req = state.requests[0]
    assert req["path"] == "/v1/chat/completions"
    assert req["json"]["model"] == "stub-model"
    assert req["json"]["messages"] == MSGS
    assert req["json"]["max_tokens"] == 16 and req["json"]["temperature"] == 0.0 and req["json"]["seed"] == 7
    assert req["auth"] == "Bearer sk-secret-123"
    info = gen.info()
    assert info["backend"] == "openai" and info["model"] == "stub-model"
    assert "sk-secret-123" not in json.dumps(info) + caplog.text
    gen.close()


def test_no_key_sends_no_auth_header(stub: tuple[Stub, str], monkeypatch: pytest.MonkeyPatch) -> None:
    state, url = stub
    state.script = [(200, OK_BODY)]
    monkeypatch.delenv("BENCH_TEST_KEY", raising=False)
    assert OpenAIGenerator(cfg_for(url)).generate(MSGS, 4).text == "Berlim."
    assert state.requests[0]["auth"] is None


def test_429_then_success_is_retried(stub: tuple[Stub, str]) -> None:
    state, url = stub
    state.script = [(429, {"error": "slow down"}), (200, OK_BODY)]
    gen = OpenAIGenerator(cfg_for(url))
    g = gen.generate(MSGS, 4)
    assert g.error is None and g.text == "Berlim."
    assert gen.requests == len(state.requests) == 2


def test_500_always_fails_after_bounded_retries(stub: tuple[Stub, str]) -> None:
    state, url = stub
    state.script = [(500, {"error": "boom"})]
    gen = OpenAIGenerator(cfg_for(url, retries=2))
    g = gen.generate(MSGS, 4)
    assert g.error is not None and "HTTP 500" in g.error
    assert g.text == "" and g.new_tokens == 0
    assert len(state.requests) == 3  # 1 try + 2 retries


def test_timeout_is_retried_then_reported(stub: tuple[Stub, str]) -> None:
    state, url = stub
    state.script = ["sleep"]
    gen = OpenAIGenerator(cfg_for(url, retries=1, timeout=0.2))
    t0 = time.perf_counter()
    g = gen.generate(MSGS, 4)
    assert g.error is not None and "Timeout" in g.error
    assert gen.requests == 2
    assert time.perf_counter() - t0 < 3.0


def test_malformed_json_is_a_clear_error_without_retry(stub: tuple[Stub, str]) -> None:
    state, url = stub
    state.script = ["garbage"]
    gen = OpenAIGenerator(cfg_for(url))
    g = gen.generate(MSGS, 4)
    assert g.error is not None and g.error.startswith("malformed response")
    assert len(state.requests) == 1


def test_missing_choices_is_malformed(stub: tuple[Stub, str]) -> None:
    state, url = stub
    state.script = [(200, {"object": "chat.completion"})]
    g = OpenAIGenerator(cfg_for(url)).generate(MSGS, 4)
    assert g.error is not None and "malformed" in g.error and "KeyError" in g.error


def test_client_error_is_not_retried(stub: tuple[Stub, str]) -> None:
    state, url = stub
    state.script = [(404, {"error": "no such model"})]
    g = OpenAIGenerator(cfg_for(url)).generate(MSGS, 4)
    assert g.error is not None and "HTTP 404" in g.error and "no such model" in g.error
    assert len(state.requests) == 1


def test_connection_refused_is_reported() -> None:
    g = OpenAIGenerator(cfg_for("http://127.0.0.1:9/v1", retries=1, timeout=0.2)).generate(MSGS, 4)
    assert g.error is not None and "ConnectError" in g.error
