"""Interval estimates and paired tests (numpy only, deterministic for a fixed seed).

* means of continuous scores: percentile bootstrap;
* binary rates (EM, containment, truncation, language shares): Wilson score interval, which never collapses to
  ``[0, 0]`` at 0/n;
* paired comparisons: bootstrap interval of the mean difference for every metric, plus the exact McNemar test
  for binary ones (which then decides significance);
* the smallest detectable effect of a paired comparison at the run's n (80 % power, two-sided α = 0.05).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

Z95 = 1.959963984540054  # two-sided 95 %
Z80 = 0.8416212335729143  # one-sided 80 % power


def bootstrap_ci(
    values: Sequence[float], n: int = 10000, seed: int = 0, alpha: float = 0.05
) -> tuple[float, float] | None:
    """Percentile bootstrap confidence interval of the mean; None for an empty sample."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return None
    if n <= 0 or x.size == 1:
        m = float(x.mean())
        return (m, m)
    rng = np.random.default_rng(seed)
    means = np.empty(n, dtype=np.float64)
    step = max(1, 2_000_000 // x.size)  # bounded memory for large samples
    for lo in range(0, n, step):
        idx = rng.integers(0, x.size, size=(min(step, n - lo), x.size))
        means[lo : lo + idx.shape[0]] = x[idx].mean(axis=1)
    lo_q, hi_q = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return (float(lo_q), float(hi_q))


def mean_ci(values: Sequence[float], n: int = 10000, seed: int = 0) -> dict[str, Any]:
    """``{"mean": m, "ci95": [lo, hi], "n": count, "interval": "bootstrap"}``; null mean for no data."""
    ci = bootstrap_ci(values, n=n, seed=seed)
    if ci is None:
        return {"mean": None, "ci95": None, "n": 0, "interval": "bootstrap"}
    mean = float(np.mean(np.asarray(values, dtype=np.float64)))
    return {"mean": mean, "ci95": [ci[0], ci[1]], "n": len(values), "interval": "bootstrap"}


def wilson_ci(successes: float, n: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval for a binomial proportion; None when n = 0."""
    if n <= 0:
        return None
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo = 0.0 if successes <= 0 else max(0.0, centre - half)  # exactly 0 at 0/n (no float residue)
    hi = 1.0 if successes >= n else min(1.0, centre + half)
    return (lo, hi)


def rate_ci(values: Sequence[float]) -> dict[str, Any]:
    """Mean of 0/1 values with a Wilson interval, in the same shape as :func:`mean_ci`."""
    n = len(values)
    ci = wilson_ci(float(sum(values)), n)
    if ci is None:
        return {"mean": None, "ci95": None, "n": 0, "interval": "wilson"}
    return {"mean": float(sum(values)) / n, "ci95": [ci[0], ci[1]], "n": n, "interval": "wilson"}


def mcnemar_exact(a: Sequence[float], b: Sequence[float]) -> dict[str, Any]:
    """Exact (binomial) two-sided McNemar test on paired 0/1 outcomes.

    ``b01`` = items where only ``b`` succeeds, ``b10`` = only ``a``; p = P(X ≤ min | Bin(b01 + b10, ½)) × 2.
    """
    if len(a) != len(b):
        raise ValueError(f"mcnemar_exact needs equal lengths, got {len(a)} and {len(b)}")
    b10 = sum(1 for x, y in zip(a, b, strict=True) if x >= 0.5 > y)
    b01 = sum(1 for x, y in zip(a, b, strict=True) if y >= 0.5 > x)
    m = b10 + b01
    if m == 0:
        return {"b10": 0, "b01": 0, "p_value": 1.0}
    k = min(b10, b01)
    tail = sum(math.comb(m, i) for i in range(k + 1)) / 2**m
    return {"b10": b10, "b01": b01, "p_value": min(1.0, 2 * tail)}


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (same order as given): the i-th smallest × (m − i), made monotone,
    capped at 1. A "best of N" claim is significant at α when its adjusted p < α."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * float(p_values[i])))
        adjusted[i] = running
    return adjusted


def smallest_detectable(diffs: Sequence[float]) -> float | None:
    """Smallest true mean difference a paired test detects with 80 % power at two-sided α = 0.05:
    (z₀.₉₇₅ + z₀.₈) · sd(d) / √n, from the observed spread of the paired differences."""
    d = np.asarray(diffs, dtype=np.float64)
    if d.size < 2:
        return None
    sd = float(d.std(ddof=1))
    if sd == 0.0:  # no spread observed: fall back to the binary worst case (sd 0.5 per item)
        sd = 0.5
    return (Z95 + Z80) * sd / math.sqrt(d.size)


def paired_comparison(
    a: Sequence[float], b: Sequence[float], binary: bool, n: int = 10000, seed: int = 0, alpha: float = 0.05
) -> dict[str, Any]:
    """mean(a − b) over the same items, its bootstrap interval, significance, and the detectable effect.

    Significance: exact McNemar p < alpha for binary metrics, the bootstrap interval excluding 0 otherwise.
    """
    xa = np.asarray(a, dtype=np.float64)
    xb = np.asarray(b, dtype=np.float64)
    if xa.shape != xb.shape:
        raise ValueError(f"paired comparison needs equal lengths, got {xa.size} and {xb.size}")
    if xa.size == 0:
        return {"diff": None, "ci95": None, "significant": False, "n": 0}
    d = xa - xb
    ci = bootstrap_ci(d.tolist(), n=n, seed=seed, alpha=alpha)
    assert ci is not None
    out: dict[str, Any] = {"diff": float(d.mean()), "ci95": [ci[0], ci[1]], "n": int(d.size)}
    if binary:
        test = mcnemar_exact(xa.tolist(), xb.tolist())
        out.update(test=f"mcnemar_exact (b10={test['b10']}, b01={test['b01']})", p_value=test["p_value"])
        out["significant"] = bool(test["p_value"] < alpha)
    else:
        out.update(test="paired_bootstrap", significant=bool(ci[0] > 0 or ci[1] < 0))
    out["mde"] = smallest_detectable(d.tolist())
    return out


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (0-100); None for an empty sample."""
    if len(values) == 0:
        return None
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))
