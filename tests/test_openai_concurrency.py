"""The openai backend's concurrency, replicas and retries against real OpenAI-compatible servers on 127.0.0.1.

The servers here are small but real: ``/v1/chat/completions`` over HTTP, answering with greedy generation of
the tiny random Llama (conftest) through the transformers backend, chat template and newline stop included.
They count requests and the most requests in flight at once. vLLM's own server is exercised by the slow
end-to-end test in tests/test_vllm_backend.py.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from bench.config import Config, ModelConfig, OpenAIConfig
from bench.generation.openai_compat import OpenAIGenerator
from bench.generation.transformers_backend import TransformersGenerator

QUESTIONS = [
    "Qual é a capital de Portugal?",
    "Onde fica Lisboa?",
    "Quantas colinas tem a cidade?",
    "Que rio passa em Lisboa?",
    "Quem escreveu Os Lusíadas?",
    "O que é o Tejo?",
    "Em que ano acabou a monarquia?",
    "Qual é a língua do Brasil?",
    "Como se chama o presidente?",
    "Onde nasceu Camões?",
    "Qual é a moeda de Portugal?",
    "O que é um fado?",
]


def messages(q: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "Responda em português."}, {"role": "user", "content": q}]


class TinyServer:
    """One replica: a threading HTTP server whose handler generates with a shared TransformersGenerator.
    Generation itself is serialised by a lock (one model); requests overlap in the server up to it."""

    def __init__(self, gens: dict[bool, TransformersGenerator], lock: threading.Lock, fail_first: int = 0):
        self.gens, self.gen_lock, self.fail_first = gens, lock, fail_first
        self.requests = self.in_flight = self.max_in_flight = self.failed = 0
        self.count_lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                status, reply = server.handle(body)
                payload = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def handle(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self.count_lock:
            self.requests += 1
            if self.failed < self.fail_first:
                self.failed += 1
                return 503, {"error": "warming up"}
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            time.sleep(0.05)  # request parsing/queueing time of a real server: lets requests overlap
            with self.gen_lock:
                g = self.gens["\n" in (body.get("stop") or [])].generate(body["messages"], body["max_tokens"])
        finally:
            with self.count_lock:
                self.in_flight -= 1
        return 200, {
            "object": "chat.completion",
            "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": g.text},
                         "finish_reason": g.finish_reason}],
            "usage": {"prompt_tokens": g.prompt_tokens, "completion_tokens": g.new_tokens},
        }  # fmt: skip

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def tiny_gens(tiny_model_dir: Path) -> dict[bool, TransformersGenerator]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    cfg = Config(model=ModelConfig(name=str(tiny_model_dir), dtype="float32"))
    return {
        stop: TransformersGenerator(model, tok, replace(cfg, model=replace(cfg.model, stop_at_newline=stop)))
        for stop in (True, False)
    }


@pytest.fixture()
def replicas(tiny_gens: dict[bool, TransformersGenerator]) -> Iterator[list[TinyServer]]:
    lock = threading.Lock()
    servers = [TinyServer(tiny_gens, lock), TinyServer(tiny_gens, lock)]
    yield servers
    for s in servers:
        s.close()


def client(urls: list[str], concurrency: int, retries: int = 2) -> OpenAIGenerator:
    """Without the newline stop: the random model's answers start with line breaks (would all be empty)."""
    oc = OpenAIConfig(base_urls=tuple(urls), model="tiny", concurrency=concurrency, timeout_s=30.0,
                      max_retries=retries, backoff_s=0.01)  # fmt: skip
    return OpenAIGenerator(Config(model=ModelConfig(backend="openai", stop_at_newline=False), openai=oc))


def test_concurrent_answers_equal_one_at_a_time_and_the_in_process_backend(
    replicas: list[TinyServer], tiny_gens: dict[bool, TransformersGenerator]
) -> None:
    batch = [messages(q) for q in QUESTIONS]
    one = client([replicas[0].url], concurrency=1)
    sequential = [one.generate(m, 8) for m in batch]
    assert replicas[0].max_in_flight == 1
    many = client([replicas[0].url], concurrency=8)
    concurrent = many.generate_batch(batch, 8)
    assert [g.error for g in concurrent] == [None] * len(batch)
    assert [g.text for g in concurrent] == [g.text for g in sequential]  # input order, same answers
    assert [g.new_tokens for g in concurrent] == [g.new_tokens for g in sequential]
    assert [g.text for g in concurrent] == [tiny_gens[False].generate(m, 8).text for m in batch]
    # The random model's text is mostly special tokens (dropped); the prompt sizes tell the questions apart.
    assert [g.prompt_tokens for g in concurrent] == [g.prompt_tokens for g in sequential]
    assert len({g.prompt_tokens for g in concurrent}) > 4  # so the input order is really checked
    assert replicas[0].max_in_flight > 1  # the server saw requests overlap
    assert many.info()["concurrency"] == 8


def test_replicas_share_the_requests_round_robin(replicas: list[TinyServer]) -> None:
    gen = client([r.url for r in replicas], concurrency=4)
    gens = gen.generate_batch([messages(q) for q in QUESTIONS], 8)
    assert all(g.error is None for g in gens)
    assert [r.requests for r in replicas] == [len(QUESTIONS) // 2] * 2
    assert gen.info()["base_url"] == [r.url for r in replicas]


def test_transient_503_and_a_dead_replica_are_retried(
    replicas: list[TinyServer], tiny_gens: dict[bool, TransformersGenerator]
) -> None:
    flaky = TinyServer(tiny_gens, threading.Lock(), fail_first=3)
    try:
        dead = "http://127.0.0.1:9/v1"  # nothing listens: connection refused
        gen = client([flaky.url, dead, replicas[0].url], concurrency=6, retries=3)
        gens = gen.generate_batch([messages(q) for q in QUESTIONS], 8)
    finally:
        flaky.close()
    assert [g.error for g in gens] == [None] * len(QUESTIONS)
    assert [g.text for g in gens] == [tiny_gens[False].generate(messages(q), 8).text for q in QUESTIONS]
    assert flaky.failed == 3 and flaky.requests > 3  # it failed three times, then answered
    assert gen.requests > len(QUESTIONS)  # the failures were retried on the next replica


def test_batch_of_nothing_and_a_failure_stays_in_its_slot(replicas: list[TinyServer]) -> None:
    gen = client([replicas[0].url, "http://127.0.0.1:9/v1"], concurrency=1, retries=0)
    assert gen.generate_batch([], 8) == []
    gens = gen.generate_batch([messages(q) for q in QUESTIONS[:3]], 8)  # one worker: alive, dead, alive
    assert gens[0].error is None and gens[2].error is None
    assert gens[0].prompt_tokens != gens[2].prompt_tokens
    assert gens[1].error is not None and "ConnectError" in gens[1].error and gens[1].text == ""
    assert replicas[0].requests == 2
