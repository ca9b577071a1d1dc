"""The llama.cpp backend: greedy decoding of a GGUF through llama-cpp-python, with the fine-tuned adapter
converted to a GGUF LoRA (:mod:`bench.generation.lora_gguf`). :class:`LlamaCppGenerator` keeps ONE
``llama_cpp.Llama``
for base and fine-tuned variants: the LoRA adapter is loaded once and switched on or off on the context before
each generation (weights are shared and mmapped).
"""

from __future__ import annotations

import ctypes
import logging
import os
import time
from collections.abc import Generator as Gen
from pathlib import Path
from typing import Any

from bench.config import BenchError, Config
from bench.errors import BackendError
from bench.generation.base import (
    Generation,
    Generator,
    check_messages,
    ends_answer,
    finish_reason,
    plain_prompt,
    versions,
)
from bench.generation.lora_gguf import convert_lora, gguf_metadata

log = logging.getLogger(__name__)


class _SharedLlama:
    """One llama_cpp.Llama plus an optional LoRA adapter that can be switched on/off per generation."""

    def __init__(self, cfg: Config, gguf_path: Path, lora: Path | None) -> None:
        try:
            import llama_cpp
        except ImportError:
            raise BenchError(
                "model.backend=llamacpp needs llama-cpp-python, an optional part (a ~6-minute source build): "
                "make install EXTRAS=llamacpp (or pip install -e '.[llamacpp]')"
            ) from None

        self.lib, self.path, self.lora = llama_cpp, gguf_path, lora
        threads = cfg.model.threads or os.cpu_count() or 1
        self.llm = llama_cpp.Llama(
            model_path=str(gguf_path), n_ctx=cfg.model.n_ctx, n_threads=threads, n_threads_batch=threads,
            seed=cfg.seed, verbose=False,
        )  # fmt: skip
        self.threads = threads
        self.meta = gguf_metadata(gguf_path)
        self.vocab = llama_cpp.llama_model_get_vocab(self.llm._model.model)
        self.adapter: Any = None
        self.active: bool | None = None
        self.users = 0
        if lora is not None:
            self.adapter = llama_cpp.llama_adapter_lora_init(self.llm._model.model, str(lora).encode("utf-8"))
            if not self.adapter:
                raise BenchError(f"llama.cpp could not load LoRA adapter {lora} for {gguf_path.name}")

    def use_adapter(self, on: bool) -> None:
        if on and self.adapter is None:
            raise BenchError("no LoRA adapter loaded")
        if self.active == on or (not on and self.adapter is None):
            return  # nothing to switch
        lib = self.lib
        if on:
            arr = (lib.llama_adapter_lora_p_ctypes * 1)(self.adapter)
            rc = lib.llama_set_adapters_lora(self.llm._ctx.ctx, arr, 1, (ctypes.c_float * 1)(1.0))
        else:
            rc = lib.llama_set_adapters_lora(self.llm._ctx.ctx, None, 0, None)
        if rc:
            raise BenchError(f"llama.cpp failed to {'set' if on else 'clear'} the LoRA adapter (code {rc})")
        self.active = on
        self.llm.reset()

    def release(self) -> None:
        """Called by each generator's close(); the model is closed when the last one lets go."""
        self.users -= 1
        if self.users <= 0 and self.llm is not None:
            self.adapter = None  # llama.cpp frees adapters together with their model
            self.llm.close()


class LlamaCppGenerator:
    """Greedy decoding on a GGUF via llama-cpp-python, token by token (exact ttft and token counts).

    The prompt is rendered with the GGUF's own chat template (what ``create_chat_completion`` uses), or as a
    plain completion prompt when it has none. The KV cache is reset before every question, so a question's
    timing never profits from the previous prompt's prefix.
    """

    def __init__(self, shared: _SharedLlama, cfg: Config, *, use_adapter: bool, model_name: str) -> None:
        self.shared, self.cfg, self.use_adapter, self.model_name = shared, cfg, use_adapter, model_name
        shared.users += 1
        self.closed = False
        template = shared.meta["chat_template"]
        self.formatter: Any = None
        if template:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            llm = shared.llm
            eos = llm.detokenize([llm.token_eos()], special=True).decode("utf-8", "replace")
            bos = llm.detokenize([llm.token_bos()], special=True).decode("utf-8", "replace")
            self.formatter = Jinja2ChatFormatter(
                template, eos_token=eos, bos_token=bos, add_generation_prompt=True
            )

    def tokens_for(self, messages: list[dict[str, str]]) -> list[int]:
        check_messages(messages)
        llm = self.shared.llm
        if self.formatter is not None:
            prompt = self.formatter(messages=messages).prompt
            return list(llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True))
        return list(llm.tokenize(plain_prompt(messages).encode("utf-8"), add_bos=True, special=True))

    def generate_tokens(self, tokens: list[int], max_new_tokens: int) -> tuple[list[int], float, float]:
        """Greedy continuation of ``tokens`` up to EOG, the cap, or (``model.stop_at_newline``) a line break
        after answer text; returns (new tokens incl. a final EOG, ttft_ms, total_ms)."""
        sh = self.shared
        sh.use_adapter(self.use_adapter)
        sh.llm.reset()
        out: list[int] = []
        t0 = time.perf_counter()
        ttft = 0.0
        for tok in sh.llm.generate(tokens, top_k=1, top_p=1.0, min_p=0.0, temp=0.0, repeat_penalty=1.0):
            if not out and ttft == 0.0:
                ttft = (time.perf_counter() - t0) * 1000.0
            if sh.lib.llama_vocab_is_eog(sh.vocab, tok):
                out.append(tok)
                break
            out.append(tok)
            if len(out) >= max_new_tokens:
                break
            if self.cfg.model.stop_at_newline and ends_answer(self._text(out)):
                break
        return out, ttft, (time.perf_counter() - t0) * 1000.0

    def generate(self, messages: list[dict[str, str]], max_new_tokens: int) -> Generation:
        tokens = self.tokens_for(messages)
        if len(tokens) + max_new_tokens > self.cfg.model.n_ctx:
            msg = (
                f"prompt of {len(tokens)} tokens + {max_new_tokens} new exceeds n_ctx={self.cfg.model.n_ctx}"
            )
            return Generation("", len(tokens), 0, 0.0, 0.0, error=msg)
        new, ttft, total = self.generate_tokens(tokens, max_new_tokens)
        sh = self.shared
        ended = bool(new) and bool(sh.lib.llama_vocab_is_eog(sh.vocab, new[-1]))
        text = self._text(new)
        reason = finish_reason(ended, text, len(new), max_new_tokens, self.cfg.model.stop_at_newline)
        return Generation(text.strip(), len(tokens), len(new), ttft, total, finish_reason=reason)

    def _text(self, tokens: list[int]) -> str:
        sh = self.shared
        kept = [t for t in tokens if not sh.lib.llama_vocab_is_eog(sh.vocab, t)]
        return str(sh.llm.detokenize(kept).decode("utf-8", "replace"))

    def stream(self, messages: list[dict[str, str]], max_new_tokens: int) -> Gen[str, None, Generation]:
        """Greedy decoding that yields text pieces as tokens arrive (llama.cpp's token generator, the same
        loop as :meth:`generate_tokens`); returns the :class:`Generation`. Closing the iterator stops it."""
        tokens = self.tokens_for(messages)
        n_ctx = self.cfg.model.n_ctx
        if len(tokens) + max_new_tokens > n_ctx:
            raise BackendError(f"prompt of {len(tokens)} tokens + {max_new_tokens} new exceeds n_ctx={n_ctx}")
        sh = self.shared
        sh.use_adapter(self.use_adapter)
        sh.llm.reset()
        kept: list[int] = []
        n_new, ttft, emitted, ended = 0, 0.0, "", False
        t0 = time.perf_counter()
        for tok in sh.llm.generate(tokens, top_k=1, top_p=1.0, min_p=0.0, temp=0.0, repeat_penalty=1.0):
            n_new += 1
            ttft = ttft or (time.perf_counter() - t0) * 1000.0
            if sh.lib.llama_vocab_is_eog(sh.vocab, tok):
                ended = True
                break
            kept.append(tok)
            # detokenize everything so far: a multi-byte character split over tokens appears once complete
            text = sh.llm.detokenize(kept).decode("utf-8", "ignore")
            if text.startswith(emitted) and len(text) > len(emitted):
                piece, emitted = text[len(emitted) :], text
                yield piece
            if n_new >= max_new_tokens or (self.cfg.model.stop_at_newline and ends_answer(text)):
                break
        total = (time.perf_counter() - t0) * 1000.0
        text = self._text(kept)
        reason = finish_reason(ended, text, n_new, max_new_tokens, self.cfg.model.stop_at_newline)
        return Generation(text.strip(), len(tokens), n_new, ttft or total, total, finish_reason=reason)

    def info(self) -> dict[str, Any]:
        sh = self.shared
        return {
            "backend": "llamacpp",
            "model": self.model_name,
            "gguf": str(sh.path),
            "quantization": "+".join(sh.meta["tensor_types"]),
            "adapter": str(sh.lora) if self.use_adapter else None,
            "chat_template": self.formatter is not None,
            "threads": sh.threads,
            "n_ctx": self.cfg.model.n_ctx,
            "decoding": "greedy (top_k=1, temp=0); KV cache reset per question",
            "versions": versions("llama-cpp-python", "gguf"),
        }

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.shared.release()


def llamacpp_generators(cfg: Config, adapter: Path | None = None) -> dict[str, Generator]:
    from bench.generation import models

    gguf_path = models.gguf_file(cfg)
    lora = convert_lora(Path(adapter), gguf_path) if adapter is not None else None
    shared = _SharedLlama(cfg, gguf_path, lora)
    gens: dict[str, Generator] = {
        "base": LlamaCppGenerator(shared, cfg, use_adapter=False, model_name=cfg.model.name)
    }
    if lora is not None:
        gens["ft"] = LlamaCppGenerator(shared, cfg, use_adapter=True, model_name=cfg.model.name)
    return gens
