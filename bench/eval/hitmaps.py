"""A run's exact-match hits per question, and the paired comparison of two variants' hits (McNemar exact):
what the dose sweep (bench/eval/dose_summary.py) and its at-scale verdict (bench/eval/dose_study.py) read
from each run's ``answers.jsonl``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.config import BenchError
from bench.core.stats import mcnemar_exact, wilson_ci
from bench.io import answers_file, iter_jsonl


def hits(run_dir: Path, variant: str) -> dict[str, float]:
    """question id → exact match (0/1) of ``variant`` in ``run_dir``'s answers.jsonl."""
    path = answers_file(run_dir)
    if not path.exists():
        raise BenchError(f"{path} not found (that run has not answered yet)")
    return {
        str(r["question_id"]): float((r.get("metrics") or {}).get("exact_match") or 0.0)
        for r in iter_jsonl(path)
        if r.get("variant") == variant
    }


def compare(mine: dict[str, float], theirs: dict[str, float]) -> dict[str, Any]:
    """Paired McNemar (exact) of two hit maps over the questions both answered."""
    ids = sorted(set(mine) & set(theirs))
    test = mcnemar_exact([mine[i] for i in ids], [theirs[i] for i in ids])
    diff = (sum(mine[i] for i in ids) - sum(theirs[i] for i in ids)) / len(ids) if ids else 0.0
    return {"diff": round(diff, 4), "b10": test["b10"], "b01": test["b01"], "p_value": test["p_value"]}


def em_of(h: dict[str, float]) -> dict[str, Any]:
    """EM of a hit map, its question count and its 95 % Wilson interval."""
    ci = wilson_ci(int(sum(h.values())), len(h)) if h else None
    return {
        "em": round(sum(h.values()) / len(h), 4) if h else None,
        "n": len(h),
        "ci95": list(ci) if ci else None,
    }
