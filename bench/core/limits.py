"""This machine's limits, measured: matmul peak (bf16, fp32) and memory bandwidth, and the FLOP and byte
counts that turn a stage's measured throughput into a fraction of them.

The peaks are what ``torch.matmul`` reaches on large square matrices with all cores (best of ``reps``), not
the datasheet's: the fraction a stage reaches is then the fraction of what this software stack can do here.
Bandwidth is a tensor copy (read + write counted) and a sum (read) of a buffer far larger than the last-level
cache.

FLOP counts (N = parameters doing matmuls per token; embeddings are a table look-up and count 0):

* forward: ``2 N`` per token (one multiply-add per weight; Kaplan et al. 2020, *Scaling Laws*, §2.1), plus
  causal attention ``2 · n_layer · ctx · d_attn`` (scores and the weighted sum, ctx/2 keys on average);
* full fine-tuning: ``6 N`` (backward = activation grads ``2 N`` + weight grads ``2 N``; Narayanan et al.
  2021, *Efficient Large-Scale LM Training*, §5.1);
* LoRA: the frozen base weights need no weight gradient, so ``4 N`` per token (forward ``2 N`` + activation
  gradients ``2 N``) plus the adapters' own ``6 N_lora`` and attention's forward + backward (3×).
  The tied LM head (Qwen2.5-0.5B ties it to the embedding) is one of the N: it is a matmul per token.
* decode: every weight is read once per step (bf16: 2 bytes a parameter), shared by the sequences of a batch.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from bench.core.machine import cpu_family as cpu_family  # re-exported: callers read it here
from bench.core.machine import family_model

FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile")


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict[str, bool]:
    """Which of :data:`FLAGS` the CPU reports (all False where there is no /proc/cpuinfo)."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    have = set(line.split(":", 1)[-1].split())
    return {f: f in have for f in FLAGS}


def cpu_slug(model: str) -> str:
    """``AMD EPYC`` → ``amd-epyc``; ``Intel(R) Xeon(R) Processor`` → ``intel-xeon-processor``."""
    cleaned = re.sub(r"\((r|tm|c)\)", "", model.lower())
    return re.sub(r"[^a-z0-9]+", "-", cleaned).strip("-") or "unknown-cpu"


def machine_file(perf_dir: Path, prefix: str) -> Path:
    """``<perf_dir>/<prefix>-<cpu>-f<family>m<model>.json``: one file per microarchitecture, since VMs give
    different ones the same CPU name (``-f26m2``; no suffix where /proc/cpuinfo names no family)."""
    from bench.core.machine import cpu_model

    fm = family_model()
    suffix = f"-f{fm[0]}m{fm[1]}" if fm else ""
    return perf_dir / f"{prefix}-{cpu_slug(cpu_model())}{suffix}.json"


def matmul_peak(dtype: str, n: int = 2048, reps: int = 5, threads: int | None = None) -> dict[str, Any]:
    """GFLOP/s of ``torch.matmul`` on two ``n`` × ``n`` matrices of ``dtype``: the best of ``reps`` timed
    calls after one warm-up (``2 n³`` FLOPs each)."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    dt = getattr(torch, dtype)
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(dt)
    b = torch.randn(n, n, generator=gen).to(dt)
    torch.matmul(a, b)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.matmul(a, b)
        times.append(time.perf_counter() - t0)
    flops = 2.0 * n**3
    return {
        "dtype": dtype,
        "n": n,
        "reps": reps,
        "gflops": round(flops / min(times) / 1e9, 1),
        "gflops_median": round(flops / sorted(times)[len(times) // 2] / 1e9, 1),
        "threads": torch.get_num_threads(),
    }


def best_matmul_peak(
    dtype: str, sizes: tuple[int, ...] = (1024, 2048, 4096), reps: int = 5
) -> dict[str, Any]:
    """:func:`matmul_peak` at each size; the best size's record, with every size's figure."""
    runs = [matmul_peak(dtype, n, reps) for n in sizes]
    best = max(runs, key=lambda r: r["gflops"])
    return {**best, "by_size": {str(r["n"]): r["gflops"] for r in runs}}


def bandwidth(mib: int = 512, reps: int = 5) -> dict[str, Any]:
    """GB/s of a ``mib`` MiB fp32 copy (bytes read + written) and sum (bytes read), best of ``reps``."""
    import torch

    x = torch.ones(mib * 2**20 // 4, dtype=torch.float32)
    y = torch.empty_like(x)
    nbytes = x.numel() * 4
    copy, read = [], []
    y.copy_(x)
    float(x.sum())
    for _ in range(reps):
        t0 = time.perf_counter()
        y.copy_(x)
        copy.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        float(x.sum())
        read.append(time.perf_counter() - t0)
    copy_gbs, read_gbs = 2 * nbytes / min(copy) / 1e9, nbytes / min(read) / 1e9
    return {
        "buffer_mib": mib,
        "copy_gbs": round(copy_gbs, 1),
        "read_gbs": round(read_gbs, 1),
        "gbs": round(max(copy_gbs, read_gbs), 1),
    }


# --------------------------------------------------------------------------- FLOP and byte counts


def attention_flops(n_layer: int, ctx: float, d_attn: int) -> float:
    """Forward FLOPs per token of causal attention over ``ctx`` positions (scores + weighted sum; a causal
    token sees ``ctx / 2`` keys on average)."""
    return 2.0 * n_layer * ctx * d_attn


def forward_flops(n_params: float, n_layer: int = 0, ctx: float = 0.0, d_attn: int = 0) -> float:
    """Forward FLOPs per token: ``2 N`` + attention."""
    return 2.0 * n_params + attention_flops(n_layer, ctx, d_attn)


def lora_train_flops(
    n_params: float, n_lora: float, n_layer: int = 0, ctx: float = 0.0, d_attn: int = 0
) -> float:
    """Training FLOPs per token with frozen base weights: ``4 N + 6 N_lora + 3 × attention``."""
    return 4.0 * n_params + 6.0 * n_lora + 3.0 * attention_flops(n_layer, ctx, d_attn)


def fraction(achieved: float | None, limit: float | None) -> float | None:
    """``achieved / limit`` (None when either is missing or the limit is 0)."""
    if achieved is None or not limit:
        return None
    return round(achieved / limit, 4)


def mfu(tokens_per_s: float | None, flops_per_token: float, peak_gflops: float | None) -> dict[str, Any]:
    """Achieved GFLOP/s and its fraction of ``peak_gflops``."""
    achieved = None if tokens_per_s is None else tokens_per_s * flops_per_token / 1e9
    return {
        "flops_per_token": round(flops_per_token),
        "achieved_gflops": None if achieved is None else round(achieved, 1),
        "fraction": fraction(achieved, peak_gflops),
    }


def decode_bandwidth_use(
    steps_per_s: float | None, weight_bytes: float, bandwidth_gbs: float | None
) -> dict[str, Any]:
    """Decode reads every weight once per step: GB/s read and its fraction of ``bandwidth_gbs``."""
    achieved = None if steps_per_s is None else steps_per_s * weight_bytes / 1e9
    return {
        "weight_bytes": round(weight_bytes),
        "achieved_gbs": None if achieved is None else round(achieved, 1),
        "fraction": fraction(achieved, bandwidth_gbs),
    }


def measure_peaks(
    reps: int = 5, sizes: tuple[int, ...] = (1024, 2048, 4096), mib: int = 512
) -> dict[str, Any]:
    """bf16 and fp32 matmul peaks and memory bandwidth, with the CPU's flags."""
    return {
        "matmul": {dt: best_matmul_peak(dt, sizes, reps) for dt in ("bfloat16", "float32")},
        "bandwidth": bandwidth(mib, reps),
        "flags": cpu_flags(),
    }
