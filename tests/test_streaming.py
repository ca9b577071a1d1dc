"""``stream()`` on every backend: the pieces add up to generate()'s answer; closing or Ctrl-C stops it."""

from __future__ import annotations

import io
import json
import signal
import threading
import time
from collections.abc import Generator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from bench.config import BenchError, Config, ModelConfig, OpenAIConfig
from bench.generation.base import Generation
from bench.generation.registry import make_generator

MSGS = [
    {"role": "system", "content": "Responda em português, de forma breve."},
    {"role": "user", "content": "Qual é a capital da Alemanha?"},
]


def drain(it: Generator[str, None, Generation]) -> tuple[list[str], Generation]:
    pieces = []
    while True:
        try:
            pieces.append(next(it))
        except StopIteration as stop:
            return pieces, stop.value


def stream_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "bench-stream"]


def test_transformers_stream_matches_generate(tiny_model_dir: Path) -> None:
    cfg = Config(model=ModelConfig(name=str(tiny_model_dir), backend="transformers", dtype="float32"))
    gen: Any = make_generator(cfg)
    whole = gen.generate(MSGS, 12)
    pieces, result = drain(gen.stream(MSGS, 12))
    assert "".join(pieces).strip() == whole.text == result.text
    assert (result.new_tokens, result.prompt_tokens) == (whole.new_tokens, whole.prompt_tokens)
    assert 0 < result.ttft_ms <= result.total_ms
    assert not stream_threads()


def counting_forward(gen: Any, step_s: float = 0.0) -> list[int]:
    """Count decoding steps; ``step_s`` makes each one last at least that long (the tiny model decodes 150
    tokens in ~0.2 s, which on a loaded machine can end before a Ctrl-C is handled)."""
    calls: list[int] = []
    real = gen.model.forward

    def forward(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        time.sleep(step_s)
        return real(*args, **kwargs)

    gen.model.forward = forward
    gen.eos_ids = []  # never stop at EOS: only max_new_tokens or the stop flag end the generation
    return calls


def test_transformers_stream_stops_when_closed(tiny_model_dir: Path) -> None:
    model = ModelConfig(
        name=str(tiny_model_dir), backend="transformers", dtype="float32", fewshot=0, stop_at_newline=False
    )  # the tiny model's 512 positions hold no worked examples; its random text has line breaks
    cfg = Config(model=model)
    gen: Any = make_generator(cfg)
    calls = counting_forward(gen)
    it = gen.stream(MSGS, 300)
    assert next(it)
    it.close()
    assert not stream_threads()  # the generation thread was stopped and joined
    assert len(calls) < 300


class InterruptingOut(io.StringIO):
    """Sends SIGINT to this process when the first answer piece is written (a user pressing Ctrl-C)."""

    def __init__(self) -> None:
        super().__init__()
        self.fired = False

    def write(self, text: str) -> int:
        n = super().write(text)
        if "> " in self.getvalue() and not text.endswith("> ") and not self.fired:
            self.fired = True
            # raise(3) in this (main) thread: os.kill(getpid()) lets the kernel hand the signal to any thread
            # (torch's workers, the generation thread), and the interrupt then came too late, now and then
            signal.raise_signal(signal.SIGINT)
        return n


@pytest.mark.slow  # timing-dependent (a SIGINT after a sleep)
def test_ctrl_c_in_chat_stops_a_real_generation(tiny_model_dir: Path) -> None:
    from bench.interactive import ask as interactive
    from bench.interactive import chat

    model = ModelConfig(
        name=str(tiny_model_dir), backend="transformers", dtype="float32", fewshot=0, stop_at_newline=False
    )  # the tiny model's 512 positions hold no worked examples; its random text has line breaks
    cfg = Config(model=model)
    gen: Any = make_generator(cfg)
    calls = counting_forward(gen, step_s=0.01)  # 150 steps ≥ 1.5 s: the interrupt lands mid-answer
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C = KeyboardInterrupt
    loaders = interactive.Loaders(make_generators=lambda c, a: {"base": gen})
    out = InterruptingOut()
    c = chat.Chat(interactive.Workbench(cfg, loaders=loaders), "base", out, max_new_tokens=150)
    lines = iter(["Qual é a capital?", "/quit"])
    try:
        assert chat.repl(c, lambda prompt: next(lines)) == 0
    finally:
        signal.signal(signal.SIGINT, previous)
    text = out.getvalue()
    assert out.fired and "[interrupted after" in text and not stream_threads(), text
    assert len(calls) < 150 and len(c.history) == 1, text  # stopped early; the partial answer is kept


def test_llamacpp_stream_matches_generate(tiny_model_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    from test_generators import write_tiny_gguf

    gguf = write_tiny_gguf(tiny_model_dir, tmp_path / "tiny.gguf")
    cfg = Config(model=ModelConfig(name=str(gguf), backend="llamacpp", threads=1, n_ctx=256))
    gen: Any = make_generator(cfg)
    whole = gen.generate(MSGS, 10)
    pieces, result = drain(gen.stream(MSGS, 10))
    assert "".join(pieces).strip() == whole.text == result.text
    assert (result.new_tokens, result.prompt_tokens) == (whole.new_tokens, whole.prompt_tokens)
    it = gen.stream(MSGS, 10)
    next(it, None)
    it.close()  # closing mid-answer leaves the model usable
    assert gen.generate(MSGS, 10).text == whole.text
    with pytest.raises(BenchError, match="n_ctx=256"):
        next(gen.stream([{"role": "user", "content": "palavra " * 400}], 8))
    gen.close()


# --------------------------------------------------------------------------- OpenAI-compatible streaming


def sse(*deltas: str, usage: dict[str, int] | None = None) -> bytes:
    events = [{"choices": [{"delta": {"content": d}}]} for d in deltas]
    if usage:
        events.append({"choices": [], "usage": usage})
    body = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
    return body.encode()


@pytest.fixture()
def sse_server() -> Iterator[tuple[list[Any], list[dict[str, Any]], str]]:
    """Replies with the next scripted (status, body bytes); records the request JSON."""
    script: list[Any] = []
    requests: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            requests.append(json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0)))))
            status, body = script.pop(0) if len(script) > 1 else script[0]
            self.send_response(status)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield script, requests, f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def openai_cfg(url: str) -> Config:
    oc = OpenAIConfig(base_url=url, model="stub", timeout_s=2.0, max_retries=2, backoff_s=0.01)
    return Config(model=ModelConfig(backend="openai"), openai=oc, seed=3)


def test_openai_stream_yields_deltas_and_retries_before_the_first(
    sse_server: tuple[list[Any], list[dict[str, Any]], str],
) -> None:
    script, requests, url = sse_server
    script += [
        (503, b"busy"),
        (200, sse("Ber", "lim", ".", usage={"prompt_tokens": 9, "completion_tokens": 3})),
    ]
    gen: Any = make_generator(openai_cfg(url))
    pieces, result = drain(gen.stream(MSGS, 16))
    assert pieces == ["Ber", "lim", "."]
    assert (result.text, result.prompt_tokens, result.new_tokens) == ("Berlim.", 9, 3)
    assert len(requests) == 2 and requests[-1]["stream"] is True and requests[-1]["max_tokens"] == 16
    assert requests[-1]["temperature"] == 0.0 and requests[-1]["seed"] == 3
    script[:] = [(400, b'{"error": "bad model"}')]
    with pytest.raises(BenchError, match="HTTP 400"):
        drain(gen.stream(MSGS, 16))
    script[:] = [(200, b"data: {not json\n\n")]
    with pytest.raises(BenchError, match="malformed stream event"):
        drain(gen.stream(MSGS, 16))
    gen.close()
