"""ragas' non-LLM metrics (offline: no LLM, no hub), as a second opinion beside token F1.

* ``string_similarity``: ragas ``NonLLMStringSimilarity`` (normalised Levenshtein similarity, rapidfuzz);
* ``rouge_l``: ragas ``RougeScore`` (ROUGE-L F-measure, rouge_score);
* ``chrf``: ragas ``CHRFScore`` (character n-gram F-score, sacrebleu; scaled to 0–1);
* ``ragas_context_recall``: ragas ``NonLLMContextRecall``: share of the reference contexts (the question's
  gold paragraph) that some retrieved chunk matches with string similarity > 0.5. Retrieval variants only.

Answer metrics take the max over the gold answers. Both sides go through
:func:`bench.core.metrics.normalize_pt`
first: rouge_score's tokenizer keeps only ``[a-z0-9]``, so "ação" would otherwise score as "a o".
ragas is imported lazily (≈ 2–4 s, ≈ 240 MB); its telemetry is switched off before the import.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import cache
from typing import Any

from bench.core.metrics import normalize_pt
from bench.environment import configure_env

log = logging.getLogger(__name__)

ANSWER_METRICS = ("string_similarity", "rouge_l", "chrf")
CONTEXT_METRICS = ("ragas_context_recall",)
RAGAS_METRICS = ANSWER_METRICS + CONTEXT_METRICS


@cache
def _scorers() -> dict[str, Any]:
    configure_env()
    logging.getLogger("absl").setLevel(logging.WARNING)  # rouge_score: "Using default tokenizer." per call
    try:
        from ragas.metrics import _NonLLMContextRecall
        from ragas.metrics.collections import CHRFScore, NonLLMStringSimilarity, RougeScore
    except ImportError as exc:  # ragas or one of its scorer back-ends is missing
        raise ImportError(
            f"ragas metrics need ragas, rapidfuzz, rouge_score and sacrebleu ({exc}); "
            "run `make install` or set run.ragas_metrics=false"
        ) from exc
    return {
        "string_similarity": NonLLMStringSimilarity(),
        "rouge_l": RougeScore(rouge_type="rougeL", mode="fmeasure"),
        "chrf": CHRFScore(),
        "ragas_context_recall": _NonLLMContextRecall(),
    }


def _value(result: Any) -> float:
    value = float(getattr(result, "value", result))
    return value / 100.0 if value > 1.0 else value  # sacrebleu chrF is on a 0–100 scale


def answer_scores(answer: str, answers: Sequence[str], *, failed: bool = False) -> dict[str, float]:
    """String similarity, ROUGE-L and chrF of ``answer``, max over ``answers``; 0 for a failed/empty one."""
    pred = normalize_pt(answer)
    golds = [g for g in (normalize_pt(a) for a in answers) if g]
    if failed or not pred or not golds:
        return dict.fromkeys(ANSWER_METRICS, 0.0)
    scorers = _scorers()
    return {
        name: max(_value(scorers[name].score(reference=gold, response=pred)) for gold in golds)
        for name in ANSWER_METRICS
    }


def context_recall(retrieved_texts: Sequence[str], reference_contexts: Sequence[str]) -> float | None:
    """ragas NonLLMContextRecall of the retrieved chunks against the gold context(s); None without both."""
    retrieved = [t for t in retrieved_texts if t.strip()]
    refs = [t for t in reference_contexts if t.strip()]
    if not retrieved or not refs:
        return None
    from ragas.dataset_schema import SingleTurnSample

    sample = SingleTurnSample(retrieved_contexts=retrieved, reference_contexts=refs)
    return float(_scorers()["ragas_context_recall"].single_turn_score(sample))


def score_row(
    answer: str,
    answers: Sequence[str],
    *,
    failed: bool,
    retrieved_texts: Sequence[str] | None,
    gold_context: str | None,
) -> dict[str, float | None]:
    """All ragas metrics of one answers.jsonl row (context recall None outside retrieval variants)."""
    out: dict[str, float | None] = dict(answer_scores(answer, answers, failed=failed))
    recall = None
    if retrieved_texts is not None and gold_context:
        recall = context_recall(retrieved_texts, [gold_context])
    out["ragas_context_recall"] = recall
    return out
