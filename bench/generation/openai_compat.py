"""The OpenAI-compatible HTTP backend (vLLM, llama.cpp server, TGI, any ``/v1/chat/completions``).

``generate_batch`` sends up to ``openai.concurrency`` requests at once from a thread pool (one shared httpx
client), spread round-robin over ``openai.base_urls`` (replicas; ``openai.base_url`` when empty); each
retry of a question goes to the next replica after the one that failed. Answers come back in input order
and equal one-at-a-time answers (each request is independent and greedy).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from collections.abc import Generator as Gen
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

from bench.config import BenchError, Config
from bench.errors import BackendError
from bench.generation.base import Generation, check_messages, versions

log = logging.getLogger(__name__)


class OpenAIGenerator:
    """Any OpenAI-compatible ``/chat/completions`` endpoint over httpx, non-streaming: ttft_ms == total_ms.

    The API key is read from the environment variable named by ``cfg.openai.api_key_env`` (never from
    config files, never logged). 429, 5xx, timeouts and connection errors are retried with exponential
    backoff (``backoff_s * 2**attempt``, at most ``max_retries`` retries); a final failure or a malformed
    response comes back as a Generation with ``error`` set, so the harness records the question as failed.
    """

    def __init__(
        self, cfg: Config, *, model: str = "", concurrency: int = 0, backend: str = "openai"
    ) -> None:
        import httpx

        oc = cfg.openai
        self.model = model or oc.model
        if not self.model:
            raise BenchError("backend 'openai' needs openai.model (e.g. --set openai.model=NAME)")
        self.base_urls = [u.rstrip("/") for u in (oc.base_urls or (oc.base_url,))]
        self.urls = [u + "/chat/completions" for u in self.base_urls]
        self.cfg, self.url, self.backend = cfg, self.urls[0], backend
        self.concurrency = max(1, concurrency or oc.concurrency)
        self._next = itertools.count()
        self._lock = threading.Lock()
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(oc.api_key_env, "")
        if key:
            headers["Authorization"] = f"Bearer {key}"
        else:
            log.info("environment variable %s is not set; calling %s without a key", oc.api_key_env, self.url)
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        self.client = httpx.Client(headers=headers, timeout=httpx.Timeout(oc.timeout_s), limits=limits)
        self.requests = 0

    def _start(self) -> int:
        """The replica a new question starts at (round-robin over questions)."""
        with self._lock:
            return next(self._next)

    def _pick(self, start: int, attempt: int) -> str:
        """Attempt ``attempt`` of a question that started at replica ``start``: each retry moves to the next
        replica, so ``max_retries >= len(replicas) - 1`` tries every replica once."""
        with self._lock:
            self.requests += 1
        return self.urls[(start + attempt) % len(self.urls)]

    def _parse(self, body: bytes) -> tuple[str, int, int, str]:
        data = json.loads(body)
        choice = data["choices"][0]
        text = choice["message"]["content"]
        if not isinstance(text, str):
            raise TypeError("content is not a string")
        usage = data.get("usage") or {}
        reason = "length" if choice.get("finish_reason") == "length" else "stop"
        n_prompt, n_new = int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))
        return text.strip(), n_prompt, n_new, reason

    def generate(self, messages: list[dict[str, str]], max_new_tokens: int) -> Generation:
        import httpx

        check_messages(messages)
        oc = self.cfg.openai
        payload = {
            "model": self.model,
            "messages": messages,
            "max_tokens": max_new_tokens,
            "temperature": 0.0,
            "seed": self.cfg.seed,
            **({"stop": ["\n"]} if self.cfg.model.stop_at_newline else {}),
        }
        t0 = time.perf_counter()
        error = "no attempt made"
        start = self._start()
        for attempt in range(oc.max_retries + 1):
            if attempt:
                time.sleep(oc.backoff_s * 2 ** (attempt - 1))
            url = self._pick(start, attempt)
            try:
                resp = self.client.post(url, json=payload)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                error = f"{type(exc).__name__} after {oc.timeout_s:g}s timeout: {exc}"
                continue
            if resp.status_code == 429 or resp.status_code >= 500:
                error = f"HTTP {resp.status_code} from {url}"
                continue
            if resp.status_code >= 400:
                error = f"HTTP {resp.status_code} from {url}: {resp.text[:200]}"
                break
            try:
                text, n_prompt, n_new, reason = self._parse(resp.content)
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                error = f"malformed response from {url}: {type(exc).__name__}: {exc}"
                break
            ms = (time.perf_counter() - t0) * 1000.0
            return Generation(text, n_prompt, n_new, ms, ms, finish_reason=reason)
        ms = (time.perf_counter() - t0) * 1000.0
        log.warning("%s backend: %s", self.backend, error)
        return Generation("", 0, 0, ms, ms, error=error)

    def generate_batch(
        self,
        batch: list[list[dict[str, str]]],
        max_new_tokens: int,
        on_result: Callable[[int, Generation], None] | None = None,
    ) -> list[Generation]:
        """Every request of ``batch`` with up to ``concurrency`` in flight; results in input order.

        ``on_result(i, generation)`` is called in this thread as each request completes (so a harness can
        store answers as they arrive: an interrupted batch keeps what was answered); each Generation then
        keeps its own request time. Without it, like the transformers backend's batches, each Generation's
        ttft_ms/total_ms is the batch wall time / size. An exception (Ctrl-C, a callback's) cancels the
        requests not yet sent and returns at once."""
        if not batch:
            return []
        t0 = time.perf_counter()
        pool = ThreadPoolExecutor(
            min(self.concurrency, len(batch)), thread_name_prefix=f"bench-{self.backend}"
        )
        futures = {pool.submit(self.generate, m, max_new_tokens): i for i, m in enumerate(batch)}
        gens: list[Generation | None] = [None] * len(batch)
        try:
            for fut in as_completed(futures):
                i = futures[fut]
                gens[i] = gen = fut.result()
                if on_result is not None:
                    on_result(i, gen)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        done = [g for g in gens if g is not None]
        if on_result is None:
            per = (time.perf_counter() - t0) * 1000.0 / len(batch)
            for g in done:
                g.ttft_ms = g.total_ms = per
        return done

    def _stream_chunks(self, resp: Any) -> Gen[tuple[str, dict[str, Any]], None, None]:
        """(content delta, event) per server-sent event of a streamed chat completion."""
        for line in resp.iter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                return
            try:
                event = json.loads(data)
                choices = event.get("choices") or [{}]
                delta = (choices[0].get("delta") or {}).get("content") or ""
            except (ValueError, AttributeError, IndexError) as exc:
                raise BackendError(f"malformed stream event from {self.url}: {data[:200]}") from exc
            yield str(delta), event

    def stream(self, messages: list[dict[str, str]], max_new_tokens: int) -> Gen[str, None, Generation]:
        """Streamed chat completion (``"stream": true``, server-sent events): yields content deltas as they
        arrive and returns the :class:`Generation`. 429/5xx/transport errors before the first event are
        retried like :meth:`generate`; anything else raises :class:`BenchError`. Closing the iterator closes
        the HTTP response, which stops the server's generation."""
        import httpx

        check_messages(messages)
        oc = self.cfg.openai
        payload = {
            "model": self.model, "messages": messages, "max_tokens": max_new_tokens, "temperature": 0.0,
            "seed": self.cfg.seed, "stream": True, "stream_options": {"include_usage": True},
            **({"stop": ["\n"]} if self.cfg.model.stop_at_newline else {}),
        }  # fmt: skip
        t0 = time.perf_counter()
        error = "no attempt made"
        start = self._start()
        parts: list[str] = []
        for attempt in range(oc.max_retries + 1):
            if attempt:
                time.sleep(oc.backoff_s * 2 ** (attempt - 1))
            url = self._pick(start, attempt)
            try:
                with self.client.stream("POST", url, json=payload) as resp:
                    if resp.status_code == 429 or resp.status_code >= 500:
                        error = f"HTTP {resp.status_code} from {url}"
                        continue
                    if resp.status_code >= 400:
                        resp.read()
                        raise BackendError(f"HTTP {resp.status_code} from {url}: {resp.text[:200]}")
                    usage: dict[str, Any] = {}
                    ttft, reason = 0.0, "stop"
                    for delta, event in self._stream_chunks(resp):
                        usage = event.get("usage") or usage
                        if ((event.get("choices") or [{}])[0] or {}).get("finish_reason") == "length":
                            reason = "length"
                        if delta:
                            ttft = ttft or (time.perf_counter() - t0) * 1000.0
                            parts.append(delta)
                            yield delta
                    ms = (time.perf_counter() - t0) * 1000.0
                    text = "".join(parts).strip()
                    n_new = int(usage.get("completion_tokens", 0))
                    n_prompt = int(usage.get("prompt_tokens", 0))
                    return Generation(text, n_prompt, n_new, ttft or ms, ms, finish_reason=reason)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                error = f"{type(exc).__name__} after {oc.timeout_s:g}s timeout: {exc}"
                if parts:  # text was already shown: a retry would repeat it
                    raise BackendError(f"{self.backend} backend: stream broke off: {error}") from exc
        raise BackendError(f"{self.backend} backend: {error}")

    def info(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "model": self.model,
            "base_url": self.base_urls[0] if len(self.base_urls) == 1 else list(self.base_urls),
            "quantization": "unknown (remote)",
            "adapter": None,
            "decoding": "temperature 0",
            "concurrency": self.concurrency,
            "ttft": "not streamed: ttft_ms equals total_ms",
            "batch_latency": "generate_batch reports batch wall time / batch size per question",
            "versions": versions("httpx"),
        }

    def close(self) -> None:
        self.client.close()
