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

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import artifacts
from bench.config import BenchError, Config
from bench.io import atomic_write_json, crash_point
from bench.training import sft_recipes
from bench.training.sft_data import SftData

log = logging.getLogger(__name__)

METADATA = "train_metadata.json"


@dataclass
class Snapshot:
    epochs: float
    cfg: Config
    out: Path
    step: int
    data: SftData


def budget_config(cfg: Config, epochs: float) -> Config:
    """``cfg`` with ``finetune.epochs = epochs`` (and no snapshots of its own)."""
    ft = dataclasses.replace(cfg.finetune, epochs=epochs, snapshot_epochs=())
    return dataclasses.replace(cfg, finetune=ft)


def plan(
    cfg: Config, tok: Any, use_chat: bool, records: list[dict[str, str]], per_step: int
) -> list[Snapshot]:
    """The snapshots a training of ``cfg`` over ``records`` must save: one per ``finetune.snapshot_epochs``
    whose adapter is not cached."""
    snaps = []
    for e in sorted(set(cfg.finetune.snapshot_epochs)):
        cfg_e = budget_config(cfg, e)
        out_e = artifacts.adapter(cfg_e).path
        if (out_e / METADATA).exists():
            log.info("snapshot epochs=%s: adapter %s already trained", e, out_e)
            continue
        data_e = sft_recipes.build_training_data(cfg_e, tok, use_chat=use_chat)
        n = len(data_e.train)
        if data_e.train != records[:n]:
            raise BenchError(f"finetune.snapshot_epochs {e}: its records are not a prefix of the run's")
        if n % per_step:
            raise BenchError(
                f"finetune.snapshot_epochs {e}: its {n} records end inside a batch of {per_step}; the"
                " adapter would differ from a run of that budget. Pick budgets whose records fill whole"
                " batches (`bench finetune --dry-run` counts them) or another finetune.batch_size"
            )
        snaps.append(Snapshot(e, cfg_e, out_e, n // per_step, data_e))
    return snaps


def callback(snaps: list[Snapshot], save: Callable[[Snapshot, Any, Any], None]) -> Any:
    """A trainer callback that calls ``save(snapshot, state, args)`` when training reaches a snapshot's step
    (rank 0 only under DDP, as at the end)."""
    from transformers import TrainerCallback

    by_step = {s.step: s for s in snaps}

    class SaveSnapshots(TrainerCallback):  # type: ignore[misc]
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            snap = by_step.get(int(state.global_step))
            if snap is not None and state.is_world_process_zero:
                save(snap, state, args)

    return SaveSnapshots()


def crash_callback() -> Any:
    """``crash_point("finetune.step")`` at every step's end (before that step's checkpoint): kill -9 tests."""
    from transformers import TrainerCallback

    class CrashPoint(TrainerCallback):  # type: ignore[misc]
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            crash_point("finetune.step")

    return CrashPoint()


def write(model: Any, tok: Any, snap: Snapshot, meta: dict[str, Any]) -> None:
    """The adapter and tokenizer of ``snap``, then its metadata (last, as for a finished run)."""
    snap.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(snap.out), safe_serialization=True)
    tok.save_pretrained(str(snap.out))
    atomic_write_json(snap.out / METADATA, meta)
    log.info("snapshot epochs=%s: step %d, adapter %s", snap.epochs, snap.step, snap.out)
