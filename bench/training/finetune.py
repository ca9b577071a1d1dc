"""LoRA / QLoRA fine-tuning with transformers + peft + trl's SFTTrainer, cached by content hash.

``results/finetune/<hash>/`` holds the adapter (safetensors), the tokenizer and ``train_metadata.json``,
written last: its presence means the run finished. The hash covers the model weights, the training data
sources (corpus / question-file sha256s), the format, the curation filters and the hyper-parameters. A
rerun reuses the adapter; a killed run resumes from ``checkpoints/``.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import artifacts, model_registry, recipe_keys
from bench.config import BenchError, Config
from bench.core import dist
from bench.generation import models
from bench.io import KILL_ENV
from bench.training import batching, injection, probe_cache, repro, sft_qa, sft_recipes, snapshots, train_meta

log = logging.getLogger(__name__)

METADATA = "train_metadata.json"
MAX_EVAL_RECORDS = 8  # one eval loss number; the eval pass costs ~1 step per batch on CPU


def finetune_key(cfg: Config) -> dict[str, Any]:
    """Everything that determines the adapter's weights (recorded in train_metadata.json)."""
    return artifacts.adapter(cfg).inputs


def adapter_dir(cfg: Config) -> Path:
    return artifacts.adapter(cfg).path


def planned_steps(epochs: float, max_steps: int, records: int, per_step: int) -> int:
    """Optimizer steps for ``epochs`` passes over ``records`` (``max_steps`` > 0 caps them); with
    ``epochs`` = 0, ``max_steps`` alone decides."""
    if epochs < 0 or max_steps < 0:
        raise BenchError(f"finetune.epochs={epochs} and finetune.max_steps={max_steps} must be >= 0")
    if epochs > 0:
        steps = math.ceil(epochs * math.ceil(records / per_step))
        return min(steps, max_steps) if max_steps > 0 else steps
    if max_steps > 0:
        return max_steps
    raise BenchError("nothing to train: set finetune.epochs > 0 or finetune.max_steps > 0")


def _plain_loss_trainer(base: Any) -> Any:
    """SFTTrainer with transformers' plain loss (full logits, one cross-entropy). trl's default tiles the LM
    head over the vocabulary and computes entropy and accuracy metrics on every step: it saves memory on long
    sequences, and cost 30-50 % of a CPU step for this project's model at 4 x 128 tokens."""
    from transformers import Trainer

    class PlainLossSFTTrainer(base):  # type: ignore[misc, valid-type]
        def compute_loss(
            self, model: Any, inputs: Any, return_outputs: bool = False, num_items_in_batch: Any = None
        ) -> Any:
            inputs["use_cache"] = False
            return Trainer.compute_loss(self, model, inputs, return_outputs, num_items_in_batch)

    return PlainLossSFTTrainer


def lora_targets(model: Any, wanted: tuple[str, ...]) -> list[str]:
    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    targets = [m for m in wanted if m in present]
    if not targets:
        raise BenchError(f"none of finetune.target_modules {list(wanted)} exist in {type(model).__name__}")
    return targets


def ensure_adapter(cfg: Config) -> Path:
    """The adapter for this config, trained on demand (same as :func:`run_finetune`)."""
    return run_finetune(cfg)


def run_finetune(cfg: Config) -> Path:
    """Train (or reuse) the LoRA adapter for ``cfg``; returns the adapter folder."""
    if recipe_keys.uses_questions(recipe_keys.recipe_of(cfg.finetune)):
        sft_qa.check_leakage(sft_qa.training_question_ids(cfg), sft_qa.eval_question_ids(cfg))
    out = adapter_dir(cfg)
    if (out / METADATA).exists():
        log.info("reusing adapter %s", out)
        return out
    if cfg.finetune.quantization not in ("none", "nf4"):
        raise BenchError(f"unknown finetune.quantization {cfg.finetune.quantization!r}; use none or nf4")
    return _train(cfg, out)


@dataclass
class _Run:
    """What the steps of one training hand each other."""

    cfg: Config
    out: Path
    spec: Any = None
    model: Any = None
    tok: Any = None
    data: Any = None
    train_ds: Any = None
    val_ds: Any = None
    use_bf16: bool = False
    steps: int = 0
    trainable: int = 0
    total: int = 0
    probe_before: dict[str, Any] = field(default_factory=dict)
    probe_after: dict[str, Any] = field(default_factory=dict)
    trainer: Any = None
    result: Any = None
    resume: bool = False
    train_s: float = 0.0
    eval_loss: float | None = None
    answer_items: list[dict[str, Any]] = field(default_factory=list)
    repro: dict[str, Any] = field(default_factory=dict)
    t_start: float = 0.0
    t_fit: float = 0.0
    use_chat: bool = False  # the model has a chat template: records and probe prompts go through it


def _load_and_build_data(run: _Run) -> None:
    """Load the base model and tokenizer, build the training records and the datasets."""
    from datasets import Dataset

    cfg, ft = run.cfg, run.cfg.finetune
    run.spec = model_registry.resolve_model(cfg)
    run.model, run.tok = models.load_model(cfg, for_training=True, quantization=ft.quantization)
    run.use_chat = bool(run.spec.chat_template and run.tok.chat_template is not None)
    run.data = sft_recipes.build_training_data(cfg, run.tok, use_chat=run.use_chat)
    if ft.length_window > 1 and ft.snapshot_epochs:
        raise BenchError(
            "finetune.snapshot_epochs needs finetune.length_window = 0 (a snapshot cuts a window)"
        )
    if run.data.scheduled and ft.length_window > 1:  # fewer padding tokens per batch, same schedule
        texts = [batching.record_text(r) for r in run.data.train]
        lengths = batching.record_lengths(run.tok, texts, ft.max_length)
        run.data.train = batching.length_grouped(run.data.train, lengths, ft.length_window)
    cols = ["text"] if "text" in run.data.train[0] else ["prompt", "completion"]
    run.train_ds = Dataset.from_list([{c: r[c] for c in cols} for r in run.data.train])
    if run.data.val:
        run.val_ds = Dataset.from_list([{c: r[c] for c in cols} for r in run.data.val[:MAX_EVAL_RECORDS]])
    per_step = ft.batch_size * ft.grad_accum
    if run.data.scheduled:  # the records are the whole schedule, epochs and max_steps applied: one pass
        run.steps = planned_steps(1.0, 0, len(run.train_ds), per_step)
    else:
        run.steps = planned_steps(ft.epochs, ft.max_steps, len(run.train_ds), per_step)
    run.use_bf16 = ft.bf16 or (cfg.device == "cuda" and ft.quantization == "nf4")


def _attach_lora(run: _Run) -> None:
    """Wrap the base model in LoRA adapters (after k-bit preparation for nf4)."""
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    ft = run.cfg.finetune
    if ft.quantization == "nf4":
        run.model = prepare_model_for_kbit_training(
            run.model, use_gradient_checkpointing=ft.gradient_checkpointing
        )
    lora = LoraConfig(
        r=ft.lora_r,
        lora_alpha=ft.lora_alpha,
        lora_dropout=ft.lora_dropout,
        target_modules=lora_targets(run.model, ft.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    torch.manual_seed(run.cfg.seed)  # LoRA's A matrices are drawn from the global generator
    run.model = get_peft_model(run.model, lora)
    run.trainable, run.total = run.model.get_nb_trainable_parameters()


def _per_device_batch(batch_size: int) -> int:
    """finetune.batch_size is the micro-batch over all ranks (torchrun / accelerate launch): each of W ranks
    takes batch_size / W, so the global configuration, the planned steps and the adapter key do not change."""
    world = dist.world_size()
    if batch_size % world:
        raise BenchError(f"finetune.batch_size={batch_size} does not split over {world} ranks (WORLD_SIZE)")
    return batch_size // world


def _sft_config(run: _Run) -> Any:
    """trl's SFTConfig for this run: batch, budget, precision, optimizer, seeds, checkpoints."""
    from trl import SFTConfig

    cfg, ft = run.cfg, run.cfg.finetune
    on_cuda = cfg.device == "cuda"
    return SFTConfig(
        output_dir=str(run.out / "checkpoints"),
        max_length=ft.max_length,
        per_device_train_batch_size=_per_device_batch(ft.batch_size),
        per_device_eval_batch_size=_per_device_batch(ft.batch_size),
        gradient_accumulation_steps=ft.grad_accum,
        learning_rate=ft.learning_rate,
        max_steps=run.steps,
        warmup_steps=ft.warmup_steps,
        lr_scheduler_type=ft.lr_scheduler,
        logging_steps=ft.logging_steps,
        save_steps=ft.save_steps,
        save_total_limit=2,
        save_strategy="steps",
        eval_strategy="no",
        prediction_loss_only=True,  # evaluate() would otherwise keep every logit (GBs for a 152k vocab)
        bf16=run.use_bf16,
        fp16=False,
        gradient_checkpointing=ft.gradient_checkpointing,
        use_cpu=not on_cuda,
        optim="paged_adamw_8bit" if on_cuda and ft.quantization == "nf4" else "adamw_torch",
        seed=cfg.seed,
        data_seed=cfg.seed,
        train_sampling_strategy="sequential" if run.data.scheduled else "random",
        report_to="none",
        dataloader_num_workers=0,
        dataset_num_proc=None,
        packing=False,
        disable_tqdm=False,
        include_num_input_tokens_seen="non_padding",  # kept in the trainer state: survives a resume
    )


def _fit(run: _Run) -> None:
    """Train (resuming from the last checkpoint if one is there), then the eval loss."""
    import torch
    from trl import SFTTrainer

    ft = run.cfg.finetune
    trainer_cls = SFTTrainer if ft.fused_loss else _plain_loss_trainer(SFTTrainer)
    run.trainer = trainer_cls(
        model=run.model,
        args=_sft_config(run),
        train_dataset=run.train_ds,
        eval_dataset=run.val_ds,
        processing_class=run.tok,
    )
    snaps = snapshots.plan(run, run.use_chat) if ft.snapshot_epochs else []
    if snaps:
        run.trainer.add_callback(snapshots.callback(run, snaps, _probe))
    if os.environ.get(KILL_ENV):  # the kill -9 tests' fault injection
        run.trainer.add_callback(snapshots.crash_callback())
    ckpt_dir = run.out / "checkpoints"
    run.resume = ckpt_dir.exists() and any(ckpt_dir.glob("checkpoint-*"))
    if run.resume:
        log.info("resuming from the last checkpoint in %s", ckpt_dir)
    if run.cfg.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    run.t_fit = time.perf_counter()
    run.result = run.trainer.train(resume_from_checkpoint=True if run.resume else None)
    run.train_s = time.perf_counter() - run.t_fit
    if run.val_ds is not None:
        run.eval_loss = run.trainer.evaluate().get("eval_loss")


def _answer_items(run: _Run) -> None:
    if run.cfg.finetune.probe and not run.answer_items:
        run.answer_items = sft_qa.answer_probe_items(run.cfg, run.tok, run.use_chat)


def _probe(run: _Run) -> dict[str, Any]:
    """Page perplexities (trained / held-out) and the answer NLLs of the evaluated questions."""
    cfg = run.cfg
    out = injection.probe(run.model, run.tok, run.data.probe_texts, cfg.finetune.max_length, run.use_bf16)
    if cfg.finetune.probe:
        _answer_items(run)
        out["answers"] = injection.answer_probe(run.model, run.tok, run.answer_items, run.use_bf16)
    return out


def _train(cfg: Config, out: Path) -> Path:
    """Load, probe, attach LoRA, fit, probe again, save the adapter and (last) its metadata; seeded, on a
    fixed thread count, with deterministic kernels (:mod:`bench.training.repro`)."""
    t_start = time.perf_counter()
    run = _Run(cfg, out, t_start=t_start)
    with repro.deterministic(cfg) as run.repro:
        _load_and_build_data(run)
        run.probe_before = probe_cache.cached_probe(run, _probe, lambda: _answer_items(run))  # base model
        _attach_lora(run)
        _fit(run)
        run.probe_after = _probe(run)
    meta = train_meta.metadata(run, time.perf_counter() - t_start)
    train_meta.save_adapter(run, out, meta)
    log.info(
        "adapter %s: %d steps, %.1fs/step, %.0f tokens/s, loss %s, peak RSS %d MB",
        out,
        meta["steps"],
        meta["s_per_step"],
        meta["tokens_per_s"] or 0,
        meta["train_loss"],
        meta["peak_rss_mb"],
    )
    return out
