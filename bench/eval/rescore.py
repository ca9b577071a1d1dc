"""``python -m bench rescore RUN_DIR…``: recompute a run's metrics from its cached ``answers.jsonl``.

No model and no retriever: every row is scored again with the current ``METRICS`` rules (question row, gold
answers, passages and retrieved titles are all in the row), and ``scores.json`` gets new summaries,
comparisons, baseline checks, groups and reader diagnostics (``attribution``, ``faithfulness``:
:mod:`bench.eval.diagnostics`); everything else in it (config, env, costs, artifacts, datasets,
memory peaks, perplexities) is kept. The typed no-model baselines ``span_rag``/``span_oracle`` are added
when the run lacks them and its rows record the passages a reader saw (those of ``picker_rag``/``rag``/
``ft_rag``, resp. ``picker_oracle``/``oracle``) and it ran no-model baselines at all (a sweep point with only
``ft``/``ft_rag`` gets none): they are computed from the same passages, as a run would.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from bench.config import BenchError
from bench.core.schema import mean_of, ordered_variants
from bench.eval import scoring
from bench.eval.baselines import BASELINES
from bench.eval.diagnostics import DIAGNOSTIC_KEYS, reader_diagnostics
from bench.eval.variants import VARIANTS
from bench.io import ANSWERS_GZIP_OVER, answers_file, atomic_write_json, iter_jsonl, read_json, write_jsonl

log = logging.getLogger(__name__)

SPAN_SOURCES = {  # typed baseline → variants whose rows hold the same passages, in order of preference
    "span_rag": ("picker_rag", "rag", "ft_rag"),
    "span_oracle": ("picker_oracle", "oracle"),
}
_KEPT = ("peak_rss_mb", "peak_vram_mb")


def question_row(row: dict[str, Any]) -> dict[str, Any]:
    """The question fields an answers.jsonl row carries (``relation``/``stratum`` sit under ``groups``)."""
    return {"question": row["question"], "answers": row["answers"], **(row.get("groups") or {})}


def rescore_row(row: dict[str, Any], k: int) -> dict[str, Any]:
    """The row with its metrics recomputed (metrics the current rules do not produce, e.g. ragas, kept)."""
    spec = VARIANTS.get(row["variant"])
    passages = [str(p.get("text") or "") for p in row.get("passages") or []]
    context = spec.context if spec else ("gold" if passages else "none")
    retrieval = context == "retrieval"
    new = scoring.score_answer(
        row["answer"],
        row["answers"],
        row["question"],
        question_row=question_row(row),
        failed=bool(row.get("error")),
        truncated=bool(row.get("truncated")),
        passages=passages if context != "none" else None,
        retrieved_titles=[h.get("title") for h in row.get("retrieved") or []] if retrieval else None,
        gold_title=row.get("gold_title"),
        k=k,
    )
    return {**row, "metrics": {**(row.get("metrics") or {}), **new}}


def span_rows(name: str, rows_by_variant: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]] | None:
    """``span_rag``/``span_oracle`` rows from the passages another variant's rows recorded (else None)."""
    for source in SPAN_SOURCES[name]:
        rows = rows_by_variant.get(source) or []
        if rows and all(r.get("passages") for r in rows):
            break
    else:
        return None
    answer = BASELINES[name]
    return [
        _baseline_row(r, name, answer(question_row(r), [str(p.get("text") or "") for p in r["passages"]]))
        for r in rows
    ]


def _baseline_row(row: dict[str, Any], name: str, answer: str, **fields: Any) -> dict[str, Any]:
    """A no-model variant's row built on another variant's row for the same question (no time, no error)."""
    latency = {"retrieval_ms": 0.0, "generation_ms": 0.0, "ttft_ms": 0.0, "new_tokens": 0}
    return {**row, "variant": name, "answer": answer, "finish_reason": "stop", "truncated": False,
            "metrics": {}, "error": None, "latency": {**latency, "tokens_per_s": None, "batch_size": 1},
            **fields}  # fmt: skip


def prior_rows(
    scores: dict[str, Any], rows_by_variant: dict[str, list[dict[str, Any]]]
) -> list[dict[str, Any]] | None:
    """``prior`` rows for a run that predates it: the run's own question file (its sha256 must match the
    one the run recorded) gives the train answers; the questions are those of any variant's rows. None when
    the file is missing or changed."""
    from bench.config_checks import data_root
    from bench.eval.train_answers import train_answers_of
    from bench.io import sha256_file

    config = scores.get("config") or {}
    recorded = ((scores.get("datasets") or {}).get("questions") or {}).get("sha256")
    path = Path(str(config.get("questions") or ""))
    path = path if path.is_absolute() else data_root() / path
    if not path.is_file() or not recorded or sha256_file(path) != recorded:
        log.warning("%s: not the question file the run recorded; no prior rows added", path)
        return None
    table = train_answers_of(path, str(config.get("split") or ""))
    source = next(iter(rows_by_variant.values()))
    return [
        _baseline_row(r, "prior", table.prior(question_row(r)), retrieved=[], passages=[]) for r in source
    ]


def headline(scores: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """{variant: {metric: mean}} for the headline metrics (to show what rescoring changed)."""
    names = [n for n, m in scoring.METRICS.items() if m.headline]
    variants = scores.get("variants") or {}
    return {v: {n: mean_of((variants[v] or {}).get(n)) for n in names} for v in ordered_variants(variants)}


def rescore(run_dir: Path, write: bool = True) -> dict[str, Any]:
    """Rescore one run directory in place (``write=False``: compute only); returns before/after headlines."""
    run_dir = Path(run_dir)
    answers_path, scores_path = answers_file(run_dir), run_dir / "scores.json"
    if not answers_path.exists() or not scores_path.exists():
        raise BenchError(f"{run_dir}: rescoring needs answers.jsonl and scores.json")
    scores = read_json(scores_path)
    config = scores.get("config") or {}
    k = int((config.get("index") or {}).get("k") or 3)
    n_boot = int((config.get("run") or {}).get("bootstrap_samples") or 10000)
    seed = int(config.get("seed") or 0)
    rows_by_variant: dict[str, list[dict[str, Any]]] = {}
    for row in iter_jsonl(answers_path):
        rows_by_variant.setdefault(row["variant"], []).append(row)
    added = []
    with_baselines = any(not VARIANTS[v].uses_model for v in rows_by_variant if v in VARIANTS)
    for name in SPAN_SOURCES if with_baselines else ():  # a sweep point without baselines gets none
        if name not in rows_by_variant and (rows := span_rows(name, rows_by_variant)) is not None:
            rows_by_variant[name] = rows
            added.append(name)
    if with_baselines and "prior" not in rows_by_variant and (rows := prior_rows(scores, rows_by_variant)):
        rows_by_variant["prior"] = rows
        added.append("prior")
    rows_by_variant = {v: [rescore_row(r, k) for r in rows] for v, rows in rows_by_variant.items()}
    before = headline(scores)
    old = scores.get("variants") or {}
    variants = {}
    for name, rows in rows_by_variant.items():
        summary = scoring.summarize_variant(rows, n_boot=n_boot, seed=seed)
        kept = {
            key: v
            for key, v in (old.get(name) or {}).items()
            if key in _KEPT or key.startswith(("ppl_", "answer_nll_"))
        }
        variants[name] = {**summary, **kept}
    comparisons = scoring.compare_variants(rows_by_variant, n_boot=n_boot, seed=seed)
    for key in DIAGNOSTIC_KEYS:  # recomputed below; a key with nothing left to report goes
        scores.pop(key, None)
    scores.update(
        variants=variants,
        comparisons=comparisons,
        baseline_checks=scoring.baseline_checks(comparisons),
        groups=scoring.summarize_groups(rows_by_variant),
        **reader_diagnostics(rows_by_variant),
        rescored={"from": "answers.jsonl", "added_variants": added},
    )
    if write:
        write_jsonl(
            run_dir / "answers.jsonl",
            (r for rows in rows_by_variant.values() for r in rows),
            ANSWERS_GZIP_OVER,
        )
        atomic_write_json(scores_path, scores)
        log.info("rescored %s (%s)", run_dir, ", ".join(added) or "no variant added")
    return {"run_dir": str(run_dir), "added": added, "before": before, "after": headline(scores)}


def run_dirs_under(paths: list[Path]) -> list[Path]:
    """Each path holding answers.jsonl + scores.json, or the run directories below it (a sweep, results/)."""
    out: list[Path] = []
    for p in paths:
        p = Path(p)
        if answers_file(p).exists() and (p / "scores.json").exists():
            out.append(p)
        else:
            found = {a.parent for a in [*p.rglob("answers.jsonl"), *p.rglob("answers.jsonl.gz")]}
            out += sorted(d for d in found if (d / "scores.json").exists())
    if not out:
        raise BenchError(f"no run directory (answers.jsonl + scores.json) in {', '.join(map(str, paths))}")
    return out
