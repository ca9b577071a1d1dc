"""``train_metadata.json``: what an adapter was trained on, at what cost, with its injection probes.

Written last into the adapter folder (its presence means the run finished); the run's cost table and the FT
variant read it (:func:`bench.eval.costs.finetune_cost`).
"""

from __future__ import annotations

import logging
import math
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bench import artifacts, recipe_keys
from bench.config import BenchError, Config, config_to_dict
from bench.generation import models
from bench.io import atomic_write_json, crash_point, peak_rss_mb, read_json
from bench.training import injection, recipes

log = logging.getLogger(__name__)


def precision_label(cfg: Config) -> str:
    if cfg.finetune.quantization == "nf4":
        return "qlora: 4-bit nf4 base (double quant), bf16 compute, LoRA adapters"
    return f"lora: {models.train_dtype_name(cfg)} base weights (not quantised), LoRA adapters"


def versions() -> dict[str, str]:
    return {
        d: models.package_version(d)
        for d in ("torch", "transformers", "peft", "trl", "accelerate", "bitsandbytes")
    }


def metadata(run: Any, wall_s: float) -> dict[str, Any]:
    """train_metadata.json: what was trained, on what, at what cost, and the injection probe."""
    import torch

    cfg, ft, data, state = run.cfg, run.cfg.finetune, run.data, run.trainer.state
    losses = [
        {"step": h["step"], "loss": round(float(h["loss"]), 4)} for h in state.log_history if "loss" in h
    ]
    num_tokens = float(state.num_input_tokens_seen or 0)
    steps, train_s = int(run.result.global_step), run.train_s
    per_step = ft.batch_size * ft.grad_accum
    if data.scheduled:  # exposures of each page record in the trained prefix of the schedule
        unique_pages = (data.stats.get("unique_records") or {}).get("page", 0)
        epochs = recipes.page_exposures(data.train[: steps * per_step], unique_pages)
    else:
        epochs = round(steps / math.ceil(len(run.train_ds) / per_step), 3)
    before, after = run.probe_before, run.probe_after
    args = run.trainer.args
    world = int(args.world_size)
    log.info(
        "trained on world size %d (%d per device x %d accumulation x %d ranks = global batch %d); "
        "%d tokens seen over all ranks",
        world,
        args.per_device_train_batch_size,
        args.gradient_accumulation_steps,
        world,
        args.per_device_train_batch_size * args.gradient_accumulation_steps * world,
        int(num_tokens),
    )
    return {
        "adapter_dir": str(run.out),
        "hash_key": artifacts.adapter(cfg).inputs,
        "config": config_to_dict(cfg),
        "model": {"name": run.spec.name, "gguf": str(run.spec.gguf_path or ""), "license": run.spec.license},
        "data": data.stats,
        "trained_question_ids": sorted(data.question_ids),
        "steps": steps,
        "recipe": recipe_keys.recipe_of(ft),
        "epochs": epochs,
        "epochs_requested": ft.epochs,
        "scope": ft.scope,
        "pages": data.stats.get("pages"),
        "views": list(ft.views),
        "train_records": len(run.train_ds),
        "train_tokens": data.stats.get("train_tokens"),
        "coverage": data.stats.get("coverage"),  # evaluated pages / questions with a training record
        "probe": {
            "before": before,
            "after": after,
            **injection.summarize(before, after),
            **injection.summarize_answers(run.answer_items, before.get("answers"), after.get("answers")),
        },
        "leakage": data.stats.get("leakage"),
        "resumed": run.resume,
        "train_loss": round(float(run.result.training_loss), 4),
        "eval_loss": None if run.eval_loss is None else round(float(run.eval_loss), 4),
        "loss_curve": losses,
        "wall_time_s": round(wall_s, 1),
        "train_time_s": round(train_s, 1),
        "s_per_step": round(train_s / max(steps, 1), 2),
        "tokens_seen": int(num_tokens),  # trainer-gathered: summed over the ranks
        "world_size": world,
        "per_device_batch_size": int(args.per_device_train_batch_size),
        "global_batch_size": int(args.per_device_train_batch_size * args.gradient_accumulation_steps * world),
        "tokens_per_s": round(num_tokens / train_s, 1) if train_s > 0 else None,
        "peak_rss_mb": round(peak_rss_mb()),
        "peak_vram_mb": round(torch.cuda.max_memory_allocated() / 2**20) if cfg.device == "cuda" else None,
        "device": cfg.device,
        "threads": run.repro.get("threads", torch.get_num_threads()),
        "reproducibility": run.repro,
        "precision": precision_label(cfg),
        "quantization": ft.quantization,
        "trainable_params": int(run.trainable),
        "total_params": int(run.total),
        "versions": versions(),
    }


ANSWER_FIELDS = ("answer_nll_before", "answer_nll_after", "answer_nll_questions")


def answer_probe_fields(adapter: Path, question_ids: Iterable[str] | None = None) -> dict[str, Any] | None:
    """The answer-level injection probe of the adapter in ``adapter``, for the ``ft`` variant of scores.json:
    ``answer_nll_before`` / ``_after`` (mean over the evaluated questions) and ``answer_nll_by_stratum`` /
    ``_by_relation`` when the questions carry them. None without metadata or probe, or when ``question_ids``
    (the run's questions) is not the set the probe measured."""
    path = Path(adapter) / "train_metadata.json"
    if not path.exists():
        return None
    probe = (read_json(path) or {}).get("probe") or {}
    if probe.get("answer_nll_before") is None:
        return None
    if question_ids is not None:
        measured = set((probe.get("after") or {}).get("answers") or {})
        if measured != {str(q) for q in question_ids}:
            log.warning("%s: the answer probe measured other questions than this run's; not reported", path)
            return None
    return {k: v for k, v in probe.items() if k in ANSWER_FIELDS or k.startswith("answer_nll_by_")}


def save_adapter(run: Any, out: Path, meta: dict[str, Any]) -> None:
    """Rank 0 writes the adapter, metadata last; an all-reduce of a failure flag (not a bare barrier) then
    fails every rank at once when that save failed, instead of leaving the others waiting."""
    import torch

    error = None
    if run.trainer.is_world_process_zero():
        try:
            run.model.save_pretrained(str(out), safe_serialization=True)
            run.tok.save_pretrained(str(out))
            shutil.rmtree(out / "checkpoints", ignore_errors=True)  # done: optimizer states are not needed
            crash_point("finetune.save")
            atomic_write_json(out / "train_metadata.json", meta)
        except BaseException as exc:  # told to the other ranks, then raised
            error = exc
    acc = run.trainer.accelerator
    failed = acc.reduce(torch.tensor([1.0 if error else 0.0], device=acc.device), reduction="sum")
    if error is not None:
        raise error
    if float(failed.item()) > 0:
        raise BenchError(f"rank {acc.process_index}: rank 0 failed to save the adapter {out} (see its log)")
