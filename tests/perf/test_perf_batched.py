"""Batched generation: ``model.batch_size`` 1, 4 and 8 on the same FaQuAD dev questions, base + RAG.

One ``python -m bench run`` per batch size (default profile, ``--set limit=16 --set run.variants=base,rag``),
back to back, each into its own temporary run directory (so no answer comes from a cache). Records the run's
wall time, Σ generation seconds per variant (per-question latencies of a batch are batch time / batch size,
so the sum is the generation time), how many answers equal batch 1's, EM and question-stripped F1, and the
machine record; writes ``results/perf/batched-generation.json`` (README's ``batched`` block).
Run: ``.venv/bin/python -m pytest tests/perf/test_perf_batched.py -m perf -s`` (about 4 minutes on 2 quiet
cores; ``PERF_BATCHED_N`` changes the 16 questions). Needs the default profile's index (built when absent).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bench.config import load_config
from bench.core.machine import MachineProbe
from bench.io import atomic_write_json

pytestmark = pytest.mark.perf
REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "results" / "perf" / "batched-generation.json"
N = int(os.environ.get("PERF_BATCHED_N", "16"))
SIZES = (1, 4, 8)
VARIANTS = ("base", "rag")


def _bench_run(batch_size: int, out: Path, limit: int = N) -> float:
    sets = [f"limit={limit}", f"run.variants={','.join(VARIANTS)}", f"model.batch_size={batch_size}"]
    cmd = [sys.executable, "-m", "bench", "run", "--profile", "default", "--out", str(out)]
    cmd += [arg for s in sets for arg in ("--set", s)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    assert proc.returncode == 0, f"{cmd} failed ({proc.returncode}): {proc.stderr[-3000:]}"
    return wall


def _summarise(run_dir: Path, wall: float) -> tuple[dict[str, Any], dict[tuple[str, str], str]]:
    rows = [json.loads(line) for line in (run_dir / "answers.jsonl").read_text("utf-8").splitlines() if line]
    rows = [r for r in rows if r["variant"] in VARIANTS]
    assert not [r for r in rows if r.get("error")], "generation errors"
    scores = json.loads((run_dir / "scores.json").read_text("utf-8"))["variants"]
    gen = {v: sum(r["latency"]["generation_ms"] for r in rows if r["variant"] == v) / 1000 for v in VARIANTS}
    summary = {
        "wall_s": round(wall, 2),
        "generation_s": {v: round(s, 2) for v, s in gen.items()},
        "exact_match": {v: scores[v]["exact_match"]["mean"] for v in VARIANTS},
        "f1_qstripped": {v: scores[v]["f1_qstripped"]["mean"] for v in VARIANTS},
    }
    return summary, {(r["variant"], r["question_id"]): str(r["answer"]).strip() for r in rows}


def test_batched_generation(tmp_path: Path) -> None:
    cfg = load_config("default")
    runs: dict[str, dict[str, Any]] = {}
    answers: dict[int, dict[tuple[str, str], str]] = {}
    # One untimed question first: the index, the converted model and the e5 weights are built once here, so
    # no batch size's wall time pays for them (the first size used to).
    _bench_run(1, tmp_path / "warm-up", limit=1)
    with MachineProbe() as probe:
        for size in SIZES:
            wall = _bench_run(size, tmp_path / f"batch{size}")
            runs[str(size)], answers[size] = _summarise(tmp_path / f"batch{size}", wall)
    first = answers[SIZES[0]]
    assert len(first) == N * len(VARIANTS)
    for size in SIZES:
        same = {v: sum(answers[size].get(k) == a for k, a in first.items() if k[0] == v) for v in VARIANTS}
        runs[str(size)]["identical_to_batch1"] = same
    doc = {
        "questions": cfg.questions,
        "split": cfg.split,
        "n_questions": N,
        "variants": list(VARIANTS),
        "model": cfg.model.name,
        "backend": cfg.model.backend,
        "dtype": cfg.model.dtype,
        "max_new_tokens": cfg.model.max_new_tokens,
        "runs": runs,
        "note": "one `bench run` subprocess per batch size after an untimed 1-question warm-up that builds "
        "the index and converted model; wall time includes loading them",
        "machine": probe.record(),
    }
    atomic_write_json(OUT, doc)
    print(json.dumps({k: v for k, v in doc.items() if k != "machine"}, indent=1))
    one, four = runs["1"]["generation_s"], runs["4"]["generation_s"]
    assert four["base"] < one["base"], "batch 4 is not faster than batch 1 closed book"
