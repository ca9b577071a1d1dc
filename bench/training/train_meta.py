"""``train_metadata.json``: what an adapter was trained on, at what cost, with its injection probes.

Written last into the adapter folder (its presence means the run finished); the run's cost table and the FT
variant read it (:func:`bench.eval.costs.finetune_cost`).
"""

from __future__ import annotations

import logging
import math
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import artifacts, recipe_keys
from bench.config import BenchError, Config, config_to_dict
from bench.generation import models
from bench.io import atomic_write_json, crash_point, peak_rss_mb, read_json
from bench.model_registry import ModelSpec
from bench.training import injection, recipes
from bench.training.sft_data import SftData

if TYPE_CHECKING:
    from transformers import TrainerState, TrainingArguments
    from trl import SFTTrainer

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


@dataclass(frozen=True)
class Progress:
    """What training reached, read off the trainer's state at the end or at a snapshot's step."""

    steps: int
    training_loss: float
    log_history: list[dict[str, Any]]
    tokens_seen: int  # non-padding input tokens, summed over the ranks
    train_s: float
    world_size: int
    per_device_batch: int
    grad_accum: int

    @classmethod
    def of(
        cls, state: TrainerState, args: TrainingArguments, train_s: float, training_loss: float
    ) -> Progress:
        return cls(
            steps=int(state.global_step),
            training_loss=training_loss,
            log_history=list(state.log_history),
            tokens_seen=int(state.num_input_tokens_seen or 0),
            train_s=train_s,
            world_size=int(args.world_size),
            per_device_batch=int(args.per_device_train_batch_size),
            grad_accum=int(args.gradient_accumulation_steps),
        )


@dataclass(frozen=True)
class Trained:
    """One adapter as trained (a finished training or a snapshot of it): what train_metadata.json records."""

    cfg: Config
    out: Path
    spec: ModelSpec
    data: SftData
    progress: Progress
    resumed: bool
    probe_before: dict[str, Any]
    probe_after: dict[str, Any]
    answer_items: list[dict[str, Any]]
    eval_loss: float | None
    trainable: int
    total: int
    repro: dict[str, Any]


def _epochs(t: Trained) -> float:
    """Exposures of each page record in the trained prefix of a schedule, else passes over the records."""
    ft, data, steps = t.cfg.finetune, t.data, t.progress.steps
    per_step = ft.batch_size * ft.grad_accum
    if data.scheduled:
        unique_pages = (data.stats.get("unique_records") or {}).get("page", 0)
        return recipes.page_exposures(data.train[: steps * per_step], unique_pages)
    return round(steps / math.ceil(len(data.train) / per_step), 3)


def metadata(t: Trained, wall_s: float) -> dict[str, Any]:
    """train_metadata.json: what was trained, on what, at what cost, and the injection probe."""
    import torch

    cfg, ft, data, p = t.cfg, t.cfg.finetune, t.data, t.progress
    losses = [{"step": h["step"], "loss": round(float(h["loss"]), 4)} for h in p.log_history if "loss" in h]
    global_batch = p.per_device_batch * p.grad_accum * p.world_size
    log.info(
        "trained on world size %d (%d per device x %d accumulation x %d ranks = global batch %d); "
        "%d tokens seen over all ranks",
        p.world_size, p.per_device_batch, p.grad_accum, p.world_size, global_batch, p.tokens_seen,
    )  # fmt: skip
    before, after = t.probe_before, t.probe_after
    return {
        "adapter_dir": str(t.out),
        "hash_key": artifacts.adapter(cfg).inputs,
        "config": config_to_dict(cfg),
        "model": {"name": t.spec.name, "gguf": str(t.spec.gguf_path or ""), "license": t.spec.license},
        "data": data.stats,
        "trained_question_ids": sorted(data.question_ids),
        "steps": p.steps,
        "recipe": recipe_keys.recipe_of(ft),
        "epochs": _epochs(t),
        "epochs_requested": ft.epochs,
        "scope": ft.scope,
        "pages": data.stats.get("pages"),
        "views": list(ft.views),
        "train_records": len(data.train),
        "train_tokens": data.stats.get("train_tokens"),
        "coverage": data.stats.get("coverage"),  # evaluated pages / questions with a training record
        "probe": {
            "before": before,
            "after": after,
            **injection.summarize(before, after),
            **injection.summarize_answers(t.answer_items, before.get("answers"), after.get("answers")),
        },
        "leakage": data.stats.get("leakage"),
        "resumed": t.resumed,
        "train_loss": round(float(p.training_loss), 4),
        "eval_loss": None if t.eval_loss is None else round(float(t.eval_loss), 4),
        "loss_curve": losses,
        "wall_time_s": round(wall_s, 1),
        "train_time_s": round(p.train_s, 1),
        "s_per_step": round(p.train_s / max(p.steps, 1), 2),
        "tokens_seen": p.tokens_seen,  # trainer-gathered: summed over the ranks
        "world_size": p.world_size,
        "per_device_batch_size": p.per_device_batch,
        "global_batch_size": global_batch,
        "tokens_per_s": round(p.tokens_seen / p.train_s, 1) if p.train_s > 0 else None,
        "peak_rss_mb": round(peak_rss_mb()),
        "peak_vram_mb": round(torch.cuda.max_memory_allocated() / 2**20) if cfg.device == "cuda" else None,
        "device": cfg.device,
        "threads": t.repro.get("threads", torch.get_num_threads()),
        "reproducibility": t.repro,
        "precision": precision_label(cfg),
        "quantization": ft.quantization,
        "trainable_params": int(t.trainable),
        "total_params": int(t.total),
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


def save_adapter(trainer: SFTTrainer, model: Any, tok: Any, out: Path, meta: dict[str, Any]) -> None:
    """Rank 0 writes the adapter, metadata last; an all-reduce of a failure flag (not a bare barrier) then
    fails every rank at once when that save failed, instead of leaving the others waiting."""
    import torch

    error = None
    if trainer.is_world_process_zero():
        try:
            model.save_pretrained(str(out), safe_serialization=True)
            tok.save_pretrained(str(out))
            shutil.rmtree(out / "checkpoints", ignore_errors=True)  # done: optimizer states are not needed
            crash_point("finetune.save")
            atomic_write_json(out / "train_metadata.json", meta)
        except BaseException as exc:  # told to the other ranks, then raised
            error = exc
    acc = trainer.accelerator
    failed = acc.reduce(torch.tensor([1.0 if error else 0.0], device=acc.device), reduction="sum")
    if error is not None:
        raise error
    if float(failed.item()) > 0:
        raise BenchError(f"rank {acc.process_index}: rank 0 failed to save the adapter {out} (see its log)")
