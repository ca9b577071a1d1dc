"""Process-wide environment settings, made in one place: the CLI's entry point calls :func:`configure_env`
first, and so do the two modules that import ragas (its telemetry flag is read at import) for library users
who never pass through the CLI; the CLI binds ``device = "cuda:N"`` to its GPU here (:func:`resolve_device`).
Per-stage settings that belong to a launch (CUDA_VISIBLE_DEVICES of a rank: bench.core.dist; cuBLAS'
deterministic workspace: bench.training.repro) stay with the code that needs them."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from bench.errors import BenchError

# Never overrides what the user exported.
DEFAULTS = {
    "RAGAS_DO_NOT_TRACK": "true",  # ragas sends usage telemetry unless told not to; this project never does
    "TOKENIZERS_PARALLELISM": "false",  # HF tokenizers' threads + our worker processes: fork warnings
}


def configure_env() -> None:
    for name, value in DEFAULTS.items():
        os.environ.setdefault(name, value)


def resolve_device(cfg: Any) -> Any:
    """``auto`` → cuda when torch sees a GPU, else cpu; ``cuda:N`` → cuda with CUDA_VISIBLE_DEVICES=N (the
    stages compare ``device == "cuda"``), refused when CUDA_VISIBLE_DEVICES already names other GPUs."""
    changes: dict[str, Any] = {}
    index_changes: dict[str, Any] = {}
    for key, value in (("device", cfg.device), ("index.embed_device", cfg.index.embed_device)):
        new = value
        if value == "auto":
            import torch

            new = "cuda" if torch.cuda.is_available() else "cpu"
        elif value.startswith("cuda:"):
            gpu = value.split(":", 1)[1]
            visible = os.environ.setdefault("CUDA_VISIBLE_DEVICES", gpu)
            if visible != gpu:
                raise BenchError(f"{key}={value!r} but CUDA_VISIBLE_DEVICES={visible!r}; use one of them")
            new = "cuda"
        if new != value:
            (changes if key == "device" else index_changes)[key.rpartition(".")[2]] = new
    if index_changes:
        changes["index"] = dataclasses.replace(cfg.index, **index_changes)
    return dataclasses.replace(cfg, **changes) if changes else cfg
