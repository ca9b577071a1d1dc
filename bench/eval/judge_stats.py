"""The judge's figures (``judge.json``): per variant and metric, the mean score over the answers it scored,
how many it scored and how many verdicts did not parse; and how far to trust it: its agreement with exact
match on the short-answer questions (every gold answer at most :data:`SHORT_TOKENS` words), where EM is a
fair yardstick. Agreement: the judge says right when answer correctness >= ``judge.threshold``; the share
of answers where judge and EM agree, Cohen's kappa (agreement beyond chance), n, and the 2×2 counts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

SHORT_TOKENS = 5


def is_short(golds: Sequence[str]) -> bool:
    return bool(golds) and all(0 < len(g.split()) <= SHORT_TOKENS for g in golds)


def cohen_kappa(both: int, judge_only: int, em_only: int, neither: int) -> float | None:
    """Cohen's kappa of two binary raters from their 2×2 counts; None when chance agreement is total."""
    n = both + judge_only + em_only + neither
    if n == 0:
        return None
    observed = (both + neither) / n
    judge_yes, em_yes = (both + judge_only) / n, (both + em_only) / n
    chance = judge_yes * em_yes + (1 - judge_yes) * (1 - em_yes)
    return None if chance >= 1.0 else (observed - chance) / (1.0 - chance)


def agreement(
    verdicts: list[dict[str, Any]], ems: Mapping[str, tuple[float | None, Sequence[str]]], threshold: float
) -> dict[str, Any]:
    """Judge (answer correctness >= threshold) against EM on the short-answer questions it scored."""
    counts = {"both_right": 0, "judge_only": 0, "em_only": 0, "both_wrong": 0}
    for v in verdicts:
        em, golds = ems.get(str(v.get("question_id")), (None, ()))
        if v.get("metric") != "answer_correctness" or v.get("score") is None or em is None:
            continue
        if not is_short(golds):
            continue
        judge_right, em_right = float(v["score"]) >= threshold, em >= 0.5
        key = (
            ("both_right" if em_right else "judge_only")
            if judge_right
            else "em_only"
            if em_right
            else "both_wrong"
        )
        counts[key] += 1
    n = sum(counts.values())
    return {
        "n": n,
        "rate": (counts["both_right"] + counts["both_wrong"]) / n if n else None,
        "kappa": cohen_kappa(*counts.values()),
        "threshold": threshold,
        "short_tokens": SHORT_TOKENS,
        **counts,
    }


def summarize(
    verdicts: list[dict[str, Any]], ems: Mapping[str, tuple[float | None, Sequence[str]]], threshold: float
) -> dict[str, Any]:
    """``{"metrics": {variant: {metric: {mean, n, unparseable, errors, judged}}}, "agreement": {...}}``."""
    metrics: dict[str, dict[str, dict[str, Any]]] = {}
    for v in verdicts:
        cell = metrics.setdefault(str(v["variant"]), {}).setdefault(
            str(v["metric"]), {"judged": 0, "n": 0, "unparseable": 0, "errors": 0, "sum": 0.0}
        )
        cell["judged"] += 1
        if v.get("error"):
            cell["errors"] += 1
        elif v.get("score") is None:
            cell["unparseable"] += 1
        else:
            cell["n"] += 1
            cell["sum"] += float(v["score"])
    for by_metric in metrics.values():
        for cell in by_metric.values():
            total = cell.pop("sum")
            cell["mean"] = total / cell["n"] if cell["n"] else None
    return {"metrics": metrics, "agreement": agreement(verdicts, ems, threshold)}
