"""Reproducible training: one seed for data order, LoRA init and dropout, deterministic kernels, one thread
count (CPU float sums depend on how the work is split over threads), recorded in ``train_metadata.json``.

Two fresh trainings of one adapter key on one machine and thread count give bitwise-equal adapters
(``tests/test_repro.py``); another thread count or CPU may round differently.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from bench.config import Config


def thread_count(cfg: Config) -> int:
    """``model.threads`` when set, else torch's default (one per physical core)."""
    import torch

    return cfg.model.threads if cfg.model.threads > 0 else torch.get_num_threads()


@contextlib.contextmanager
def deterministic(cfg: Config) -> Iterator[dict[str, Any]]:
    """Seed every generator, fix the thread count and ask torch for deterministic kernels (warn-only: an op
    without one still runs, with a warning); the previous settings come back afterwards. Yields the record."""
    import torch
    from transformers import set_seed

    threads, was_det = thread_count(cfg), torch.are_deterministic_algorithms_enabled()
    was_threads = torch.get_num_threads()
    if cfg.device == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS' deterministic workspace
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    set_seed(cfg.seed)
    record = {"seed": cfg.seed, "threads": threads, "deterministic_algorithms": True}
    try:
        yield record
    finally:
        torch.use_deterministic_algorithms(was_det)
        torch.set_num_threads(was_threads)
