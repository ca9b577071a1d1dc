"""The ``run`` stage: every question through every variant → ``answers.jsonl`` + ``scores.json``.

Resumable: each finished (variant, question) is appended to ``cache/<variant>.jsonl`` (flushed per row) under
the variant key (prompt, model, and the index/adapter artifact keys: bench.eval.runstate), so a killed
run continues where it stopped and an unchanged rerun loads no model at all. On a fresh clone the committed
answers of the variants whose key is unchanged stand in for the cache (bench.eval.adopt). ``answers.jsonl``
is then rewritten from the cache in config variant order × question file order, and ``scores.json`` is
written last, atomically.
Several processes (``--shard i/n`` or torchrun's RANK/WORLD_SIZE) each answer the questions ``i::n`` into
their own ``cache/<variant>.shard-i-of-n.jsonl``; :mod:`bench.eval.shards` merges them (docs/scale.md).
See docs/harness.md for the file contracts and metric definitions.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from bench.config import BenchError, Config
from bench.core import memory
from bench.core.dist import Shard, artifact_lock, barrier, shard_from_env
from bench.core.schema import PROBED_BEFORE
from bench.core.stats import percentile
from bench.eval import adopt, longform, shards
from bench.eval.answer_loop import QUESTION_ERRORS, RunStopped, answer_into
from bench.eval.results import answer_rows, run_id, write_results
from bench.eval.runstate import AnswerCache, RunLock, question_hash, variant_key
from bench.eval.stages import Stages, check_leakage, default_stages, load_adapter
from bench.eval.train_answers import load_train_answers
from bench.eval.variants import VariantSpec, build_variants, get_spec
from bench.io import atomic_write_json, crash_point, read_json
from bench.questions.load import load_questions

log = logging.getLogger(__name__)


def _cuda_peak(cfg: Config, reset: bool) -> float | None:
    torch = sys.modules.get("torch")
    if not cfg.device.startswith("cuda") or torch is None or not torch.cuda.is_available():
        return None
    if reset:
        torch.cuda.reset_peak_memory_stats()
        return None
    return float(torch.cuda.max_memory_allocated() / 2**20)


def _run_variant(
    cfg: Config, variant: Any, cache: AnswerCache, key: str, pending: list[dict[str, Any]], total: int
) -> dict[str, Any]:
    spec: VariantSpec = variant.spec
    _cuda_peak(cfg, reset=True)
    engine = _engine_pids(variant)
    memory.reset_peaks([os.getpid(), *engine])
    cap = cfg.run.max_consecutive_errors
    streak: list[dict[str, Any]] = []  # the failed rows since the last answered question
    # A generator that schedules requests itself (vllm) gets the variant's whole question list at once.
    whole = getattr(getattr(variant, "generator", None), "prefers_whole_list", False)
    size = max(1, len(pending) if whole else cfg.model.batch_size)
    # Per-question latency before the batch, so its prompts are new to the engine (after it, vLLM's prefix
    # cache would still hold them); the first request, untimed, waits for the engine and warms what every
    # prompt shares.
    probe_n = cfg.run.latency_probe if spec.uses_model and len(pending) > 1 else 0
    probe = latency_probe(variant, pending[1 : probe_n + 1], warmup=pending[0]) if probe_n > 0 else None
    single = {**probe, "when": PROBED_BEFORE} if probe else None
    with tqdm(total=total, initial=total - len(pending), desc=spec.name, unit="q") as bar:

        def sink(row: dict[str, Any]) -> None:
            nonlocal streak
            cache.append(row)
            crash_point("run.answer")
            bar.update(1)
            streak = [*streak, row] if row["error"] else []
            if cap > 0 and len(streak) >= cap:
                raise RunStopped(
                    f"variant {spec.name}: {len(streak)} questions in a row failed; the first "
                    f"({streak[0]['question_id']}): {streak[0]['error']} (stopped at "
                    f"run.max_consecutive_errors={cap}; the answers so far are cached, a rerun retries)"
                )

        t0 = time.perf_counter()
        for start in range(0, len(pending), size):
            answer_into(variant, spec, key, pending[start : start + size], sink)
        wall = time.perf_counter() - t0
    out = {"key": key, "peak_rss_mb": memory.own_peak_mb(), "peak_vram_mb": _cuda_peak(cfg, reset=False)}
    # an engine started by this variant's first request (vLLM starts lazily) has only this variant's peak
    engine = _engine_pids(variant) or engine
    if engine:
        out["engine_peak_rss_mb"] = memory.peak_mb(engine)
    if spec.uses_model and pending:
        out["throughput"] = {"questions_per_s": len(pending) / wall, "n": len(pending), "batch": size}
        out["single_latency_ms"] = single
    return out


def _engine_pids(variant: Any) -> list[int]:
    """The processes of the generator's engine when it runs apart (a vLLM server), else none."""
    pid = getattr(getattr(variant, "generator", None), "engine_pid", None)
    return memory.tree(pid()) if callable(pid) and pid() else []


def latency_probe(
    variant: Any, rows: list[dict[str, Any]], warmup: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """Per-question latency, apart from the batch: ``rows`` answered one at a time (answers dropped; the
    batch's are the ones scored), after ``warmup`` answered untimed. p50/p95 over them; None when there is
    nothing to time or it fails."""
    times = []
    for row in [warmup, *rows] if warmup is not None else rows:
        t0 = time.perf_counter()
        try:
            variant.answer(row)
        except QUESTION_ERRORS as exc:
            log.warning("latency probe of %s stopped: %s", variant.name, exc)
            return None
        times.append((time.perf_counter() - t0) * 1000.0)
    times = times[1:] if warmup is not None else times  # the warm-up waited for the engine: not timed
    if not times:
        return None
    return {"p50": percentile(times, 50), "p95": percentile(times, 95), "n": len(times)}


def run(
    cfg: Config,
    out_dir: Path | None = None,
    *,
    stages: Stages | None = None,
    shard: Shard | None = None,
    adopt_from: Sequence[Path] = (),
) -> Path:
    """Run ``cfg.run.variants`` over the configured questions; returns the run directory.

    ``shard`` (default: the launcher's RANK/WORLD_SIZE, else the whole list): answer only the questions
    ``i::n`` into this shard's cache (bench.eval.shards). Under a launcher every rank then meets at a barrier
    and rank 0 merges; with an explicit ``--shard`` ``bench merge`` does. ``adopt_from``: committed runs
    whose answers of unchanged variants are reused after this run's own (bench.eval.adopt).
    """
    stages = stages or default_stages()
    shard = shard or shard_from_env()
    if not cfg.run.variants:
        raise BenchError("config key 'run.variants' is empty")
    specs = {name: get_spec(name) for name in cfg.run.variants}
    question_stats: dict[str, int] = {}
    questions = load_questions(cfg, stats=question_stats)
    if cfg.run.longform_pages > 0:
        cfg, stages, specs, questions = longform.prepare(cfg, stages, specs, questions)
    run_dir = Path(out_dir) if out_dir is not None else cfg.results_path / "runs" / run_id(cfg)
    with RunLock(run_dir, name="lock" + shard.suffix):
        sources = [run_dir, *(Path(d) for d in adopt_from)]
        keys = _answer(cfg, stages, specs, questions, sources, shard)
        if not shard.sharded:
            rows = answer_rows(cfg, specs, questions, _caches(run_dir, specs, shard), keys)
            resources = _read(run_dir / "cache" / "resources.json")
            resources = {n: r for n, r in resources.items() if r.get("key") == keys.get(n)}
            info = _read(run_dir / "cache" / "generator_info.json")
            dataset = (len(questions), question_stats)
            write_results(cfg, stages, specs, rows, run_dir, resources, info, dataset, keys, sources)
            return run_dir
    if shard.launched:
        barrier("bench run")  # every rank has answered its share
        if shard.index == 0:
            shards.merge(cfg, [run_dir], stages=stages, question_stats=question_stats, questions=questions)
    else:
        log.info("shard %s done; when all %d are: python -m bench merge %s", shard, shard.count, run_dir)
    return run_dir


def _built_once(cfg: Config, stages: Stages, stage: str) -> Any:
    """Processes (the shards of a run, sweep points run as separate jobs) take turns at a shared artifact: the
    first builds it, the others then find it built (``results/locks/<stage>-<key>.lock``: an flock, across
    processes, and across machines sharing ``results/`` on a filesystem with flock). The embedded index is
    held for as long as it is open: it has one opener at a time."""
    return artifact_lock(cfg.results_path, stage, stages.artifact_key(cfg, stage))


def _check_trained(cfg: Config, stages: Stages, shard: Shard) -> None:
    """Under a launcher every rank holds one GPU, so none can train alone: the adapter comes first."""
    if shard.launched and not (stages.adapter_dir(cfg) / "train_metadata.json").exists():
        raise BenchError(
            f"rank {shard}: the FT variants' adapter {stages.adapter_dir(cfg)} is not trained yet; train it "
            "first with the same --profile/--set (accelerate launch -m bench finetune ..., docs/scale.md), "
            "then launch the run"
        )


def _read(path: Path) -> dict[str, Any]:
    return read_json(path) if path.exists() else {}


def _caches(run_dir: Path, specs: dict[str, VariantSpec], shard: Shard) -> dict[str, AnswerCache]:
    return {name: shards.shard_cache(run_dir / "cache", name, shard) for name in specs}


def _answer(
    cfg: Config,
    stages: Stages,
    specs: dict[str, VariantSpec],
    all_questions: list[dict[str, Any]],
    sources: list[Path],
    shard: Shard,
) -> dict[str, str]:
    """Answer this shard's pending (variant, question) pairs into its cache (in the run directory,
    ``sources[0]``; the answers committed in ``sources`` adopted first); returns the variant keys."""
    run_dir = sources[0]
    cache_dir = run_dir / "cache"
    questions = shard.select(all_questions)
    where = f" (shard {shard}: {len(questions)} of {len(all_questions)})" if shard.sharded else ""
    log.info(
        "run %s: %d questions%s × %s → %s", run_id(cfg), len(all_questions), where, ",".join(specs), run_dir
    )
    if any(s.uses_adapter for s in specs.values()):
        check_leakage(cfg, stages, all_questions)
    gold = [n for n, s in specs.items() if s.context == "gold"]
    if gold and (missing := [q["id"] for q in all_questions if not q.get("context")]):
        raise BenchError(
            f"variant {gold[0]} needs 'context' on every question; {len(missing)} lack it: {missing[0]}"
        )

    keys = {name: variant_key(cfg, spec, stages.artifact_key) for name, spec in specs.items()}
    if shard.sharded:
        shards.write_manifest(cfg, cache_dir, shard, keys, len(questions))
    caches = _caches(run_dir, specs, shard)
    pending = {
        name: [q for q in questions if caches[name].get(keys[name], q["id"], question_hash(spec, q)) is None]
        for name, spec in specs.items()
    }
    stats_path = cache_dir / f"resources{shard.suffix}.json"
    info_path = cache_dir / f"generator_info{shard.suffix}.json"
    resources: dict[str, Any] = _read(stats_path)
    if not shard.sharded:  # a shard's cache is its own; the merged run is what scores.json keys
        info = _read(info_path)
        if adopt.committed(cfg, sources, specs, keys, pending, caches, resources, info):
            atomic_write_json(stats_path, resources)
            atomic_write_json(info_path, info)
    todo = [name for name in specs if pending[name]]
    adapter = None
    if any(specs[n].uses_adapter for n in todo):
        _check_trained(cfg, stages, shard)
        with _built_once(cfg, stages, "finetune"):
            adapter = load_adapter(cfg, stages, all_questions)
    if todo:
        fresh = _generate(
            cfg,
            stages,
            adapter,
            specs,
            todo,
            keys,
            caches,
            pending,
            len(questions),
            (stats_path, resources),
            shard,
        )
        atomic_write_json(info_path, {**_read(info_path), **fresh})  # a partial rerun keeps the others'
    else:
        log.info("all %d answers are cached; nothing to generate", len(questions) * len(specs))
        for cache in caches.values():
            cache.close()
    return keys


def _generate(
    cfg: Config,
    stages: Stages,
    adapter: Path | None,
    specs: dict[str, VariantSpec],
    todo: list[str],
    keys: dict[str, str],
    caches: dict[str, AnswerCache],
    pending: dict[str, list[dict[str, Any]]],
    total: int,
    stats: tuple[Path, dict[str, Any]],
    shard: Shard,
) -> dict[str, Any]:
    """Open what the pending variants need (retriever, generators), answer pending questions."""
    retriever, turn = None, contextlib.ExitStack()
    if any(specs[n].uses_retrieval for n in todo):
        log.info("opening the retriever (builds the index if it is missing)")
        turn.enter_context(_built_once(cfg, stages, "index"))
        retriever = stages.open_retriever(cfg)
        if cfg.index.qdrant_url:
            turn.close()  # a server index serves every process at once
        elif shard.sharded:  # the embedded engine has one opener at a time: processes take turns at it
            log.warning(
                "embedded index: the ranks of a sharded run take turns (index.qdrant_url: in parallel)"
            )
    needs_model = any(specs[n].uses_model for n in todo)
    generators = stages.make_generators(cfg, adapter) if needs_model else {}
    try:
        for key in dict.fromkeys(specs[n].generator for n in todo if specs[n].uses_model):
            if (prestart := getattr(generators.get(key), "prestart", None)) is not None:
                prestart()  # every engine loads at once (vLLM); the first request waits for its own
        answers = load_train_answers(cfg) if any(specs[n].edit or n == "prior" for n in todo) else None
        variants = build_variants(cfg, todo, generators, retriever, answers)
        for name in todo:
            log.info("%s: %d to answer (%d cached)", name, len(pending[name]), total - len(pending[name]))
            before = stats[1].get(name) or {}
            adopted = before.get("adopted") if before.get("key") == keys[name] else None
            stats[1][name] = _run_variant(cfg, variants[name], caches[name], keys[name], pending[name], total)
            if adopted:  # the rest of a partly adopted variant: its summary still says which rows were
                stats[1][name]["adopted"] = adopted
            atomic_write_json(stats[0], stats[1])
        return {name: gen.info() for name, gen in generators.items()}  # after the answers: engine start times
    finally:
        for gen in generators.values():
            gen.close()
        if retriever is not None and hasattr(retriever, "close"):
            retriever.close()
        turn.close()
        for cache in caches.values():
            cache.close()
