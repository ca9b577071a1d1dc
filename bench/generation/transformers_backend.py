"""Generator backends: one ``Generator`` protocol over transformers, llama.cpp (GGUF) and OpenAI-compatible
HTTP.

Every backend decodes greedily and returns a :class:`Generation` with token counts and timings, and an
``info()`` dict naming backend, model, precision/quantisation, adapter and library versions, so runs made with
different backends or precisions are never silently mixed. The llama.cpp backend and the peft → GGUF LoRA
conversion live in :mod:`bench.generation.lora_gguf`, the HTTP backend in
:mod:`bench.generation.openai_compat`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Generator as Gen
from pathlib import Path
from typing import Any

from bench.config import BenchError, Config
from bench.generation.base import (
    Generation,
    Generator,
    check_messages,
    ends_answer,
    finish_reason,
    plain_prompt,
    versions,
)

log = logging.getLogger(__name__)


class _NewlineStop:
    """transformers stopping criterion: stop a sequence once its new text has a line break after content."""

    def __init__(self, tokenizer: Any, prompt_len: int) -> None:
        self.tokenizer, self.prompt_len = tokenizer, prompt_len

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        texts = self.tokenizer.batch_decode(input_ids[:, self.prompt_len :], skip_special_tokens=True)
        return torch.tensor([ends_answer(t) for t in texts], dtype=torch.bool, device=input_ids.device)


class _EventStop:
    """transformers stopping criterion: stop every sequence once ``event`` is set (the stream was closed)."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        return torch.full(
            (input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device
        )


class _FirstTokenTimer:
    """A transformers streamer that records when the first generated token arrives (prefill + 1 step)."""

    def __init__(self) -> None:
        self.calls = 0
        self.first: float | None = None

    def put(self, value: Any) -> None:
        self.calls += 1
        if self.calls == 2 and self.first is None:  # call 1 is the prompt, call 2 the first new token
            self.first = time.perf_counter()

    def end(self) -> None:
        pass


class TransformersGenerator:
    """HF causal LM (optionally a ``PeftModel``). With ``use_adapter=False`` on a PeftModel, generation runs
    inside ``disable_adapter()``: base and fine-tuned generators share one copy of the weights."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        cfg: Config,
        *,
        use_adapter: bool = False,
        adapter: Path | None = None,
        model_name: str = "",
    ) -> None:
        import torch

        self.model, self.tokenizer, self.cfg = model, tokenizer, cfg
        self.use_adapter = use_adapter
        self.adapter = adapter if use_adapter else None
        self.model_name = model_name or cfg.model.name
        self.device = next(model.parameters()).device
        self.model.eval()
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.chat_template = bool(getattr(tokenizer, "chat_template", None))
        eos = {model.generation_config.eos_token_id, tokenizer.eos_token_id}
        flat: set[int] = set()
        for e in eos:
            flat.update(e if isinstance(e, list) else [e] if e is not None else [])
        self.eos_ids = sorted(flat)
        self._torch = torch

    def render(self, messages: list[dict[str, str]]) -> str:
        check_messages(messages)
        if self.chat_template:
            return str(
                self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            )
        return plain_prompt(messages)

    def _adapter_ctx(self) -> Any:
        import contextlib

        if not self.use_adapter and hasattr(self.model, "disable_adapter"):
            return self.model.disable_adapter()
        return contextlib.nullcontext()

    def _run(self, prompts: list[str], max_new_tokens: int) -> tuple[Any, Any, float, float]:
        torch = self._torch
        self.tokenizer.padding_side = "left"
        enc = self.tokenizer(
            prompts, return_tensors="pt", padding=True, add_special_tokens=not self.chat_template
        ).to(self.device)
        timer = _FirstTokenTimer()
        stops: list[Any] = []
        if self.cfg.model.stop_at_newline:
            from transformers import StoppingCriteriaList

            stops = [StoppingCriteriaList([_NewlineStop(self.tokenizer, int(enc["input_ids"].shape[1]))])]
        torch.manual_seed(self.cfg.seed)
        t0 = time.perf_counter()
        with torch.inference_mode(), self._adapter_ctx():
            out = self.model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                eos_token_id=self.eos_ids,
                pad_token_id=self.tokenizer.pad_token_id,
                streamer=timer,
                **({"stopping_criteria": stops[0]} if stops else {}),
            )
        t1 = time.perf_counter()
        first = timer.first if timer.first is not None else t1
        return enc, out, (first - t0) * 1000.0, (t1 - t0) * 1000.0

    def _decode(self, ids: list[int], max_new_tokens: int) -> tuple[str, int, str]:
        """(text, new tokens up to and including EOS, finish reason) of one generated row."""
        n, ended = 0, False
        for tok in ids:
            if tok == self.tokenizer.pad_token_id and tok not in self.eos_ids:
                break  # padding after this row stopped (batched generation)
            n += 1
            if tok in self.eos_ids:
                ended = True
                break
        kept = [t for t in ids[:n] if t not in self.eos_ids and t != self.tokenizer.pad_token_id]
        text = self.tokenizer.decode(kept, skip_special_tokens=True)
        reason = finish_reason(ended, text, n, max_new_tokens, self.cfg.model.stop_at_newline)
        return text.strip(), n, reason

    def generate(self, messages: list[dict[str, str]], max_new_tokens: int) -> Generation:
        enc, out, ttft, total = self._run([self.render(messages)], max_new_tokens)
        n_prompt = int(enc["input_ids"].shape[1])
        text, n_new, reason = self._decode(out[0, n_prompt:].tolist(), max_new_tokens)
        return Generation(text, n_prompt, n_new, ttft, total, finish_reason=reason)

    def _generate_thread(
        self, enc: Any, max_new_tokens: int, streamer: Any, stops: list[Any]
    ) -> tuple[threading.Thread, list[Any], list[BaseException]]:
        """A daemon thread (not started) that runs greedy ``model.generate`` feeding ``streamer``; it appends
        the output ids to ``outputs``, or an exception to ``errors`` (and ends the streamer)."""
        from transformers import StoppingCriteriaList

        torch = self._torch
        outputs: list[Any] = []
        errors: list[BaseException] = []

        def work() -> None:
            try:
                torch.manual_seed(self.cfg.seed)
                with torch.inference_mode(), self._adapter_ctx():
                    outputs.append(
                        self.model.generate(
                            **enc, max_new_tokens=max_new_tokens, do_sample=False, temperature=None,
                            top_p=None, top_k=None, eos_token_id=self.eos_ids,
                            pad_token_id=self.tokenizer.pad_token_id, streamer=streamer,
                            stopping_criteria=StoppingCriteriaList(stops),
                        )
                    )  # fmt: skip
            except BaseException as exc:  # re-raised in the consumer; end() unblocks it
                errors.append(exc)
                streamer.end()

        return threading.Thread(target=work, name="bench-stream", daemon=True), outputs, errors

    def stream(self, messages: list[dict[str, str]], max_new_tokens: int) -> Gen[str, None, Generation]:
        """Greedy decoding that yields text pieces as they are generated (``bench chat``); returns the
        :class:`Generation` as the iterator's return value.

        ``model.generate`` runs in a thread feeding a ``TextIteratorStreamer``. Closing the iterator early,
        or Ctrl-C while it waits for a token, stops the generation at the next decoding step.
        """
        from transformers import TextIteratorStreamer

        enc = self.tokenizer(
            [self.render(messages)], return_tensors="pt", add_special_tokens=not self.chat_template
        ).to(self.device)
        # a deadline per token (queue.Empty): a generation thread that stalls cannot hold the caller forever
        streamer = TextIteratorStreamer(
            self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600.0
        )
        stop = threading.Event()
        stops: list[Any] = [_EventStop(stop)]
        if self.cfg.model.stop_at_newline:
            stops.append(_NewlineStop(self.tokenizer, int(enc["input_ids"].shape[1])))
        thread, outputs, errors = self._generate_thread(enc, max_new_tokens, streamer, stops)
        t0 = time.perf_counter()
        ttft = 0.0
        thread.start()
        try:
            for piece in streamer:
                if piece:
                    ttft = ttft or (time.perf_counter() - t0) * 1000.0
                    yield piece
        finally:
            stop.set()  # checked at every decoding step: the thread ends within one step
            thread.join(timeout=600.0)
        if errors:
            raise errors[0]
        total = (time.perf_counter() - t0) * 1000.0
        n_prompt = int(enc["input_ids"].shape[1])
        text, n_new, reason = (
            self._decode(outputs[0][0, n_prompt:].tolist(), max_new_tokens) if outputs else ("", 0, "stop")
        )
        return Generation(text, n_prompt, n_new, ttft or total, total, finish_reason=reason)

    def generate_batch(self, batch: list[list[dict[str, str]]], max_new_tokens: int) -> list[Generation]:
        """Left-padded batch; each Generation's ttft_ms/total_ms is the batch time / batch size."""
        if not batch:
            return []
        enc, out, ttft, total = self._run([self.render(m) for m in batch], max_new_tokens)
        width = int(enc["input_ids"].shape[1])
        n = len(batch)
        gens = []
        for i in range(n):
            text, n_new, reason = self._decode(out[i, width:].tolist(), max_new_tokens)
            n_prompt = int(enc["attention_mask"][i].sum())
            gens.append(Generation(text, n_prompt, n_new, ttft / n, total / n, finish_reason=reason))
        return gens

    def info(self) -> dict[str, Any]:
        dtype = str(next(self.model.parameters()).dtype).removeprefix("torch.")
        attn = getattr(self.model.config, "_attn_implementation", self.cfg.model.attn_implementation)
        return {
            "backend": "transformers",
            "model": self.model_name,
            "quantization": dtype,
            "precision": dtype,
            "attn_implementation": attn,
            "device": str(self.device),
            "adapter": str(self.adapter) if self.adapter else None,
            "chat_template": self.chat_template,
            "decoding": "greedy" + (", stop at newline" if self.cfg.model.stop_at_newline else ""),
            "batch_latency": "generate_batch reports batch time / batch size per question",
            "versions": versions("torch", "transformers", "peft"),
        }

    def close(self) -> None:
        pass  # shared weights are released when the last generator holding them is dropped


def transformers_generators(cfg: Config, adapter: Path | None) -> dict[str, Generator]:
    from bench.generation import models

    model, tokenizer = models.load_model(cfg)
    gens: dict[str, Generator] = {}
    if adapter is not None:
        from peft import PeftModel

        if not (Path(adapter) / "adapter_config.json").exists():
            raise BenchError(f"{adapter}: not a peft adapter (adapter_config.json missing)")
        model = PeftModel.from_pretrained(model, str(adapter), is_trainable=False)
        gens["ft"] = TransformersGenerator(model, tokenizer, cfg, use_adapter=True, adapter=Path(adapter))
    gens["base"] = TransformersGenerator(model, tokenizer, cfg, use_adapter=False)
    return {k: gens[k] for k in ("base", "ft") if k in gens}
