"""The two JSON files of issue 35, assembled: ``results/perf/limits-<cpu>.json`` (this machine's peaks and
each stage's fraction of them, measured in one process) and ``results/perf/time-breakdown.json`` (where the
committed default run's time went)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from bench.config import BenchError, Config
from bench.core import gemm_shapes, limits
from bench.core.machine import MachineProbe, cpu_model
from bench.io import answers_file
from bench.perf import breakdown, stages

log = logging.getLogger(__name__)

PERF_DIR = Path("results") / "perf"
FORMULAS = {
    "training": "LoRA: 4 N + 6 N_lora + 3 x causal attention per non-padding token (frozen base: forward 2 N "
    "+ activation gradients 2 N, no weight gradients; Narayanan et al. 2021 s5.1 less the weight-gradient "
    "2 N); N = matmul parameters of the generator (LM head included, input embedding table excluded)",
    "embedding": "2 N + causal-free attention (2 x n_layer x mean tokens x d) per token, N = encoder "
    "matmul parameters (embedding tables excluded; Kaplan et al. 2020 s2.1)",
    "prefill": "2 N + 2 x n_layer x (prompt / 2) x d_attn per prompt token (vLLM computes logits only for "
    "the last position: the LM head's 2 x vocab x d is left out of N)",
    "decode": "every matmul weight read once per step in bf16 (2 bytes a parameter, LM head included); "
    "batch 1 decode steps/s x bytes / measured bandwidth",
}


def fractions(peaks: dict[str, Any], st: dict[str, Any]) -> dict[str, Any]:
    """Each stage's achieved GFLOP/s (GB/s for decode) and its fraction of the measured peak."""
    bf16 = peaks["matmul"]["bfloat16"]["gflops"]
    bw = peaks["bandwidth"]["gbs"]
    shape, out = st.get("shape") or {}, {}
    n, layers, d = shape.get("matmul_params", 0), shape.get("n_layer", 0), shape.get("d_attn", 0)
    if tr := st.get("training"):
        ctx = tr["max_length"] / 2  # attention over the record's own positions: about half the cut length
        fpt = limits.lora_train_flops(n, tr["trainable_params"], layers, ctx, d)
        out["training"] = limits.mfu(tr["tokens_per_s"], fpt, bf16)
    if em := st.get("embedding"):
        fpt = 2.0 * em["matmul_params"] + 2.0 * 2 * em["n_layer"] * em["mean_tokens"] * em["d_attn"]
        out["embedding"] = limits.mfu(em["tokens_per_s"], fpt, bf16)
    if gen := st.get("generation"):
        vocab_head = shape.get("lm_head_params", 0)
        fpt = limits.forward_flops(n - vocab_head, layers, gen["prompt_tokens"] / 2, d)
        out["prefill"] = limits.mfu(gen["prefill_tokens_per_s"], fpt, bf16)
        out["decode"] = limits.decode_bandwidth_use(gen["decode_steps_per_s"], 2.0 * n, bw)
        out["decode_batch"] = limits.decode_bandwidth_use(gen["batch_decode_steps_per_s_est"], 2.0 * n, bw)
    for stage, sp in (st.get("shape_peaks") or {}).items():  # the same FLOPs against the stage's own shapes
        if stage in out and sp.get("gflops"):
            out[stage]["shape_peak_gflops"] = sp["gflops"]
            out[stage]["fraction_of_shape_peak"] = limits.fraction(
                out[stage]["achieved_gflops"], sp["gflops"]
            )
    return out


def shape_peaks(st: dict[str, Any], cfg: Config) -> dict[str, Any]:
    """Each measured stage's shape peak (bench.core.gemm_shapes): its own matmuls, timed alone here."""
    from bench.generation import models

    out: dict[str, Any] = {}
    if (tr := st.get("training")) or st.get("generation"):
        conf = json.loads((models.ensure_hf_model(cfg) / "config.json").read_text(encoding="utf-8"))
        if tr:
            tokens = round(tr["tokens_seen"] / max(1, tr["steps"]))  # non-padding tokens per step
            gemms = gemm_shapes.layer_gemms(conf, tokens, lm_head=True, backward=True)
            out["training"] = {"tokens_per_step": tokens, **gemm_shapes.shape_peak(gemms)}
        if gen := st.get("generation"):
            gemms = gemm_shapes.layer_gemms(conf, gen["prompt_tokens"])
            out["prefill"] = {"tokens_per_step": gen["prompt_tokens"], **gemm_shapes.shape_peak(gemms)}
    if (em := st.get("embedding")) and em.get("model_config"):
        tokens = round(em["batch_size"] * em["mean_tokens"])
        gemms = gemm_shapes.layer_gemms(em["model_config"], tokens)
        out["embedding"] = {"tokens_per_step": tokens, **gemm_shapes.shape_peak(gemms)}
    return out


def _lm_head(model_dir: Path) -> int:
    """Parameters of the LM head (vocabulary x hidden)."""
    import json

    conf = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    return int(conf["vocab_size"]) * int(conf["hidden_size"])


def measure(cfg: Config, parts: tuple[str, ...], train_steps: int, embed_chunks: int) -> dict[str, Any]:
    """Peaks first, then each stage in ``parts`` (training, embedding, generation), one process."""
    from bench.generation import models

    threads = os.cpu_count() or 1
    with MachineProbe() as probe:
        peaks = limits.measure_peaks()
        st: dict[str, Any] = {}
        if {"training", "generation"} & set(parts):
            model_dir = models.ensure_hf_model(cfg)
            st["shape"] = {**stages.generator_shape(model_dir), "lm_head_params": _lm_head(model_dir)}
        if "training" in parts:
            st["training"] = stages.train_steps(cfg, train_steps)
        if "embedding" in parts:
            st["embedding"] = stages.embed_pass(cfg, embed_chunks)
        if "generation" in parts:
            try:
                st["generation"] = stages.vllm_generation(cfg)
                probe.add_own(st["generation"]["engine_cpu_s"])
            except BenchError as exc:  # no .venv-vllm here (make install EXTRAS=vllm): the rest still counts
                log.warning("vLLM not measured: %s", exc)
                st["generation_skipped"] = str(exc).splitlines()[0]
        st["shape_peaks"] = shape_peaks(st, cfg)  # each stage's own matmul shapes, timed here
        peaks_after = limits.best_matmul_peak("bfloat16", (2048,), 3)  # drift across the run
        peaks["bandwidth"] = _best_bandwidth(peaks["bandwidth"], limits.bandwidth(256, 10))
    return {
        "cpu_model": cpu_model(),
        "cpu_family": limits.cpu_family(),
        "cores": threads,
        "peaks": peaks,
        "bf16_peak_after_stages_gflops": peaks_after["gflops"],
        "stages": st,
        "fractions": fractions(peaks, st),
        "formulas": FORMULAS,
        "model": cfg.model.name,
        "embedder": cfg.index.embedder,
        "machine": probe.record(),
    }


def limits_path(perf_dir: Path = PERF_DIR, prefix: str = "limits") -> Path:
    return limits.machine_file(perf_dir, prefix)


def time_breakdown(cfg: Config, run_dir: Path, probe: bool = True) -> dict[str, Any]:
    """results/perf/time-breakdown.json: the committed run's accounting, the padding of the default
    training batches, prompt tokens per variant, and (``probe``) the before-probe's cost measured here."""
    with MachineProbe() as mp:
        doc: dict[str, Any] = {
            "run": str(run_dir),
            "stages": breakdown.stage_accounting(run_dir),
            "padding": breakdown.training_padding(cfg),
            "prompts": breakdown.prompt_lengths(cfg, answers_file(run_dir)),
        }
        if probe:
            doc["probe_before"] = breakdown.probe_cost(cfg)
    doc["machine"] = mp.record()
    if limits_path().exists():  # this CPU's measured prefill rate: the floor under the run's prompts
        lim = json.loads(limits_path().read_text(encoding="utf-8"))
        floor = breakdown.prefill_floor(doc["prompts"], doc["stages"]["variants"], lim)
        if floor is not None and floor["cpu_model"] != doc["stages"]["cpu_model"]:
            floor["note"] = "measured on another CPU than the run's"
        doc["prefill_floor"] = floor
    return doc


AB_ORDER = ("before", "after", "after", "before")


def _best_bandwidth(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The higher of two bandwidth measurements, before and after the stages: this VM's copy rate moved
    between runs minutes apart (44-71 GB/s), and a stage's share of it is read against the best seen."""
    best = before if before["gbs"] >= after["gbs"] else after
    return {**best, "gbs_before_stages": before["gbs"], "gbs_after_stages": after["gbs"]}


def train_ab(
    cfg: Config,
    steps: int,
    before: tuple[str, ...],
    after: tuple[str, ...],
    order: tuple[str, ...] = AB_ORDER,
    after_steps: int | None = None,
    env: dict[str, tuple[str, ...]] | None = None,
) -> dict[str, Any]:
    """Training tokens/s of two settings in one process, interleaved (before, after, after, before: load
    drift hits both alike), ``steps`` steps each over the same records; the best run of each counts, and the
    mean loss over the steps (the same records, ordered differently) says whether the training is the same.
    ``after_steps``: the after runs' steps when they take more records a step (a larger batch: steps x
    batch records in both, so the mean loss is still over the same records, after fewer updates).
    ``env``: environment variables of each side (``NAME=VALUE``); given any, every run has a process of its
    own (both sides alike)."""
    sets = {"before": before, "after": after}
    envs = {k: (env or {}).get(k, ()) for k in sets}
    n_steps = {"before": steps, "after": steps if after_steps is None else after_steps}
    runs: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
    own = any(envs.values())  # every run in a process of its own
    with MachineProbe() as probe:
        for name in order:
            if own:
                runs[name].append(stages.train_steps_child(cfg, n_steps[name], sets[name], envs[name]))
            else:
                runs[name].append(stages.train_steps(cfg, n_steps[name], sets[name]))
    best = {k: max(v, key=lambda r: r["tokens_per_s"]) for k, v in runs.items()}
    mean_loss = {k: round(sum(r["loss_curve"]) / len(r["loss_curve"]), 4) for k, r in best.items()}
    return {
        "steps": steps if after_steps is None else n_steps,
        "batch": {k: r["batch"] for k, r in best.items()},
        "settings": {k: list(v) or ["(default profile)"] for k, v in sets.items()},
        **({"env": {k: list(v) for k, v in envs.items()}, "processes": "one per run"} if own else {}),
        "order": ", ".join(order) + "; the best tokens/s of each counts",
        "tokens_per_s": {k: r["tokens_per_s"] for k, r in best.items()},
        "all_runs_tokens_per_s": {k: [r["tokens_per_s"] for r in v] for k, v in runs.items()},
        "s_per_step": {k: r["s_per_step"] for k, r in best.items()},
        "tokens_seen": {k: r["tokens_seen"] for k, r in best.items()},
        "speedup": round(best["after"]["tokens_per_s"] / best["before"]["tokens_per_s"], 3),
        "mean_loss": mean_loss,
        "mean_loss_rel_gap": round(abs(mean_loss["after"] - mean_loss["before"]) / mean_loss["before"], 4),
        "cpu_model": cpu_model(),
        "machine": probe.record(),
    }
