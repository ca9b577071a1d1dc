"""Where a stage's step goes, op by op: ``python -m bench.perf op-profile`` → ``op-profile-<cpu>.json``.

The limits file says how far each stage is from this CPU's peak; this says why. Two steps run under
``torch.profiler`` after a warm-up:

* **training**: the default recipe's model in training precision with its LoRA adapters attached
  (:meth:`bench.training.finetune.FinetuneRecipe.attach_lora`) and torch's AdamW, one scheduled record per
  step (batch 1, as the default trains), bf16 autocast as the trainer runs it. A plain loop: the trainer's own
  overhead is the difference between this loop and the trainer part, per token.
* **trainer**: the same training through trl's SFTTrainer, as ``make bench`` trains (:func:`trainer`): beside
  the plain loop, what the trainer's own step adds.
* **embedding**: the default embedder over corpus chunks, as the index embeds them.

Each op's own time goes to one family: matmul (``mm``/``addmm``/``bmm``: with their FLOPs, so their in-place
GFLOP/s), attention, the LM head's softmax and loss, dtype casts (autocast's copies), the optimizer's
elementwise updates, fills (``fill_``: fresh buffers filled, e.g. by torch's deterministic mode), and the
rest. The unprofiled step time (mean of the timed steps) is recorded beside it.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.config import Config

log = logging.getLogger(__name__)

FAMILIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("matmul", ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")),
    ("attention", ("scaled_dot_product", "flash_attention", "aten::_softmax")),
    ("lm-head softmax + loss", ("log_softmax", "nll_loss", "cross_entropy")),
    ("dtype casts", ("aten::copy_", "aten::_to_copy", "aten::to", "aten::empty_strided")),
    ("fills", ("aten::fill_", "aten::zero_")),  # fresh buffers filled (torch's deterministic mode)
    ("optimizer", ("aten::lerp", "aten::addcdiv", "aten::addcmul", "aten::sqrt", "aten::_foreach")),
)


def family(op: str) -> str:
    for name, marks in FAMILIES:
        if any(m in op for m in marks):
            return name
    return "other"


def grouped(prof: Any, steps: int) -> dict[str, Any]:
    """Self time per family (ms per step, share), and the matmuls' GFLOP/s from the profiler's FLOP count."""
    ms: dict[str, float] = {}
    mm_flops = mm_us = 0.0
    for ev in prof.key_averages():
        fam = family(ev.key)
        ms[fam] = ms.get(fam, 0.0) + ev.self_cpu_time_total / 1000.0
        if fam == "matmul":
            mm_flops += float(getattr(ev, "flops", 0) or 0)
            mm_us += ev.self_cpu_time_total
    total = sum(ms.values()) or 1.0
    order = [n for n, _ in FAMILIES] + ["other"]
    return {
        "families": {
            n: {"ms_per_step": round(ms.get(n, 0.0) / steps, 2), "share": round(ms.get(n, 0.0) / total, 3)}
            for n in order
        },
        "profiled_ms_per_step": round(total / steps, 1),
        "matmul_gflops_in_place": round(mm_flops / mm_us / 1e3, 1) if mm_us else None,
    }


def _profile(step: Callable[[], Any], steps: int, timed: int) -> dict[str, Any]:
    from torch.profiler import ProfilerActivity, profile

    step()  # warm-up: first-call allocations, kernel choice
    times = []
    for _ in range(timed):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        for _ in range(steps):
            step()
    return {"step_s_mean": round(sum(times) / len(times), 4), "step_s_all": [round(t, 4) for t in times],
            **grouped(prof, steps)}  # fmt: skip


def training(cfg: Config, steps: int = 3, timed: int = 12) -> dict[str, Any]:
    """The default recipe's LoRA step on its first scheduled records (one record a step)."""
    import torch

    from bench import model_registry
    from bench.generation import models
    from bench.training import finetune

    spec = model_registry.resolve_model(cfg)
    model, tok = models.load_model(cfg, for_training=True, quantization=cfg.finetune.quantization)
    use_chat = bool(spec.chat_template and tok.chat_template is not None)
    records = finetune.build_records(cfg, tok, use_chat)
    recipe = finetune.FinetuneRecipe(cfg, Path("/nonexistent"), spec, model, tok, records, use_chat, {})
    recipe.attach_lora()
    model = recipe.model
    model.train()
    texts = [str(r.get("text") or r.get("completion") or "") for r in records.data.train[: 1 + timed + steps]]
    eos = tok.eos_token or ""
    rows = [tok(t + eos, add_special_tokens=False)["input_ids"][: cfg.finetune.max_length] for t in texts]
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.finetune.learning_rate)
    feed = iter(rows * 2)
    seen: list[int] = []

    def step() -> None:
        ids = torch.tensor([next(feed)])
        seen.append(ids.shape[1])
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.finetune.bf16):
            loss = model(input_ids=ids, labels=ids, use_cache=False).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    out = _profile(step, steps, timed)
    timed_tokens = seen[1 : 1 + timed]  # seen[0]: the warm-up; records differ in length, so all timed steps
    out["tokens_per_step_mean"] = round(sum(timed_tokens) / len(timed_tokens), 1)
    out["tokens_per_s"] = round(sum(timed_tokens) / sum(out["step_s_all"]), 1)
    out["setup"] = (
        f"{cfg.model.name}, LoRA r={cfg.finetune.lora_r} on {', '.join(cfg.finetune.target_modules)}, "
        f"{'bf16' if cfg.finetune.bf16 else 'fp32'}, batch 1, torch AdamW, threads {torch.get_num_threads()}"
    )
    return out


def trainer(cfg: Config, steps: int = 16, skip: int = 4) -> dict[str, Any]:
    """The same training as `make bench` runs it: trl's SFTTrainer through
    :func:`bench.training.finetune.run_finetune` (bench.perf.stages.train_steps). An unprofiled run gives
    the step time (the trainer's whole train() over its steps, its start included, as in the limits file);
    a second one is profiled from its ``skip``-th step for ``steps`` whole steps (forward, backward,
    clipping, the optimizer, the trainer's bookkeeping). Beside :func:`training`'s plain loop, the
    difference is the trainer's own."""
    import trl
    from torch.profiler import ProfilerActivity, profile

    from bench.perf import stages

    # the step time, unprofiled: over twice the steps, so the trainer's own start counts less
    unprofiled = stages.train_steps(cfg, 2 * (skip + steps))
    prof = profile(activities=[ProfilerActivity.CPU], with_flops=True)
    calls = [0]
    original = trl.SFTTrainer.training_step

    def step(self: Any, *args: Any, **kwargs: Any) -> Any:
        if calls[0] == skip:
            prof.__enter__()
        elif calls[0] == skip + steps:
            prof.__exit__(None, None, None)
        calls[0] += 1
        return original(self, *args, **kwargs)

    trl.SFTTrainer.training_step = step  # type: ignore[method-assign]
    try:
        stages.train_steps(cfg, skip + steps + 1)
    finally:
        trl.SFTTrainer.training_step = original  # type: ignore[method-assign]
    out = grouped(prof, steps)
    out["step_s_mean"] = unprofiled["s_per_step"]
    out["tokens_per_s"] = unprofiled["tokens_per_s"]
    out["tokens_per_step_mean"] = round(unprofiled["tokens_seen"] / unprofiled["steps"], 1)
    batch, precision = unprofiled["batch"], unprofiled["precision"]
    out["setup"] = f"trl's SFTTrainer as run_finetune runs it, {batch}, {precision}"
    return out


def embedding(cfg: Config, chunks: int = 128, steps: int = 1, timed: int = 3) -> dict[str, Any]:
    """The default embedder over ``chunks`` corpus chunks (one pass a step)."""
    from bench.perf.stages import corpus_chunks
    from bench.retrieval.embedders import make_embedder

    emb: Any = make_embedder(cfg)
    texts = corpus_chunks(cfg, chunks)
    out = _profile(lambda: emb.embed_passages(texts), steps, timed)
    out["attention_kernels_s"] = attention_kernels(lambda: emb.embed_passages(texts))
    tokens = sum(emb.token_count(t) for t in texts)
    out["tokens_per_step"] = tokens
    out["tokens_per_s"] = round(tokens * len(out["step_s_all"]) / sum(out["step_s_all"]), 1)
    name = getattr(emb, "name", cfg.index.embedder)
    out["setup"] = f"{name}, {chunks} chunks a step, batch {cfg.index.embed_batch_size}"
    return out


def attention_kernels(step: Callable[[], Any]) -> dict[str, float]:
    """Seconds of one ``step`` with torch's default attention kernel, then with its math path only."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    out = {}
    for name, ctx in (("default", None), ("math", SDPBackend.MATH)):
        t0 = time.perf_counter()
        if ctx is None:
            step()
        else:
            with sdpa_kernel(ctx):
                step()
        out[name] = round(time.perf_counter() - t0, 3)
    return out


PARTS: dict[str, Callable[[Config], dict[str, Any]]] = {
    "training": training, "trainer": trainer, "embedding": embedding,
}  # fmt: skip


def measure(cfg: Config, parts: tuple[str, ...] = tuple(PARTS)) -> dict[str, Any]:
    from bench.core import limits
    from bench.core.machine import MachineProbe, cpu_model

    doc: dict[str, Any] = {"cpu_model": cpu_model(), "cpu_family": limits.cpu_family()}
    with MachineProbe() as probe:
        for part in parts:
            log.info("op profile: %s", part)
            gc.collect()  # the previous part's model (peft wraps it in reference cycles) leaves memory first
            doc[part] = PARTS[part](cfg)
    doc["machine"] = probe.record()
    return doc
