"""The backend registry: ``model.backend`` → a factory of ``{"base": …, "ft": …}`` generators.

Adding a backend is one entry in :data:`BACKENDS`; each backend module implements the contract in
:mod:`bench.generation.base` and never imports this registry (tests/test_layout.py checks it).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bench.config import BenchError, Config
from bench.generation.base import Generator


def _transformers(cfg: Config, adapter: Path | None) -> dict[str, Generator]:
    from bench.generation.transformers_backend import transformers_generators

    return transformers_generators(cfg, adapter)


def _llamacpp(cfg: Config, adapter: Path | None) -> dict[str, Generator]:
    from bench.generation.llamacpp import llamacpp_generators

    return llamacpp_generators(cfg, adapter)


def _openai(cfg: Config, adapter: Path | None) -> dict[str, Generator]:
    if adapter is not None:
        raise BenchError("backend 'openai' cannot apply a local LoRA adapter; use transformers or llamacpp")
    from bench.generation.openai_compat import OpenAIGenerator

    return {"base": OpenAIGenerator(cfg)}


def _vllm(cfg: Config, adapter: Path | None) -> dict[str, Generator]:
    from bench.generation.vllm_backend import vllm_generators

    return vllm_generators(cfg, adapter)


BACKENDS: dict[str, Callable[[Config, Path | None], dict[str, Generator]]] = {
    "transformers": _transformers,
    "llamacpp": _llamacpp,
    "openai": _openai,
    "vllm": _vllm,
}


def make_generators(cfg: Config, adapter: Path | None = None) -> dict[str, Generator]:
    """{"base": ..., "ft": ...} ("ft" only with an adapter); backends share base weights where they can."""
    factory = BACKENDS.get(cfg.model.backend)
    if factory is None:
        raise BenchError(
            f"unknown model.backend {cfg.model.backend!r}; expected one of {', '.join(BACKENDS)}"
        )
    return factory(cfg, adapter)


def make_generator(cfg: Config, adapter: Path | None = None) -> Generator:
    """One generator: the fine-tuned one when ``adapter`` is given, the base model otherwise."""
    gens = make_generators(cfg, adapter)
    return gens["ft"] if adapter is not None else gens["base"]
