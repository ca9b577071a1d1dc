"""The vLLM backend (``model.backend=vllm``): every question of a variant submitted at once to vLLM's engine,
prefix caching on, greedy decoding with the newline stop, the model's own chat template.

The engine is vLLM's OpenAI-compatible server started from ``.venv-vllm``
(:mod:`bench.generation.vllm_engine`) on the transformers folder the other backends use (the GGUF dequantised
once), and spoken to through the concurrent :class:`~bench.generation.openai_compat.OpenAIGenerator`. Engines
start on first use.

Adapters: on a GPU, one engine serves base and fine-tuned answers with vLLM LoRA requests
(``--enable-lora``). On CPU, vLLM's LoRA path is several times slower than the base model, so the adapter is
merged into a copy of the weights once (peft ``merge_and_unload``; cached under
``results/models/merged/<adapter sha>-<base sha>``) and a second engine serves that copy
(``vllm.lora_on_cpu=true`` keeps LoRA requests).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import shutil
from collections.abc import Callable, Iterator
from collections.abc import Generator as Gen
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.config import BenchError, Config
from bench.generation.base import Generation, Generator, versions
from bench.generation.openai_compat import OpenAIGenerator
from bench.generation.vllm_engine import EngineSpec, VllmServer

log = logging.getLogger(__name__)

MERGED_MARKER = "bench_merged.json"  # written last into a merged folder
WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin", "adapter_config.json")


def file_sha256(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(p.name.encode())
        with p.open("rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)
    return h.hexdigest()


def merged_dir(cfg: Config, base_dir: Path, adapter: Path) -> Path:
    """Where the merged copy of ``base_dir`` + ``adapter`` lives: keyed by the adapter files' sha256 and the
    base weights' sha256, so a retrained adapter or other base weights never reuse a stale merge."""
    adapter_files = [adapter / n for n in WEIGHT_FILES if (adapter / n).exists()]
    if not (adapter / "adapter_config.json").exists():
        raise BenchError(f"{adapter}: not a peft adapter (adapter_config.json missing)")
    base_files = sorted(base_dir.glob("*.safetensors")) + sorted(base_dir.glob("*.bin"))
    if not base_files:
        raise BenchError(f"{base_dir}: no weights (*.safetensors) to merge the adapter into")
    key = f"{file_sha256(adapter_files)[:16]}-{file_sha256(base_files)[:16]}"
    return cfg.results_path / "models" / "merged" / key


def merge_adapter(base_dir: Path, adapter: Path, out: Path) -> Path:
    """peft ``merge_and_unload`` of ``adapter`` into float32 ``base_dir`` weights, saved with the tokenizer
    into ``out`` (built in a sibling folder and renamed; the marker is written last). Reused when there."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if (out / MERGED_MARKER).exists():
        return out
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    log.info("merging adapter %s into a copy of %s → %s (once)", adapter, base_dir, out)
    model: Any = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    merged = PeftModel.from_pretrained(model, str(adapter), is_trainable=False).merge_and_unload()
    merged.save_pretrained(tmp, safe_serialization=True)
    AutoTokenizer.from_pretrained(base_dir).save_pretrained(tmp)
    for extra in ("chat_template.jinja", "generation_config.json"):
        if (base_dir / extra).exists() and not (tmp / extra).exists():
            shutil.copy2(base_dir / extra, tmp / extra)
    (tmp / MERGED_MARKER).write_text(json.dumps({"base": str(base_dir), "adapter": str(adapter)}) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


class _Engine:
    """A lazily started server shared by the generators that use it; stopped when the last one closes
    (a kept engine: when its :func:`kept_engines` block ends). ``prepare`` runs once before the process
    starts (the merge of an adapter into the weights the engine serves)."""

    def __init__(
        self, server: VllmServer, kept: bool = False, prepare: Callable[[], Any] | None = None
    ) -> None:
        self.server, self.users, self.kept, self.prepare = server, 0, kept, prepare
        self.launched = self.ready = False

    def launch(self) -> None:
        """Start the engine's process without waiting for it (:meth:`ensure` waits)."""
        if not self.launched:
            if self.prepare is not None:
                self.prepare()
            self.launched = True
            self.server.launch()

    def ensure(self) -> str:
        self.launch()
        if not self.ready:
            self.server.wait_ready()
            self.ready = True
        return self.server.base_url

    def release(self) -> None:
        self.users -= 1
        if self.users <= 0 and not self.kept:
            self.server.stop()


_KEPT: dict[str, _Engine] | None = None


@contextlib.contextmanager
def kept_engines() -> Iterator[None]:
    """Inside the block an engine outlives its generators, and a later generator on the same weights and
    engine settings reuses it instead of starting another (``bench run --longform-pages``: the long-form twin
    answers on the fact run's engines); every engine started inside stops when the block ends."""
    global _KEPT
    outer, _KEPT = _KEPT, {}
    try:
        yield
    finally:
        kept, _KEPT = _KEPT, outer
        for engine in kept.values():
            engine.server.stop()


def _engine(
    cfg: Config, spec: EngineSpec, log_dir: Path, engines: int = 1, prepare: Callable[[], Any] | None = None
) -> _Engine:
    """A new engine, or inside :func:`kept_engines` the kept one started with the same command line."""
    if _KEPT is None:
        return _Engine(VllmServer(cfg, spec, log_dir, engines), prepare=prepare)
    key = repr((spec, engines, cfg.vllm, cfg.model.dtype, cfg.device, cfg.seed))
    if key not in _KEPT:
        _KEPT[key] = _Engine(VllmServer(cfg, spec, log_dir, engines), kept=True, prepare=prepare)
    return _KEPT[key]


class VllmGenerator:
    """Greedy generation on a vLLM engine. ``prefers_whole_list`` asks the harness for a variant's whole
    question list in one ``generate_batch``: vLLM schedules them together (continuous batching)."""

    prefers_whole_list = True
    streams_results = True  # generate_batch(..., on_result=...) reports each answer as it completes

    def __init__(self, cfg: Config, engine: _Engine, served: str, *, adapter: Path | None, mode: str) -> None:
        self.cfg, self.engine, self.served, self.adapter, self.mode = cfg, engine, served, adapter, mode
        engine.users += 1
        self.client: OpenAIGenerator | None = None
        self.closed = False

    def prestart(self) -> None:
        """Start this generator's engine now, without waiting for it: the runner starts every engine a run
        needs at once, so the second one loads (and its adapter merges) while the first answers."""
        self.engine.launch()

    def _client(self) -> OpenAIGenerator:
        if self.client is None:
            url = self.engine.ensure()
            vc = self.cfg.vllm
            oc = replace(self.cfg.openai, base_url=url, base_urls=(), model=self.served, api_key_env="",
                         timeout_s=vc.request_timeout_s, max_retries=1)  # fmt: skip
            client_cfg = replace(self.cfg, openai=oc)
            self.client = OpenAIGenerator(client_cfg, concurrency=vc.max_in_flight, backend="vllm")
        return self.client

    def _checked(self, gens: list[Generation]) -> list[Generation]:
        if any(g.error for g in gens):
            self.engine.server.check_alive()
        return gens

    def generate(self, messages: list[dict[str, str]], max_new_tokens: int) -> Generation:
        return self._checked([self._client().generate(messages, max_new_tokens)])[0]

    def generate_batch(
        self,
        batch: list[list[dict[str, str]]],
        max_new_tokens: int,
        on_result: Callable[[int, Generation], None] | None = None,
    ) -> list[Generation]:
        return self._checked(self._client().generate_batch(batch, max_new_tokens, on_result))

    def stream(self, messages: list[dict[str, str]], max_new_tokens: int) -> Gen[str, None, Generation]:
        try:
            return (yield from self._client().stream(messages, max_new_tokens))
        except BenchError:
            self.engine.server.check_alive()
            raise

    def engine_pid(self) -> int | None:
        """The server's process (its reaper; the engine and its workers are below it): the runner reads
        their peak memory per variant."""
        proc = getattr(self.engine.server, "proc", None)
        return proc.pid if proc is not None and proc.poll() is None else None

    def info(self) -> dict[str, Any]:
        server = self.engine.server
        return {
            "backend": "vllm",
            "model": self.cfg.model.name,
            "weights": str(server.spec.model_dir),
            "quantization": self.cfg.model.dtype,
            "precision": self.cfg.model.dtype,
            "device": self.cfg.device,
            "adapter": str(self.adapter) if self.adapter else None,
            "adapter_mode": self.mode,
            "chat_template": True,
            "decoding": "greedy (temperature 0)"
            + (", stop at newline" if self.cfg.model.stop_at_newline else ""),
            "prefix_caching": True,
            "kv_cache_gib": None if self.cfg.device.startswith("cuda") else server.kv_gib,
            "engine_start_s": None if server.start_s is None else round(server.start_s, 1),
            "batch_latency": "a variant's questions submitted at once; each question's own request time "
            "(queueing and continuous batching included), stored as it completes",
            "versions": {**versions("httpx", "peft"), "vllm": "see .venv-vllm"},
        }

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.client is not None:
                self.client.close()
            self.engine.release()


def _gpus(cfg: Config) -> int:
    if not cfg.device.startswith("cuda"):
        return 1
    import torch

    return max(1, torch.cuda.device_count())


def _lora_rank(adapter: Path) -> int:
    raw = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    return int(raw.get("r", 16))


def vllm_generators(cfg: Config, adapter: Path | None) -> dict[str, Generator]:
    from bench.generation import models

    base_dir = models.ensure_hf_model(cfg)
    log_dir = cfg.results_path / "vllm"
    name = cfg.model.name
    gens: dict[str, Generator] = {}
    if adapter is None:
        engine = _engine(cfg, EngineSpec(base_dir, name, gpus=_gpus(cfg)), log_dir)
        return {"base": VllmGenerator(cfg, engine, name, adapter=None, mode="none")}
    adapter = Path(adapter)
    if cfg.device.startswith("cuda") or cfg.vllm.lora_on_cpu:
        spec = EngineSpec(base_dir, name, {"ft": adapter}, _lora_rank(adapter), _gpus(cfg))
        engine = _engine(cfg, spec, log_dir)
        gens["base"] = VllmGenerator(cfg, engine, name, adapter=None, mode="none")
        gens["ft"] = VllmGenerator(cfg, engine, "ft", adapter=adapter, mode="lora")
        return gens
    merged = merged_dir(cfg, base_dir, adapter)  # merged when its engine starts (prestart: in parallel)
    base_engine = _engine(cfg, EngineSpec(base_dir, name), log_dir, engines=2)
    ft_spec = EngineSpec(merged, f"{name}+ft")
    ft_engine = _engine(
        cfg, ft_spec, log_dir, engines=2, prepare=lambda: merge_adapter(base_dir, adapter, merged)
    )
    gens["base"] = VllmGenerator(cfg, base_engine, name, adapter=None, mode="none")
    gens["ft"] = VllmGenerator(cfg, ft_engine, ft_spec.served_name, adapter=adapter, mode="merged")
    return gens
