"""The OpenAI-compatible HTTP backend (vLLM, llama.cpp server, TGI, any ``/v1/chat/completions``)."""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

from bench.config import BenchError, Config
from bench.generators import Generation, _check_messages, versions

log = logging.getLogger(__name__)


class OpenAIGenerator:
    """Any OpenAI-compatible ``/chat/completions`` endpoint over httpx, non-streaming: ttft_ms == total_ms.

    The API key is read from the environment variable named by ``cfg.openai.api_key_env`` (never from
    config files, never logged). 429, 5xx, timeouts and connection errors are retried with exponential
    backoff (``backoff_s * 2**attempt``, at most ``max_retries`` retries); a final failure or a malformed
    response comes back as a Generation with ``error`` set, so the harness records the question as failed.
    """

    def __init__(self, cfg: Config) -> None:
        import httpx

        oc = cfg.openai
        if not oc.model:
            raise BenchError("backend 'openai' needs openai.model (e.g. --set openai.model=NAME)")
        self.cfg, self.url = cfg, oc.base_url.rstrip("/") + "/chat/completions"
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(oc.api_key_env, "")
        if key:
            headers["Authorization"] = f"Bearer {key}"
        else:
            log.info("environment variable %s is not set; calling %s without a key", oc.api_key_env, self.url)
        self.client = httpx.Client(headers=headers, timeout=httpx.Timeout(oc.timeout_s))
        self.requests = 0

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

        _check_messages(messages)
        oc = self.cfg.openai
        payload = {
            "model": oc.model,
            "messages": messages,
            "max_tokens": max_new_tokens,
            "temperature": 0.0,
            "seed": self.cfg.seed,
            **({"stop": ["\n"]} if self.cfg.model.stop_at_newline else {}),
        }
        t0 = time.perf_counter()
        error = "no attempt made"
        for attempt in range(oc.max_retries + 1):
            if attempt:
                time.sleep(oc.backoff_s * 2 ** (attempt - 1))
            self.requests += 1
            try:
                resp = self.client.post(self.url, json=payload)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                error = f"{type(exc).__name__} after {oc.timeout_s:g}s timeout: {exc}"
                continue
            if resp.status_code == 429 or resp.status_code >= 500:
                error = f"HTTP {resp.status_code} from {self.url}"
                continue
            if resp.status_code >= 400:
                error = f"HTTP {resp.status_code} from {self.url}: {resp.text[:200]}"
                break
            try:
                text, n_prompt, n_new, reason = self._parse(resp.content)
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                error = f"malformed response from {self.url}: {type(exc).__name__}: {exc}"
                break
            ms = (time.perf_counter() - t0) * 1000.0
            return Generation(text, n_prompt, n_new, ms, ms, finish_reason=reason)
        ms = (time.perf_counter() - t0) * 1000.0
        log.warning("openai backend: %s", error)
        return Generation("", 0, 0, ms, ms, error=error)

    def info(self) -> dict[str, Any]:
        return {
            "backend": "openai",
            "model": self.cfg.openai.model,
            "base_url": self.cfg.openai.base_url,
            "quantization": "unknown (remote)",
            "adapter": None,
            "decoding": "temperature 0",
            "ttft": "not streamed: ttft_ms equals total_ms",
            "versions": versions("httpx"),
        }

    def close(self) -> None:
        self.client.close()
