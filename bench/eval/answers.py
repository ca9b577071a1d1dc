"""From cached raw answers to ``answers.jsonl`` rows (with their metrics) and to the ``scores.json`` body."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bench.config import Config, config_hash, config_to_dict
from bench.eval import scoring
from bench.eval.diagnostics import reader_diagnostics
from bench.eval.runstate import prompt_info
from bench.eval.variants import VariantSpec


def answer_row(
    spec: VariantSpec, q: dict[str, Any], c: dict[str, Any], k: int, ragas: bool = False
) -> dict[str, Any]:
    """One ``answers.jsonl`` row: the cached answer, what the prompt held, and every per-answer metric."""
    hits = c.get("hits") or []
    passages = [str(p.get("text") or "") for p in c.get("passages") or []]
    retrieval = spec.retrieves
    finish = (c.get("generation") or {}).get("finish_reason") or "stop"
    scores = scoring.score_answer(
        c["answer"],
        q["answers"],
        q["question"],
        question_row=q,
        failed=bool(c.get("error")),
        truncated=finish == "length",
        passages=passages if spec.context != "none" else None,
        retrieved_titles=[h["title"] for h in hits] if retrieval else None,
        gold_title=q.get("title"),
        k=k,
    )
    if ragas:
        from bench.eval import ragas_metrics

        scores.update(
            ragas_metrics.score_row(
                c["answer"],
                q["answers"],
                failed=bool(c.get("error")),
                retrieved_texts=passages[:k] if retrieval else None,
                gold_context=q.get("context"),
            )
        )
    return {
        "variant": spec.name,
        "question_id": q["id"],
        "question": q["question"],
        "answer": c["answer"],
        "answers": q["answers"],
        "gold_title": q.get("title"),
        "retrieved": [
            {key: h.get(key) for key in ("chunk_id", "article_id", "title", "section", "score")} for h in hits
        ],
        **(
            {"groups": groups} if (groups := {f: str(q[f]) for f in scoring.GROUP_FIELDS if q.get(f)}) else {}
        ),
        "passages": c.get("passages") or [],
        **({"counterfactual": c["counterfactual"]} if c.get("counterfactual") else {}),
        "finish_reason": finish,
        "truncated": finish == "length",
        "metrics": scores,
        "error": c.get("error"),
        "latency": scoring.latency_of(c.get("generation") or {}, c.get("retrieval_ms") or 0.0),
    }


# What a variant's summary records from the process that answered it (resources.json): the peaks always,
# the figures measured apart (runner) when there are any.
PEAKS = ("peak_rss_mb", "peak_vram_mb")
MEASURED_APART = ("throughput", "single_latency_ms", "engine_peak_rss_mb")
RESOURCE_FIELDS = (*PEAKS, *MEASURED_APART)


def build_scores(
    cfg: Config, rows_by_variant: dict[str, list[dict[str, Any]]], resources: dict[str, Any]
) -> dict[str, Any]:
    """Summaries, paired comparisons, the baseline check and the reader diagnostics (error attribution,
    counterfactual faithfulness); the caller adds run id, env and datasets.

    ``resources`` holds peak memory per variant, recorded when its answers were generated.
    """
    n_boot, seed = cfg.run.bootstrap_samples, cfg.seed
    variants_out = {}
    for name, rows in rows_by_variant.items():
        summary = scoring.summarize_variant(rows, n_boot=n_boot, seed=seed)
        for key in PEAKS:
            summary[key] = (resources.get(name) or {}).get(key)
        for key in (*MEASURED_APART, "adopted"):  # runner, eval.adopt
            if (value := (resources.get(name) or {}).get(key)) is not None:
                summary[key] = value
        variants_out[name] = summary
    comparisons = scoring.compare_variants(rows_by_variant, n_boot=n_boot, seed=seed)
    return {
        "variants": variants_out,
        "comparisons": comparisons,
        "baseline_checks": scoring.baseline_checks(comparisons),
        "groups": scoring.summarize_groups(rows_by_variant),
        **reader_diagnostics(rows_by_variant),  # "attribution", "faithfulness" (when there is something)
        "prompt": prompt_info(cfg),
        "config": config_to_dict(cfg),
        "config_hash": config_hash(cfg),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
