"""A run's two result files from its answer cache: ``answers.jsonl`` (config variant order × question
order) and ``scores.json`` (written last, atomically). Shared by ``bench run`` and ``bench merge``
(bench.eval.shards), so a merged sharded run is written by the same code as a single-process one."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from bench.config import BenchError, Config, config_hash
from bench.eval import adopt
from bench.eval.answers import answer_row, build_scores
from bench.eval.runstate import AnswerCache, datasets_info, environment, keep_created, question_hash
from bench.eval.stages import Stages, build_costs_record, upstream_keys
from bench.eval.variants import VariantSpec
from bench.io import ANSWERS_GZIP_OVER, answers_file, atomic_write_json, write_jsonl

log = logging.getLogger(__name__)


def run_id(cfg: Config) -> str:
    return cfg.run.run_name or f"{cfg.profile}-{config_hash(cfg)}"


def answer_rows(
    cfg: Config,
    specs: dict[str, VariantSpec],
    questions: list[dict[str, Any]],
    caches: dict[str, AnswerCache],
    keys: dict[str, str],
) -> dict[str, list[dict[str, Any]]]:
    """Every (variant, question) row, in config variant order × question order; a gap is an error."""
    rows_by_variant: dict[str, list[dict[str, Any]]] = {}
    for name, spec in specs.items():
        rows = []
        for q in questions:
            cached = caches[name].get(keys[name], q["id"], question_hash(spec, q), include_errors=True)
            if cached is None:  # cannot happen unless the cache file was edited concurrently
                raise BenchError(f"{caches[name].path}: no answer for question {q['id']!r}; rerun")
            rows.append(answer_row(spec, q, cached, cfg.index.k, cfg.run.ragas_metrics))
        rows_by_variant[name] = rows
    return rows_by_variant


def write_results(
    cfg: Config,
    stages: Stages,
    specs: dict[str, VariantSpec],
    rows_by_variant: dict[str, list[dict[str, Any]]],
    run_dir: Path,
    resources: dict[str, Any],
    generator_info: dict[str, Any],
    dataset: tuple[int, dict[str, int]],
    keys: dict[str, str],
    sources: list[Path] | None = None,
) -> None:
    """``answers.jsonl`` then ``scores.json`` (dataset: the number of questions and their load stats; keys:
    each variant's key, recorded so a fresh clone can resume the committed run: bench.eval.adopt; sources: the
    committed runs answers were adopted from, whose build costs stand in for an artifact not built here)."""
    write_jsonl(
        run_dir / "answers.jsonl", (r for rows in rows_by_variant.values() for r in rows), ANSWERS_GZIP_OVER
    )
    scores = build_scores(cfg, rows_by_variant, resources)
    scores["costs"] = build_costs_record(cfg, stages, specs)
    scores["artifacts"] = upstream_keys(cfg, stages, specs)
    scores["costs"] = adopt.carry_costs(scores["costs"], scores["artifacts"], sources or [run_dir])
    probe = (scores["costs"].get("finetune") or {}).get("probe") or {}
    if "ft" in scores["variants"] and probe:  # the injection probe belongs to the closed-book FT variant
        scores["variants"]["ft"].update(
            {k: v for k, v in probe.items() if k.startswith(("ppl_", "answer_nll_"))}
        )
    scores.update(
        variant_keys={name: keys[name] for name in specs},
        run_id=run_id(cfg),
        env=environment(cfg, generator_info),
        datasets=datasets_info(cfg, dataset[0], dataset[1]),
    )
    keep_created(run_dir / "scores.json", scores)
    atomic_write_json(run_dir / "scores.json", scores)
    log.info("wrote %s and %s", answers_file(run_dir), run_dir / "scores.json")
