"""The judge's endpoint: ``judge.base_url`` when set; when empty, the project's own vLLM engine
(:class:`bench.generation.vllm_engine.VllmServer`, as the vllm backend starts it: ``.venv-vllm``, 127.0.0.1, a
free port, a deadline on ``/health``, stopped with its process group) serving ``judge.model`` (a registry
name, Hugging Face id or local folder; a bundled GGUF is dequantised once, as for generation)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

from bench.config import Config, JudgeConfig

log = logging.getLogger(__name__)


@contextmanager
def judge_endpoint(cfg: Config) -> Iterator[JudgeConfig]:
    """``cfg.judge`` with a ``base_url`` that answers for as long as the context is open."""
    if cfg.judge.base_url:
        yield cfg.judge
        return
    from bench.generation import models
    from bench.generation.vllm_engine import EngineSpec, VllmServer

    engine_cfg = replace(cfg, model=replace(cfg.model, name=cfg.judge.model, backend="vllm"))
    model_dir = models.ensure_hf_model(engine_cfg)
    server = VllmServer(engine_cfg, EngineSpec(model_dir, cfg.judge.model), cfg.results_path / "vllm")
    log.info("judge.base_url is empty: starting vLLM on %s for the judge", cfg.judge.model)
    server.start()
    try:
        yield replace(cfg.judge, base_url=server.base_url)
    finally:
        server.stop()
