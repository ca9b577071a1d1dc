"""The ``run`` stage: every question through every variant → ``answers.jsonl`` + ``scores.json``.

Resumable: each finished (variant, question) is appended to ``cache/<variant>.jsonl`` (flushed per row) under
the variant key (prompt, model, and the index/adapter artifact keys: bench.eval.runstate), so a killed
run continues where it stopped and an unchanged rerun loads no model at all. ``answers.jsonl`` is then
rewritten from the cache in config variant order × question file order, and ``scores.json`` is written last,
atomically.
See docs/harness.md for the file contracts and metric definitions.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from bench.config import BenchError, Config, config_hash
from bench.eval.answers import answer_row, build_scores
from bench.eval.runstate import (
    AnswerCache,
    RunLock,
    datasets_info,
    environment,
    keep_created,
    question_hash,
    variant_key,
)
from bench.eval.stages import (
    Stages,
    build_costs_record,
    check_leakage,
    default_stages,
    load_adapter,
    upstream_keys,
)
from bench.eval.variants import VariantSpec, build_variants, get_spec, record_of
from bench.io import (
    atomic_write_json,
    peak_rss_mb,
    read_json,
    write_jsonl,
)
from bench.questions.load import load_questions

log = logging.getLogger(__name__)

#: What one question may fail with without it being a bug, so that the run records an error row (retried on
#: the next run) and goes on: the backends' own errors (BenchError: an HTTP error after the openai
#: backend's retries, a prompt over llama.cpp's n_ctx, a malformed stream), I/O, connection errors and
#: timeouts (OSError: ConnectionError, TimeoutError), the engines' runtime failures (RuntimeError: torch's
#: out-of-memory and NaN/inf sampling, llama.cpp decode errors) and MemoryError. Anything else (TypeError,
#: KeyError, ValueError, ... and NotImplementedError/RecursionError, RuntimeErrors that are bugs) propagates.
QUESTION_ERRORS: tuple[type[Exception], ...] = (BenchError, OSError, RuntimeError, MemoryError)


def is_question_error(exc: Exception) -> bool:
    """Whether ``exc`` is an expected per-question failure (:data:`QUESTION_ERRORS`) rather than a bug."""
    return isinstance(exc, QUESTION_ERRORS) and not isinstance(exc, (NotImplementedError, RecursionError))


def run_id(cfg: Config) -> str:
    return cfg.run.run_name or f"{cfg.profile}-{config_hash(cfg)}"


def _cuda_peak(cfg: Config, reset: bool) -> float | None:
    torch = sys.modules.get("torch")
    if not cfg.device.startswith("cuda") or torch is None or not torch.cuda.is_available():
        return None
    if reset:
        torch.cuda.reset_peak_memory_stats()
        return None
    return float(torch.cuda.max_memory_allocated() / 2**20)


def _answer_rows(
    variant: Any, spec: VariantSpec, key: str, batch: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Cache records for a batch; a failing batch is retried one question at a time, so one bad question
    fails alone (it is retried on the next run)."""
    if len(batch) > 1:
        try:
            results = variant.answer_batch(batch)
            return [
                record_of(key, q["id"], question_hash(spec, q), r)
                for q, r in zip(batch, results, strict=True)
            ]
        except Exception as exc:
            if not is_question_error(exc):
                raise
            log.warning(
                "%s: batch of %d failed (%s: %s); answering one by one",
                spec.name,
                len(batch),
                type(exc).__name__,
                exc,
            )
    rows = []
    for q in batch:
        try:
            row = record_of(key, q["id"], question_hash(spec, q), variant.answer(q))
        except Exception as exc:  # one bad question must not sink the run; it is retried on rerun
            if not is_question_error(exc):
                raise
            log.warning("%s/%s failed: %s: %s", spec.name, q["id"], type(exc).__name__, exc)
            row = record_of(key, q["id"], question_hash(spec, q), None, f"{type(exc).__name__}: {exc}")
        rows.append(row)
    return rows


def _run_variant(
    cfg: Config, variant: Any, cache: AnswerCache, key: str, pending: list[dict[str, Any]], total: int
) -> dict[str, Any]:
    spec: VariantSpec = variant.spec
    _cuda_peak(cfg, reset=True)
    cap = cfg.run.max_consecutive_errors
    streak: list[dict[str, Any]] = []  # the failed rows since the last answered question
    size = max(1, cfg.model.batch_size)
    with tqdm(total=total, initial=total - len(pending), desc=spec.name, unit="q") as bar:
        for start in range(0, len(pending), size):
            for row in _answer_rows(variant, spec, key, pending[start : start + size]):
                cache.append(row)
                bar.update(1)
                streak = [*streak, row] if row["error"] else []
                if cap > 0 and len(streak) >= cap:
                    raise BenchError(
                        f"variant {spec.name}: {len(streak)} questions in a row failed; the first "
                        f"({streak[0]['question_id']}): {streak[0]['error']} (stopped at "
                        f"run.max_consecutive_errors={cap}; the answers so far are cached, a rerun retries)"
                    )
    return {"key": key, "peak_rss_mb": round(peak_rss_mb(), 1), "peak_vram_mb": _cuda_peak(cfg, reset=False)}


def run(cfg: Config, out_dir: Path | None = None, *, stages: Stages | None = None) -> Path:
    """Run ``cfg.run.variants`` over the configured questions; returns the run directory."""
    os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")
    stages = stages or default_stages()
    if not cfg.run.variants:
        raise BenchError("config key 'run.variants' is empty")
    specs = {name: get_spec(name) for name in cfg.run.variants}
    question_stats: dict[str, int] = {}
    questions = load_questions(cfg, stats=question_stats)
    run_dir = Path(out_dir) if out_dir is not None else cfg.results_path / "runs" / run_id(cfg)
    with RunLock(run_dir):
        return _run(cfg, stages, specs, questions, question_stats, run_dir)


def _run(
    cfg: Config,
    stages: Stages,
    specs: dict[str, VariantSpec],
    questions: list[dict[str, Any]],
    question_stats: dict[str, int],
    run_dir: Path,
) -> Path:
    cache_dir = run_dir / "cache"
    log.info("run %s: %d questions × %s → %s", run_id(cfg), len(questions), ",".join(specs), run_dir)
    if any(s.uses_adapter for s in specs.values()):
        check_leakage(cfg, stages, questions)
    gold = [n for n, s in specs.items() if s.context == "gold"]
    if gold and (missing := [q["id"] for q in questions if not q.get("context")]):
        raise BenchError(
            f"variant {gold[0]} needs 'context' on every question; {len(missing)} lack it: {missing[0]}"
        )

    keys = {name: variant_key(cfg, spec, stages.artifact_key) for name, spec in specs.items()}
    caches = {name: AnswerCache(cache_dir / f"{name}.jsonl") for name in specs}
    pending = {
        name: [q for q in questions if caches[name].get(keys[name], q["id"], question_hash(spec, q)) is None]
        for name, spec in specs.items()
    }
    todo = [name for name in specs if pending[name]]
    stats_path, info_path = cache_dir / "resources.json", cache_dir / "generator_info.json"
    resources: dict[str, Any] = read_json(stats_path) if stats_path.exists() else {}
    generator_info: dict[str, Any] = read_json(info_path) if info_path.exists() else {}
    if todo:
        adapter = load_adapter(cfg, stages, questions) if any(specs[n].uses_adapter for n in todo) else None
        fresh = _generate(cfg, stages, adapter, specs, todo, keys, caches, pending, len(questions), resources)
        generator_info = {**generator_info, **fresh}  # a partial rerun keeps what the other variants used
        atomic_write_json(info_path, generator_info)
    else:
        log.info("all %d answers are cached; nothing to generate", len(questions) * len(specs))

    rows_by_variant: dict[str, list[dict[str, Any]]] = {}
    for name, spec in specs.items():
        rows = []
        for q in questions:
            cached = caches[name].get(keys[name], q["id"], question_hash(spec, q), include_errors=True)
            if cached is None:  # cannot happen unless the cache file was edited concurrently
                raise BenchError(f"{caches[name].path}: no answer for question {q['id']!r}; rerun")
            rows.append(answer_row(spec, q, cached, cfg.index.k, cfg.run.ragas_metrics))
        rows_by_variant[name] = rows
    write_jsonl(run_dir / "answers.jsonl", (r for rows in rows_by_variant.values() for r in rows))
    scores = build_scores(
        cfg, rows_by_variant, {n: r for n, r in resources.items() if r.get("key") == keys.get(n)}
    )
    scores["costs"] = build_costs_record(cfg, stages, specs)
    scores["artifacts"] = upstream_keys(cfg, stages, specs)
    probe = (scores["costs"].get("finetune") or {}).get("probe") or {}
    if "ft" in scores["variants"] and probe:  # the injection probe belongs to the closed-book FT variant
        scores["variants"]["ft"].update(
            {k: v for k, v in probe.items() if k.startswith(("ppl_", "answer_nll_"))}
        )
    scores.update(
        run_id=run_id(cfg),
        env=environment(cfg, generator_info),
        datasets=datasets_info(cfg, len(questions), question_stats),
    )
    keep_created(run_dir / "scores.json", scores)
    atomic_write_json(run_dir / "scores.json", scores)
    log.info("wrote %s and %s", run_dir / "answers.jsonl", run_dir / "scores.json")
    return run_dir


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
    resources: dict[str, Any],
) -> dict[str, Any]:
    """Open what the pending variants need (retriever, generators), answer pending questions."""
    retriever = None
    if any(specs[n].uses_retrieval for n in todo):
        log.info("opening the retriever (builds the index if it is missing)")
        retriever = stages.open_retriever(cfg)
    needs_model = any(specs[n].uses_model for n in todo)
    generators = stages.make_generators(cfg, adapter) if needs_model else {}
    try:
        info = {name: gen.info() for name, gen in generators.items()}
        variants = build_variants(cfg, todo, generators, retriever)
        for name in todo:
            log.info("%s: %d to answer (%d cached)", name, len(pending[name]), total - len(pending[name]))
            resources[name] = _run_variant(
                cfg, variants[name], caches[name], keys[name], pending[name], total
            )
            atomic_write_json(caches[name].path.parent / "resources.json", resources)
        return info
    finally:
        for gen in generators.values():
            gen.close()
        if retriever is not None and hasattr(retriever, "close"):
            retriever.close()
        for cache in caches.values():
            cache.close()
