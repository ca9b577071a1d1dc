"""Learning-curve snapshots: one training run saves the adapters of several budgets on its way.

A scheduled recipe (``cpt``/``mixed``/``pit``) trains its records front to back, and every epoch's order
comes from the seed alone, so the records of ``epochs = e`` are the first records of ``epochs = E > e``.
With a constant learning rate after warmup (``finetune.lr_scheduler = "constant_with_warmup"``) the
optimizer sees the same batches at the same rates, so the adapter after those records *is* the adapter of
``epochs = e``: it is saved under that configuration's own key (``results/finetune/<key(e)>/``), with its
own injection probe and ``train_metadata.json``, and a later run of ``epochs = e`` reuses it. Each
snapshot's record list is rebuilt from its own configuration and checked to be a prefix of the run's,
ending on a batch boundary; a test trains ``epochs = 2`` alone and as a snapshot of ``epochs = 4`` and
finds the weights bitwise equal.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import artifacts
from bench.config import BenchError, Config
from bench.io import atomic_write_json, crash_point
from bench.training import sft_recipes, train_meta

log = logging.getLogger(__name__)

METADATA = "train_metadata.json"


@dataclass
class Snapshot:
    epochs: float
    cfg: Config
    out: Path
    step: int
    data: Any


def budget_config(cfg: Config, epochs: float) -> Config:
    """``cfg`` with ``finetune.epochs = epochs`` (and no snapshots of its own)."""
    ft = dataclasses.replace(cfg.finetune, epochs=epochs, snapshot_epochs=())
    return dataclasses.replace(cfg, finetune=ft)


def plan(run: Any, use_chat: bool) -> list[Snapshot]:
    """The snapshots ``run`` must save: one per ``finetune.snapshot_epochs`` whose adapter is not cached."""
    ft = run.cfg.finetune
    per_step = ft.batch_size * ft.grad_accum
    snaps = []
    for e in sorted(set(ft.snapshot_epochs)):
        cfg_e = budget_config(run.cfg, e)
        out_e = artifacts.adapter(cfg_e).path
        if (out_e / METADATA).exists():
            log.info("snapshot epochs=%s: adapter %s already trained", e, out_e)
            continue
        data_e = sft_recipes.build_training_data(cfg_e, run.tok, use_chat=use_chat)
        n = len(data_e.train)
        if data_e.train != run.data.train[:n]:
            raise BenchError(f"finetune.snapshot_epochs {e}: its records are not a prefix of the run's")
        if n % per_step:
            raise BenchError(
                f"finetune.snapshot_epochs {e}: its {n} records end inside a batch of {per_step}; the"
                " adapter would differ from a run of that budget. Pick budgets whose records fill whole"
                " batches (`bench finetune --dry-run` counts them) or another finetune.batch_size"
            )
        snaps.append(Snapshot(e, cfg_e, out_e, n // per_step, data_e))
    return snaps


def callback(run: Any, snaps: list[Snapshot], probe: Callable[[Any], dict[str, Any]]) -> Any:
    """A trainer callback that saves each snapshot when training reaches its step."""
    from transformers import TrainerCallback

    by_step = {s.step: s for s in snaps}

    class SaveSnapshots(TrainerCallback):  # type: ignore[misc]
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            snap = by_step.get(int(state.global_step))
            if snap is not None and state.is_world_process_zero:  # under DDP rank 0 writes, as at the end
                save(run, snap, state, args, probe)

    return SaveSnapshots()


def crash_callback() -> Any:
    """``crash_point("finetune.step")`` at every step's end (before that step's checkpoint): kill -9 tests."""
    from transformers import TrainerCallback

    class CrashPoint(TrainerCallback):  # type: ignore[misc]
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            crash_point("finetune.step")

    return CrashPoint()


def save(run: Any, snap: Snapshot, state: Any, args: Any, probe: Callable[[Any], dict[str, Any]]) -> None:
    """The adapter, tokenizer, probe and metadata of ``snap`` (metadata last, as for a finished run)."""
    losses = [float(h["loss"]) for h in state.log_history if "loss" in h]
    part = copy.copy(run)
    part.cfg, part.out, part.data = snap.cfg, snap.out, snap.data
    part.train_ds = run.train_ds.select(range(len(snap.data.train)))
    part.trainer = type("T", (), {"state": state, "args": args})()
    part.result = type("R", (), {"global_step": state.global_step, "training_loss": _mean(losses)})()
    part.train_s = time.perf_counter() - run.t_fit
    part.probe_after = probe(part)
    snap.out.mkdir(parents=True, exist_ok=True)
    run.model.save_pretrained(str(snap.out), safe_serialization=True)
    run.tok.save_pretrained(str(snap.out))
    meta = train_meta.metadata(part, time.perf_counter() - run.t_start)
    meta["snapshot_of"] = {
        "key": artifacts.adapter(run.cfg).key,
        "epochs": run.cfg.finetune.epochs,
        "train_loss_note": "mean of the logged losses up to this step",
    }
    atomic_write_json(snap.out / METADATA, meta)
    log.info("snapshot epochs=%s: step %d, adapter %s", snap.epochs, snap.step, snap.out)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")
