"""Fine-tuning speed: fp32 vs bf16 (``--set finetune.bf16=false|true``) through the product's own path.

Run: ``.venv/bin/python -m pytest tests/perf/test_perf_train.py -m perf -s``. The default profile's model
(Qwen2.5-Coder-0.5B), LoRA r=16 on every projection, batch 4 × 128 tokens of the question pages, the same
records and seed for both: ``finetune.run_finetune`` runs ``PERF_TRAIN_STEPS`` steps (default 8) in the order
fp32, bf16, bf16, fp32 and the best tokens/s of each precision counts (load drift hits both alike). bf16
means bf16 base weights, fp32 LoRA parameters and ``torch.autocast(cpu, bfloat16)`` (transformers'
``bf16=True``). Figures go to ``results/perf/train-speed.json``; on a shared machine only the ratio means
anything. The goal is 2.5×; the assertion is a regression floor, the JSON says whether the goal was met.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from bench import finetune
from bench.config import load_config
from bench.io import atomic_write_json

pytestmark = pytest.mark.perf
REPO = Path(__file__).resolve().parents[2]
STEPS = int(os.environ.get("PERF_TRAIN_STEPS", "8"))
GOAL = 2.5
FLOOR = 1.8  # below this bf16 has regressed (measured 2.1-2.2x when the benchmark was written)


def _train(bf16: bool) -> dict[str, Any]:
    cfg = load_config(
        None,
        [
            f"finetune.bf16={str(bf16).lower()}",
            "finetune.epochs=0",
            f"finetune.max_steps={STEPS}",
            "finetune.probe=false",
            f"finetune.save_steps={STEPS * 10}",
            "finetune.logging_steps=1",
        ],
    )
    out = finetune.adapter_dir(cfg)
    shutil.rmtree(out, ignore_errors=True)  # measure a fresh training, never a reused adapter
    try:
        finetune.run_finetune(cfg)
        meta = json.loads((out / finetune.METADATA).read_text(encoding="utf-8"))
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return {
        "tokens_per_s": meta["tokens_per_s"],
        "s_per_step": meta["s_per_step"],
        "loss_curve": [p["loss"] for p in meta["loss_curve"]],
        "tokens_seen": meta["tokens_seen"],
        "threads": meta["threads"],
        "precision": meta["precision"],
    }


def test_bf16_training_speed_vs_fp32() -> None:
    runs: dict[str, list[dict[str, Any]]] = {"fp32": [], "bf16": []}
    for name in ("fp32", "bf16", "bf16", "fp32"):
        runs[name].append(_train(name == "bf16"))
    best = {k: max(v, key=lambda r: r["tokens_per_s"]) for k, v in runs.items()}
    ratio = best["bf16"]["tokens_per_s"] / best["fp32"]["tokens_per_s"]
    # same records, same seed: the loss after the same steps must agree within 5 %
    last = {k: sum(r["loss_curve"][-1] for r in v) / len(v) for k, v in runs.items()}
    loss_gap = abs(last["bf16"] - last["fp32"]) / last["fp32"]
    result = {
        "steps": STEPS,
        "batch": "4 x 128 tokens (default profile)",
        "order": "fp32, bf16, bf16, fp32; the best tokens/s of each counts",
        "tokens_per_s": {k: r["tokens_per_s"] for k, r in best.items()},
        "s_per_step": {k: r["s_per_step"] for k, r in best.items()},
        "all_runs_tokens_per_s": {k: [r["tokens_per_s"] for r in v] for k, v in runs.items()},
        "ratio_bf16_over_fp32": round(ratio, 3),
        "goal": GOAL,
        "goal_met": ratio >= GOAL,
        "final_loss": {k: round(v, 4) for k, v in last.items()},
        "final_loss_rel_gap": round(loss_gap, 4),
        "precision": {k: r["precision"] for k, r in best.items()},
        "threads": best["bf16"]["threads"],
        "note": "one process, interleaved; a shared machine moves absolute figures, the ratio much less",
    }
    atomic_write_json(REPO / "results" / "perf" / "train-speed.json", result)
    print(json.dumps(result, indent=1))
    assert loss_gap < 0.05, result
    assert ratio >= FLOOR, result
