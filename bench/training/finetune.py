"""LoRA / QLoRA fine-tuning with transformers + peft + trl's SFTTrainer, cached by content hash.

``results/finetune/<hash>/`` holds the adapter (safetensors), the tokenizer and ``train_metadata.json``,
written last: its presence means the run finished. The hash covers the model weights, the training data
sources (corpus / question-file sha256s), the format, the curation filters and the hyper-parameters. A
rerun reuses the adapter; a killed run resumes from ``checkpoints/``.

One training is one :class:`FinetuneRecipe`, torchtune-style: :meth:`FinetuneRecipe.setup` (model,
records, the base model's probe, LoRA) → :meth:`~FinetuneRecipe.train` (snapshots saved on the way) →
:meth:`~FinetuneRecipe.save`, each step's output a typed field or return value.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import artifacts, model_registry, recipe_keys
from bench.config import BenchError, Config
from bench.core import dist
from bench.generation import models
from bench.io import KILL_ENV
from bench.model_registry import ModelSpec
from bench.training import batching, injection, probe_cache, repro, sft_qa, sft_recipes, snapshots, train_meta
from bench.training.sft_data import SftData
from bench.training.train_meta import Progress, Trained

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedTokenizerBase, TrainerState, TrainingArguments
    from trl import SFTConfig, SFTTrainer

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


def _per_device_batch(batch_size: int) -> int:
    """finetune.batch_size is the micro-batch over all ranks (torchrun / accelerate launch): each of W ranks
    takes batch_size / W, so the global configuration, the planned steps and the adapter key do not change."""
    world = dist.world_size()
    if batch_size % world:
        raise BenchError(f"finetune.batch_size={batch_size} does not split over {world} ranks (WORLD_SIZE)")
    return batch_size // world


@dataclass(frozen=True)
class Records:
    """The training records and what the trainer reads of them."""

    data: SftData
    train_ds: Dataset
    val_ds: Dataset | None
    steps: int  # optimizer steps planned


def build_records(cfg: Config, tok: PreTrainedTokenizerBase, use_chat: bool) -> Records:
    """``cfg``'s recipe's records (length-grouped when ``finetune.length_window`` asks), as datasets."""
    from datasets import Dataset

    ft = cfg.finetune
    data = sft_recipes.build_training_data(cfg, tok, use_chat=use_chat)
    if ft.length_window > 1 and ft.snapshot_epochs:
        raise BenchError(
            "finetune.snapshot_epochs needs finetune.length_window = 0 (a snapshot cuts a window)"
        )
    if data.scheduled and ft.length_window > 1:  # fewer padding tokens per batch, same schedule
        lengths = batching.record_lengths(tok, [batching.record_text(r) for r in data.train], ft.max_length)
        data.train = batching.length_grouped(data.train, lengths, ft.length_window)
    cols = ["text"] if "text" in data.train[0] else ["prompt", "completion"]
    train_ds = Dataset.from_list([{c: r[c] for c in cols} for r in data.train])
    val = data.val[:MAX_EVAL_RECORDS]
    val_ds = Dataset.from_list([{c: r[c] for c in cols} for r in val]) if val else None
    per_step = ft.batch_size * ft.grad_accum
    if data.scheduled:  # the records are the whole schedule, epochs and max_steps applied: one pass
        steps = planned_steps(1.0, 0, len(train_ds), per_step)
    else:
        steps = planned_steps(ft.epochs, ft.max_steps, len(train_ds), per_step)
    return Records(data, train_ds, val_ds, steps)


def sft_config(cfg: Config, out: Path, steps: int, use_bf16: bool, scheduled: bool) -> SFTConfig:
    """trl's SFTConfig for one training: batch, budget, precision, optimizer, seeds, checkpoints."""
    from trl import SFTConfig

    ft = cfg.finetune
    on_cuda = cfg.device == "cuda"
    return SFTConfig(
        output_dir=str(out / "checkpoints"),
        max_length=ft.max_length,
        per_device_train_batch_size=_per_device_batch(ft.batch_size),
        per_device_eval_batch_size=_per_device_batch(ft.batch_size),
        gradient_accumulation_steps=ft.grad_accum,
        learning_rate=ft.learning_rate,
        max_steps=steps,
        warmup_steps=ft.warmup_steps,
        lr_scheduler_type=ft.lr_scheduler,
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
        train_sampling_strategy="sequential" if scheduled else "random",
        report_to="none",
        dataloader_num_workers=0,
        dataset_num_proc=None,
        packing=False,
        disable_tqdm=False,
        include_num_input_tokens_seen="non_padding",  # kept in the trainer state: survives a resume
    )


class FinetuneRecipe:
    """One adapter's training. :meth:`setup` builds a ready instance (base model and tokenizer, records,
    the base model's probe, LoRA attached); :meth:`train` fits it, saving the snapshots that
    ``finetune.snapshot_epochs`` asks for on the way; :meth:`save` writes the adapter, then its metadata."""

    def __init__(
        self, cfg: Config, out: Path, spec: ModelSpec, model: Any, tok: PreTrainedTokenizerBase,
        records: Records, use_chat: bool, repro_record: dict[str, Any],
    ) -> None:  # fmt: skip
        self.cfg, self.out, self.spec = cfg, out, spec
        self.model = model  # the base model, then (after setup) its peft wrapper: a torch module
        self.tok, self.records, self.use_chat = tok, records, use_chat
        self.use_bf16 = cfg.finetune.bf16 or (cfg.device == "cuda" and cfg.finetune.quantization == "nf4")
        self.repro = repro_record
        self.answer_items: list[dict[str, Any]] = (
            sft_qa.answer_probe_items(cfg, tok, use_chat) if cfg.finetune.probe else []
        )
        self.probe_before: dict[str, Any] = {}
        self.trainable = self.total = 0
        self.resumed = False
        self.t_start = self.t_fit = time.perf_counter()
        self.trainer: SFTTrainer | None = None

    @classmethod
    def setup(cls, cfg: Config, out: Path, repro_record: dict[str, Any]) -> FinetuneRecipe:
        """Load the base model and tokenizer, build the records, probe the base model (cached), attach
        LoRA."""
        t_start = time.perf_counter()
        spec = model_registry.resolve_model(cfg)
        model, tok = models.load_model(cfg, for_training=True, quantization=cfg.finetune.quantization)
        use_chat = bool(spec.chat_template and tok.chat_template is not None)
        recipe = cls(cfg, out, spec, model, tok, build_records(cfg, tok, use_chat), use_chat, repro_record)
        recipe.t_start = t_start
        texts = recipe.records.data.probe_texts
        key = probe_cache.probe_key(cfg, recipe.use_bf16, texts, recipe.answer_items)
        recipe.probe_before = probe_cache.cached_probe(cfg, key, lambda: recipe.probe(texts))
        recipe.attach_lora()
        return recipe

    def attach_lora(self) -> None:
        """Wrap the base model in LoRA adapters (after k-bit preparation for nf4)."""
        import torch
        from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

        ft = self.cfg.finetune
        if ft.quantization == "nf4":
            self.model = prepare_model_for_kbit_training(
                self.model, use_gradient_checkpointing=ft.gradient_checkpointing
            )
        lora = LoraConfig(
            r=ft.lora_r,
            lora_alpha=ft.lora_alpha,
            lora_dropout=ft.lora_dropout,
            target_modules=lora_targets(self.model, ft.target_modules),
            bias="none",
            task_type="CAUSAL_LM",
        )
        torch.manual_seed(self.cfg.seed)  # LoRA's A matrices are drawn from the global generator
        self.model = get_peft_model(self.model, lora)
        self.trainable, self.total = self.model.get_nb_trainable_parameters()

    def probe(self, texts: dict[str, str]) -> dict[str, Any]:
        """Perplexities of the probe ``texts`` (trained / held-out), the evaluated questions' answer NLLs."""
        ft = self.cfg.finetune
        out = injection.probe(self.model, self.tok, texts, ft.max_length, self.use_bf16)
        if ft.probe:
            out["answers"] = injection.answer_probe(self.model, self.tok, self.answer_items, self.use_bf16)
        return out

    def train(self) -> tuple[Progress, float | None]:
        """Fit (resuming from the last checkpoint if there is one): what training reached, the eval loss."""
        import torch
        from trl import SFTTrainer

        cfg, rec = self.cfg, self.records
        trainer_cls = SFTTrainer if cfg.finetune.fused_loss else _plain_loss_trainer(SFTTrainer)
        args = sft_config(cfg, self.out, rec.steps, self.use_bf16, rec.data.scheduled)
        trainer = trainer_cls(
            model=self.model, args=args, train_dataset=rec.train_ds, eval_dataset=rec.val_ds,
            processing_class=self.tok,
        )  # fmt: skip
        self.trainer = trainer
        per_step = cfg.finetune.batch_size * cfg.finetune.grad_accum
        snaps = snapshots.plan(cfg, self.tok, self.use_chat, rec.data.train, per_step)
        if snaps:
            trainer.add_callback(snapshots.callback(snaps, self.snapshot))
        if os.environ.get(KILL_ENV):  # the kill -9 tests' fault injection
            trainer.add_callback(snapshots.crash_callback())
        ckpt_dir = self.out / "checkpoints"
        self.resumed = ckpt_dir.exists() and any(ckpt_dir.glob("checkpoint-*"))
        if self.resumed:
            log.info("resuming from the last checkpoint in %s", ckpt_dir)
        if cfg.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        self.t_fit = time.perf_counter()
        result = trainer.train(resume_from_checkpoint=True if self.resumed else None)
        train_s = time.perf_counter() - self.t_fit
        progress = Progress.of(trainer.state, trainer.args, train_s, float(result.training_loss))
        eval_loss = trainer.evaluate().get("eval_loss") if rec.val_ds is not None else None
        return progress, eval_loss

    def trained(
        self, cfg: Config, out: Path, data: SftData, progress: Progress, eval_loss: float | None = None
    ) -> Trained:
        """The record of the adapter in ``out`` (this training's, or a snapshot's): probed now."""
        return Trained(
            cfg=cfg, out=out, spec=self.spec, data=data, progress=progress, resumed=self.resumed,
            probe_before=self.probe_before, probe_after=self.probe(data.probe_texts),
            answer_items=self.answer_items, eval_loss=eval_loss, trainable=self.trainable,
            total=self.total, repro=self.repro,
        )  # fmt: skip

    def snapshot(self, snap: snapshots.Snapshot, state: TrainerState, args: TrainingArguments) -> None:
        """Save the adapter of a smaller budget when training reaches its last step (rank 0)."""
        losses = [float(h["loss"]) for h in state.log_history if "loss" in h]
        mean_loss = sum(losses) / len(losses) if losses else float("nan")
        progress = Progress.of(state, args, time.perf_counter() - self.t_fit, mean_loss)
        meta = train_meta.metadata(
            self.trained(snap.cfg, snap.out, snap.data, progress), time.perf_counter() - self.t_start
        )
        meta["snapshot_of"] = {
            "key": artifacts.adapter(self.cfg).key,
            "epochs": self.cfg.finetune.epochs,
            "train_loss_note": "mean of the logged losses up to this step",
        }
        snapshots.write(self.model, self.tok, snap, meta)

    def save(self, meta: dict[str, Any]) -> None:
        """The adapter and tokenizer, then its metadata (rank 0; every rank fails when that save failed)."""
        if self.trainer is None:
            raise BenchError(f"{self.out}: save() before train()")
        train_meta.save_adapter(self.trainer, self.model, self.tok, self.out, meta)


def _train(cfg: Config, out: Path) -> Path:
    """Set up, train, probe again, save the adapter and (last) its metadata; seeded, on a fixed thread count,
    with deterministic kernels (:mod:`bench.training.repro`)."""
    with repro.deterministic(cfg) as repro_record:
        recipe = FinetuneRecipe.setup(cfg, out, repro_record)
        progress, eval_loss = recipe.train()
        trained = recipe.trained(cfg, out, recipe.records.data, progress, eval_loss)
    meta = train_meta.metadata(trained, time.perf_counter() - recipe.t_start)
    recipe.save(meta)
    log.info(
        "adapter %s: %d steps, %.1fs/step, %.0f tokens/s, loss %s, peak RSS %d MB",
        out, meta["steps"], meta["s_per_step"], meta["tokens_per_s"] or 0, meta["train_loss"],
        meta["peak_rss_mb"],
    )  # fmt: skip
    return out
