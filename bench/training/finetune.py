"""LoRA / QLoRA fine-tuning with transformers + peft + trl's SFTTrainer, cached by content hash.

``results/finetune/<hash>/`` holds the adapter (safetensors), the tokenizer and ``train_metadata.json``,
written last: its presence means the run finished. The hash covers the model weights, the training data
sources (corpus / question-file sha256s), the format, the curation filters and the hyper-parameters. A
rerun reuses the adapter; a killed run resumes from ``checkpoints/``.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from pathlib import Path
from typing import Any

from bench import artifacts
from bench.config import BenchError, Config, config_to_dict
from bench.generation import models
from bench.io import atomic_write_json, peak_rss_mb
from bench.model_registry import resolve_model
from bench.training import injection, sft_data, sft_qa

log = logging.getLogger(__name__)

METADATA = "train_metadata.json"
MAX_EVAL_RECORDS = 8  # one eval loss number; the eval pass costs ~1 step per batch on CPU


def finetune_key(cfg: Config) -> dict[str, Any]:
    """Everything that determines the adapter's weights (recorded in train_metadata.json)."""
    return artifacts.adapter(cfg).inputs


def adapter_dir(cfg: Config) -> Path:
    return artifacts.adapter(cfg).path


def precision_label(cfg: Config) -> str:
    if cfg.finetune.quantization == "nf4":
        return "qlora: 4-bit nf4 base (double quant), bf16 compute, LoRA adapters"
    return f"lora: {models.train_dtype_name(cfg)} base weights (not quantised), LoRA adapters"


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


def _lora_targets(model: Any, wanted: tuple[str, ...]) -> list[str]:
    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    targets = [m for m in wanted if m in present]
    if not targets:
        raise BenchError(f"none of finetune.target_modules {list(wanted)} exist in {type(model).__name__}")
    return targets


def _versions() -> dict[str, str]:
    return {
        d: models._version(d) for d in ("torch", "transformers", "peft", "trl", "accelerate", "bitsandbytes")
    }


def ensure_adapter(cfg: Config) -> Path:
    """The adapter for this config, trained on demand (same as :func:`run_finetune`)."""
    return run_finetune(cfg)


def run_finetune(cfg: Config) -> Path:
    """Train (or reuse) the LoRA adapter for ``cfg``; returns the adapter folder."""
    if cfg.finetune.train_format in ("qa", "raft"):
        sft_qa.check_leakage(sft_qa.training_question_ids(cfg), sft_qa.eval_question_ids(cfg))
    out = adapter_dir(cfg)
    if (out / METADATA).exists():
        log.info("reusing adapter %s", out)
        return out
    if cfg.finetune.quantization not in ("none", "nf4"):
        raise BenchError(f"unknown finetune.quantization {cfg.finetune.quantization!r}; use none or nf4")
    return _train(cfg, out)


def _train(cfg: Config, out: Path) -> Path:
    import torch
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from trl import SFTConfig, SFTTrainer

    ft = cfg.finetune
    t_start = time.perf_counter()
    spec = resolve_model(cfg)
    model, tok = models.load_model(cfg, for_training=True, quantization=ft.quantization)
    data = sft_data.build_sft_data(cfg, tok, use_chat=spec.chat_template and tok.chat_template is not None)
    cols = ["text"] if data.fmt == "text" else ["prompt", "completion"]
    train_ds = Dataset.from_list([{c: r[c] for c in cols} for r in data.train])
    val_ds = (
        Dataset.from_list([{c: r[c] for c in cols} for r in data.val[:MAX_EVAL_RECORDS]])
        if data.val
        else None
    )
    on_cuda = cfg.device == "cuda"
    steps = planned_steps(ft.epochs, ft.max_steps, len(train_ds), ft.batch_size * ft.grad_accum)
    use_bf16 = ft.bf16 or (on_cuda and ft.quantization == "nf4")
    probe_before = injection.probe(model, tok, data.probe_texts, ft.max_length, use_bf16)
    if ft.quantization == "nf4":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=ft.gradient_checkpointing)
    lora = LoraConfig(
        r=ft.lora_r,
        lora_alpha=ft.lora_alpha,
        lora_dropout=ft.lora_dropout,
        target_modules=_lora_targets(model, ft.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, lora)
    trainable, total = model.get_nb_trainable_parameters()
    ckpt_dir = out / "checkpoints"
    args = SFTConfig(
        output_dir=str(ckpt_dir),
        max_length=ft.max_length,
        per_device_train_batch_size=ft.batch_size,
        per_device_eval_batch_size=ft.batch_size,
        gradient_accumulation_steps=ft.grad_accum,
        learning_rate=ft.learning_rate,
        max_steps=steps,
        warmup_steps=ft.warmup_steps,
        lr_scheduler_type="linear",
        logging_steps=ft.logging_steps,
        save_steps=ft.save_steps,
        save_total_limit=2,
        save_strategy="steps",
        eval_strategy="no",
        prediction_loss_only=True,  # evaluate() would otherwise keep every logit (GBs for a 152k vocab)
        bf16=use_bf16,
        fp16=False,
        gradient_checkpointing=ft.gradient_checkpointing,
        use_cpu=not on_cuda,
        optim="paged_adamw_8bit" if on_cuda and ft.quantization == "nf4" else "adamw_torch",
        seed=cfg.seed,
        data_seed=cfg.seed,
        report_to="none",
        dataloader_num_workers=0,
        dataset_num_proc=None,
        packing=False,
        disable_tqdm=False,
        include_num_input_tokens_seen="non_padding",  # kept in the trainer state: survives a resume
    )
    trainer_cls = SFTTrainer if ft.fused_loss else _plain_loss_trainer(SFTTrainer)
    trainer = trainer_cls(
        model=model, args=args, train_dataset=train_ds, eval_dataset=val_ds, processing_class=tok
    )
    resume = ckpt_dir.exists() and any(ckpt_dir.glob("checkpoint-*"))
    if resume:
        log.info("resuming from the last checkpoint in %s", ckpt_dir)
    if on_cuda:
        torch.cuda.reset_peak_memory_stats()
    t_train = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=True if resume else None)
    train_s = time.perf_counter() - t_train
    eval_loss = trainer.evaluate().get("eval_loss") if val_ds is not None else None
    probe_after = injection.probe(model, tok, data.probe_texts, ft.max_length, use_bf16)
    model.save_pretrained(str(out), safe_serialization=True)
    tok.save_pretrained(str(out))
    history = trainer.state.log_history
    losses = [{"step": h["step"], "loss": round(float(h["loss"]), 4)} for h in history if "loss" in h]
    num_tokens = float(trainer.state.num_input_tokens_seen or 0)
    steps = int(result.global_step)
    meta = {
        "adapter_dir": str(out),
        "hash_key": finetune_key(cfg),
        "config": config_to_dict(cfg),
        "model": {"name": spec.name, "gguf": str(spec.gguf_path or ""), "license": spec.license},
        "data": data.stats,
        "trained_question_ids": sorted(data.question_ids),
        "steps": steps,
        "epochs": round(steps / math.ceil(len(train_ds) / (ft.batch_size * ft.grad_accum)), 3),
        "epochs_requested": ft.epochs,
        "scope": ft.scope,
        "pages": data.stats.get("pages"),
        "views": list(ft.views),
        "train_records": len(train_ds),
        "train_tokens": data.stats.get("train_tokens"),
        "probe": {
            "before": probe_before,
            "after": probe_after,
            **injection.summarize(probe_before, probe_after),
        },
        "resumed": resume,
        "train_loss": round(float(result.training_loss), 4),
        "eval_loss": None if eval_loss is None else round(float(eval_loss), 4),
        "loss_curve": losses,
        "wall_time_s": round(time.perf_counter() - t_start, 1),
        "train_time_s": round(train_s, 1),
        "s_per_step": round(train_s / max(steps, 1), 2),
        "tokens_seen": int(num_tokens),
        "tokens_per_s": round(num_tokens / train_s, 1) if train_s > 0 else None,
        "peak_rss_mb": round(peak_rss_mb()),
        "peak_vram_mb": round(torch.cuda.max_memory_allocated() / 2**20) if on_cuda else None,
        "device": cfg.device,
        "threads": torch.get_num_threads(),
        "precision": precision_label(cfg),
        "quantization": ft.quantization,
        "trainable_params": int(trainable),
        "total_params": int(total),
        "versions": _versions(),
    }
    shutil.rmtree(ckpt_dir, ignore_errors=True)  # done: optimizer states are not needed any more
    atomic_write_json(out / METADATA, meta)
    log.info(
        "adapter %s: %d steps, %.1fs/step, %.0f tokens/s, loss %s, peak RSS %d MB",
        out,
        steps,
        meta["s_per_step"],
        meta["tokens_per_s"] or 0,
        meta["train_loss"],
        meta["peak_rss_mb"],
    )
    return out
