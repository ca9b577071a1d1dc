"""From answers to scores: the one ``METRICS`` registry, per-answer scoring, per-variant summaries, paired
comparisons and the "does the model beat its no-model baseline?" check.

Adding a metric is one :class:`Metric` entry here (plus its per-answer function in :mod:`bench.core.metrics`);
summaries, comparisons, the report, the regression check and the plots iterate the registry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bench.core import metrics as m
from bench.core import stats
from bench.eval.spans import PLACE_KINDS, answer_kind


@dataclass(frozen=True)
class Metric:
    name: str  # key in answers.jsonl "metrics" and in scores.json variants
    label: str  # report column header ({k} is replaced by the run's k)
    binary: bool  # 0/1 per answer: Wilson intervals, McNemar comparisons
    higher_is_better: bool = True
    stable: bool = True  # deterministic on CPU: `bench check` fails on a regression
    compared: bool = False  # in the paired comparisons
    headline: bool = False  # gated by `bench check` with the tightest tolerance; leads the report


METRICS: dict[str, Metric] = {
    x.name: x
    for x in (
        Metric("exact_match", "EM", True, compared=True, headline=True),
        Metric("f1_qstripped", "F1 (q-stripped)", False, compared=True, headline=True),
        Metric("f1", "token F1", False, compared=True),
        Metric("contains", "containment", True, compared=True),
        Metric("truncated", "truncated", True, higher_is_better=False),
        Metric("lang_pt", "PT rate", True),
        Metric("lang_en", "EN rate", True, higher_is_better=False),
        Metric("lang_other", "other-lang rate", True, higher_is_better=False),
        Metric("lang_und", "undetermined", True, stable=False),
        Metric("recall@k", "recall@{k}", True),
        Metric("answer_in_context@k", "answer in prompt@{k}", True),
        Metric("string_similarity", "string similarity", False),
        Metric("rouge_l", "ROUGE-L", False),
        Metric("chrf", "chrF", False),
        Metric("ragas_context_recall", "context recall", False),
    )
}
RAGAS_METRICS = ("string_similarity", "rouge_l", "chrf", "ragas_context_recall")
NOISY_METRICS = {  # name -> lower is better; `bench check` only warns on these
    "latency_p50_ms": True,
    "latency_p95_ms": True,
    "tokens_per_s": False,
    "peak_rss_mb": True,
    "peak_vram_mb": True,
}
LANG_METRICS = ("lang_pt", "lang_en", "lang_other")  # shares of the answers whose language was determined

# Paired comparisons: (a, b) reads "a − b"; each model variant also against every no-model baseline that saw
# the same passages (closed book: the echo and the prior; retrieval: the sentence picker and the typed span;
# gold context: the same over the gold sentence). The check holds a variant against the strongest of them,
# per metric.
BASELINE_OF: dict[str, tuple[str, ...]] = {
    "base": ("echo", "prior"),
    "ft": ("echo", "prior"),
    "rag": ("picker_rag", "span_rag"),
    "ft_rag": ("picker_rag", "span_rag"),
    "oracle": ("picker_oracle", "span_oracle"),
}
COMPARISONS: tuple[tuple[str, str], ...] = (
    ("rag", "base"),
    ("ft", "base"),
    ("ft_rag", "rag"),
    ("ft_rag", "ft"),
    ("oracle", "rag"),
    ("oracle_page", "rag"),
    ("oracle", "oracle_page"),
    *((variant, base) for variant, bases in BASELINE_OF.items() for base in bases),
)


def score_answer(
    answer: str,
    answers: Sequence[str],
    question: str,
    *,
    question_row: Mapping[str, Any] | None = None,
    failed: bool = False,
    truncated: bool = False,
    passages: Sequence[str] | None = None,
    retrieved_titles: Sequence[str] | None = None,
    gold_title: str | None = None,
    k: int = 3,
) -> dict[str, Any]:
    """All per-answer metrics. A failed generation scores 0 and has language "und".

    ``answer_in_context@k`` is None unless the prompt held passages; ``recall@k`` is None unless the
    variant retrieved (and the question names its gold title). ``question_row`` (its ``relation``, else
    the question's wording: :func:`bench.eval.spans.answer_kind`) says whether this is a place question:
    then an answer whose first comma- or parenthesis-separated part is a gold place counts as that place
    ("Olinda, Pernambuco" for gold "Olinda"), and a gold place's qualifier is optional ("Berkeley" for
    gold "Berkeley (Califórnia)").
    """
    ok = not failed
    relation = (question_row or {}).get("relation")
    if answer_kind(question, str(relation) if relation else None) in PLACE_KINDS:
        answers = m.place_golds(answers)
        answer = m.place_head(answer, answers)
    out: dict[str, Any] = {
        "exact_match": m.exact_match(answer, answers) if ok else 0.0,
        "f1_qstripped": m.f1_qstripped(answer, answers, question) if ok else 0.0,
        "f1": m.token_f1(answer, answers) if ok else 0.0,
        "contains": m.contains(answer, answers) if ok else 0.0,
        "truncated": float(truncated and ok),
        "lang": m.answer_language(answer) if ok else m.UNDETERMINED,
        "recall@k": None,
        "answer_in_context@k": None,
    }
    if retrieved_titles is not None and gold_title:
        out["recall@k"] = m.recall_at_k(retrieved_titles, gold_title, k)
    if passages is not None:
        out["answer_in_context@k"] = m.answer_in_context_at_k(passages, answers, k)
    return out


def latency_of(generation: dict[str, Any], retrieval_ms: float = 0.0) -> dict[str, Any]:
    """Per-answer latency record from a generation record (``total_ms``, ``ttft_ms``, ``new_tokens``)."""
    total_ms, new_tokens = float(generation.get("total_ms") or 0.0), int(generation.get("new_tokens") or 0)
    return {
        "retrieval_ms": float(retrieval_ms),
        "generation_ms": total_ms,
        "ttft_ms": float(generation.get("ttft_ms") or 0.0),
        "new_tokens": new_tokens,
        "tokens_per_s": new_tokens / (total_ms / 1000.0) if total_ms > 0 else None,
        "batch_size": int(generation.get("batch_size") or 1),
    }


def _interval(metric: Metric, values: list[float], n_boot: int, seed: int) -> dict[str, Any]:
    return stats.rate_ci(values) if metric.binary else stats.mean_ci(values, n_boot, seed)


def summarize_variant(rows: Sequence[dict[str, Any]], n_boot: int = 10000, seed: int = 0) -> dict[str, Any]:
    """Aggregate answers.jsonl rows of one variant (each with "metrics", "latency", "error").

    Accuracy metrics average over all rows (failures count 0). ``lang_pt``/``lang_en``/``lang_other`` are
    shares of the answers whose language was determined; ``lang_und`` is the share of all answers that
    were not (a short span has no language signal), so the PT rate's denominator is always visible.
    """
    ok = [r for r in rows if not r.get("error")]
    out: dict[str, Any] = {}
    for name, metric in METRICS.items():
        if name.startswith("lang_"):
            continue
        values = [float(r["metrics"][name]) for r in rows if r["metrics"].get(name) is not None]
        out[name] = _interval(metric, values, n_boot, seed) if values else None
    langs = [r["metrics"]["lang"] for r in rows]
    determined = [x for x in langs if x != m.UNDETERMINED]
    for name in LANG_METRICS:
        out[name] = stats.rate_ci([float(x == name.removeprefix("lang_")) for x in determined])
    out["lang_und"] = stats.rate_ci([float(x == m.UNDETERMINED) for x in langs])
    total = [r["latency"]["retrieval_ms"] + r["latency"]["generation_ms"] for r in ok]
    out["latency_p50_ms"] = stats.percentile(total, 50)
    out["latency_p95_ms"] = stats.percentile(total, 95)
    gen_s = sum(r["latency"]["generation_ms"] for r in ok) / 1000.0
    new_tokens = sum(r["latency"]["new_tokens"] for r in ok)
    out["tokens_per_s"] = new_tokens / gen_s if gen_s > 0 else None
    out["n"] = len(rows)
    out["failed"] = len(rows) - len(ok)
    return out


GROUP_FIELDS = ("relation", "stratum")  # question fields the report breaks scores down by, when present
GROUP_METRICS = ("exact_match", "contains")


def summarize_groups(rows_by_variant: Mapping[str, Sequence[dict[str, Any]]]) -> dict[str, Any]:
    """{field: {value: {variant: {metric: rate with Wilson interval}}}} for each question field in
    GROUP_FIELDS that the questions carry (relation and popularity stratum of the fact probes)."""
    out: dict[str, Any] = {}
    for field in GROUP_FIELDS:
        table: dict[str, dict[str, Any]] = {}
        for variant, rows in rows_by_variant.items():
            by_value: dict[str, list[dict[str, Any]]] = {}
            for r in rows:
                if value := (r.get("groups") or {}).get(field):
                    by_value.setdefault(value, []).append(r)
            for value, members in by_value.items():
                table.setdefault(value, {})[variant] = {
                    name: stats.rate_ci([float(r["metrics"][name]) for r in members])
                    for name in GROUP_METRICS
                }
        if table:
            out[field] = dict(sorted(table.items()))
    return out


def compare_variants(
    rows_by_variant: Mapping[str, Sequence[dict[str, Any]]], n_boot: int = 10000, seed: int = 0
) -> dict[str, dict[str, Any]]:
    """Paired comparison for each pair in COMPARISONS whose variants both ran, on their common questions."""
    out: dict[str, dict[str, Any]] = {}
    for a, b in COMPARISONS:
        if a not in rows_by_variant or b not in rows_by_variant:
            continue
        by_a = {r["question_id"]: r for r in rows_by_variant[a]}
        by_b = {r["question_id"]: r for r in rows_by_variant[b]}
        common = [q for q in by_a if q in by_b]
        out[f"{a}-{b}"] = {
            name: stats.paired_comparison(
                [float(by_a[q]["metrics"][name]) for q in common],
                [float(by_b[q]["metrics"][name]) for q in common],
                binary=metric.binary,
                n=n_boot,
                seed=seed,
            )
            for name, metric in METRICS.items()
            if metric.compared
        }
    return out


def baseline_checks(comparisons: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """For each model variant with a no-model baseline that ran: does it beat the *strongest* one on EM
    *and* q-stripped F1?

    Per headline metric the strongest baseline is the one the variant's paired difference is smallest
    against (the highest baseline score on the same questions). ``beats``: every such difference > 0;
    ``significant``: each also significant; ``loses_to``: the baselines that score higher than the variant
    on some headline metric (the report says so plainly). ``baseline`` names the strongest on EM.
    """
    out: dict[str, dict[str, Any]] = {}
    headline = [name for name, metric in METRICS.items() if metric.headline]
    for variant, bases in BASELINE_OF.items():
        comps = {b: c for b in bases if isinstance(c := comparisons.get(f"{variant}-{b}"), dict)}
        if not comps:
            continue
        diffs: dict[str, float | None] = {}
        strongest: dict[str, str] = {}
        sig: dict[str, bool] = {}
        for name in headline:
            found = [(d, b) for b, c in comps.items() if (d := (c.get(name) or {}).get("diff")) is not None]
            if not found:
                diffs[name] = None
                continue
            diff, base = min(found)
            diffs[name], strongest[name] = diff, base
            sig[name] = bool((comps[base].get(name) or {}).get("significant"))
        beats = all(d is not None and d > 0 for d in diffs.values())
        loses_to = sorted(
            {b for b, c in comps.items() for n in headline if ((c.get(n) or {}).get("diff") or 0.0) < 0}
        )
        out[variant] = {
            "baseline": strongest.get(headline[0], next(iter(comps))),
            **diffs,
            "strongest": strongest,
            "beats": beats,
            "significant": beats and all(sig.get(n, False) for n in headline),
            "loses_to": loses_to,
        }
    return out
