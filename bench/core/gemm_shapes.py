"""The matmuls of one step of a stage, at their own shapes, and what this CPU reaches on them.

:func:`bench.core.limits.matmul_peak` measures large square products; a stage's products are not square: a
training step of one 70-token record multiplies 70 x 896 activations by 896 x 4864 weights. How fast a CPU
runs a product depends on its shape, so besides the square peak each stage is also held against its
*shape peak*: the FLOP-weighted rate of its own products, each timed alone at its shape
(``Σ flops / Σ flops / rate``). A stage near its shape peak is limited by the sizes of its matmuls (more
tokens per step would help), not by the code around them (attention, norms, the optimiser, Python).

Shapes come from the model's ``config.json``: a decoder layer's q/k/v/o projections (grouped-query k/v) and
its gated MLP (gate, up, down), or an encoder layer's q/k/v/o and two-layer MLP; the LM head when the stage
computes logits for every token (training); each product's transpose again for a backward pass (the
activation gradients; frozen weights need no weight gradients, LoRA's rank-r products are left out).
"""

from __future__ import annotations

import time
from typing import Any

Gemm = tuple[int, int, int, int]  # m, k, n, times per step


def layer_gemms(
    conf: dict[str, Any], tokens: int, *, lm_head: bool = False, backward: bool = False
) -> list[Gemm]:
    """The products of one step over ``tokens`` rows (``m``) of the model described by ``conf``."""
    h = int(conf["hidden_size"])
    heads = int(conf["num_attention_heads"])
    head_dim = int(conf.get("head_dim") or h // heads)
    kv = int(conf.get("num_key_value_heads") or heads) * head_dim
    inter = int(conf["intermediate_size"])
    m = max(1, int(tokens))
    layer = [(m, h, heads * head_dim), (m, h, kv), (m, h, kv), (m, heads * head_dim, h)]
    if conf.get("model_type") in ("bert", "xlm-roberta", "roberta"):  # encoder: up, down
        layer += [(m, h, inter), (m, inter, h)]
    else:  # decoder with a gated MLP: gate, up, down
        layer += [(m, h, inter), (m, h, inter), (m, inter, h)]
    n_layer = int(conf["num_hidden_layers"])
    gemms = [(a, b, c, n_layer) for a, b, c in layer]
    if lm_head:
        gemms.append((m, h, int(conf["vocab_size"]), 1))
    if backward:  # the activation gradient of x @ W is grad @ W^T: the transposed product
        gemms += [(a, c, b, n) for a, b, c, n in gemms]
    return gemms


def gemm_gflops(m: int, k: int, n: int, dtype: str = "bfloat16", reps: int = 3) -> float:
    """GFLOP/s of ``torch.matmul`` of an ``m`` x ``k`` by a ``k`` x ``n`` matrix: best of ``reps`` after one
    warm-up call."""
    import torch

    dt = getattr(torch, dtype)
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(m, k, generator=gen).to(dt)
    b = torch.randn(k, n, generator=gen).to(dt)
    torch.matmul(a, b)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * m * k * n / max(best, 1e-12) / 1e9


def shape_peak(
    gemms: list[Gemm], dtype: str = "bfloat16", reps: int = 3, rate: Any = gemm_gflops
) -> dict[str, Any]:
    """The rate a step of ``gemms`` reaches if every product runs as fast as it does alone at its shape."""
    rates: dict[tuple[int, int, int], float] = {}
    flops = seconds = 0.0
    for m, k, n, times in gemms:
        got = rates.get((m, k, n))
        if got is None:
            got = rates[(m, k, n)] = float(rate(m, k, n, dtype, reps))
        f = 2.0 * m * k * n * times
        flops += f
        seconds += f / (got * 1e9)
    return {
        "dtype": dtype,
        "gflops": round(flops / seconds / 1e9, 1) if seconds else None,
        "by_shape": {f"{m}x{k}x{n}": round(r, 1) for (m, k, n), r in rates.items()},
    }
