"""Pure metric functions: Portuguese normalisation, EM/F1/containment, retrieval metrics, answer language,
bootstrap confidence intervals and paired comparisons."""

from __future__ import annotations

import string
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

PT_ARTICLES = frozenset({"o", "a", "os", "as", "um", "uma", "uns", "umas"})
_PUNCT = set(string.punctuation) | set("«»“”‘’–—…¿¡")


def normalize_pt(text: str) -> str:
    """Lower-case, fold accents, drop punctuation and Portuguese articles, collapse white space."""
    text = unicodedata.normalize("NFKD", text.lower())
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = "".join(" " if ch in _PUNCT else ch for ch in text)
    return " ".join(tok for tok in text.split() if tok not in PT_ARTICLES)


def _tokens(text: str) -> list[str]:
    return normalize_pt(text).split()


def exact_match(prediction: str, answers: Sequence[str]) -> float:
    pred = normalize_pt(prediction)
    return float(any(pred == normalize_pt(a) for a in answers))


def token_f1(prediction: str, answers: Sequence[str]) -> float:
    """SQuAD-style token F1 after Portuguese normalisation, max over gold answers."""
    pred = _tokens(prediction)
    best = 0.0
    for answer in answers:
        gold = _tokens(answer)
        if not pred or not gold:
            best = max(best, float(pred == gold))
            continue
        common = sum((Counter(pred) & Counter(gold)).values())
        if common == 0:
            continue
        precision, recall = common / len(pred), common / len(gold)
        best = max(best, 2 * precision * recall / (precision + recall))
    return best


def contains(prediction: str, answers: Sequence[str]) -> float:
    """1.0 when a normalised gold answer appears in the normalised prediction (word-aligned)."""
    pred = f" {normalize_pt(prediction)} "
    return float(any(normalize_pt(a) and f" {normalize_pt(a)} " in pred for a in answers))


def recall_at_k(retrieved_titles: Sequence[str], gold_title: str, k: int) -> float:
    return float(gold_title in list(retrieved_titles)[:k])


def answer_in_context_at_k(retrieved_texts: Sequence[str], answers: Sequence[str], k: int) -> float:
    ctx = f" {normalize_pt(' '.join(list(retrieved_texts)[:k]))} "
    return float(any(normalize_pt(a) and f" {normalize_pt(a)} " in ctx for a in answers))


def reciprocal_rank(retrieved_titles: Sequence[str], gold_title: str) -> float:
    for rank, title in enumerate(retrieved_titles, 1):
        if title == gold_title:
            return 1.0 / rank
    return 0.0


# --- answer language -------------------------------------------------------------------------------------

LANGUAGES = ("pt", "en", "es")
UNDETERMINED = "und"
MIN_LANG_WORDS = 4
_identifier: Any = None


def _lang_identifier() -> Any:
    """A private py3langid identifier restricted to pt/en/es (the module-level one is left untouched)."""
    global _identifier
    if _identifier is None:
        from py3langid.langid import MODEL_FILE, LanguageIdentifier

        ident = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        ident.set_languages(list(LANGUAGES))
        _identifier = ident
    return _identifier


NAME_CONNECTORS = frozenset(
    {"de", "da", "do", "das", "dos", "e", "del", "la", "y", "of", "the", "and", "von", "van"}
)


def _is_name_or_number(word: str) -> bool:
    return any(ch.isdigit() for ch in word) or word[:1].isupper() or word in NAME_CONNECTORS


def answer_language(text: str, min_words: int = MIN_LANG_WORDS) -> str:
    """``"pt"``, ``"en"``, ``"es"`` or ``"und"`` (undetermined).

    Undetermined: fewer than ``min_words`` words (after dropping punctuation), or every word is a number,
    capitalised, or a name connector such as "de"/"of" (names, titles, dates): no language signal there.
    """
    words = ["".join(ch for ch in w if ch not in _PUNCT) for w in text.split()]
    words = [w for w in words if w]
    if len(words) < min_words or all(_is_name_or_number(w) for w in words):
        return UNDETERMINED
    lang, _conf = _lang_identifier().classify(text)
    return str(lang)


# --- bootstrap statistics (numpy only, deterministic for a fixed seed) -----------------------------------


def bootstrap_ci(
    values: Sequence[float], n: int = 1000, seed: int = 0, alpha: float = 0.05
) -> tuple[float, float] | None:
    """Percentile bootstrap confidence interval of the mean; None for an empty sample."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return None
    if n <= 0 or x.size == 1:
        m = float(x.mean())
        return (m, m)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n, x.size))
    means = x[idx].mean(axis=1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return (float(lo), float(hi))


def mean_ci(values: Sequence[float], n: int = 1000, seed: int = 0) -> dict[str, Any]:
    """``{"mean": m, "ci95": [lo, hi]}``; both null for an empty sample."""
    ci = bootstrap_ci(values, n=n, seed=seed)
    if ci is None:
        return {"mean": None, "ci95": None}
    return {"mean": float(np.mean(np.asarray(values, dtype=np.float64))), "ci95": [ci[0], ci[1]]}


def paired_bootstrap(
    a: Sequence[float], b: Sequence[float], n: int = 1000, seed: int = 0, alpha: float = 0.05
) -> dict[str, Any]:
    """Paired bootstrap of mean(a - b) over the same items: ``{"diff", "ci95", "significant"}``.

    Significant when the (1 - alpha) interval excludes 0.
    """
    xa = np.asarray(a, dtype=np.float64)
    xb = np.asarray(b, dtype=np.float64)
    if xa.shape != xb.shape:
        raise ValueError(f"paired_bootstrap needs equal lengths, got {xa.size} and {xb.size}")
    if xa.size == 0:
        return {"diff": None, "ci95": None, "significant": False}
    d = xa - xb
    ci = bootstrap_ci(d.tolist(), n=n, seed=seed, alpha=alpha)
    assert ci is not None
    lo, hi = ci
    return {"diff": float(d.mean()), "ci95": [lo, hi], "significant": bool(lo > 0 or hi < 0)}


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (0-100); None for an empty sample."""
    if len(values) == 0:
        return None
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


# --- per-answer scoring and per-variant aggregation (used by the runner) --------------------------------

COMPARISONS: tuple[tuple[str, str], ...] = (
    ("rag", "base"),
    ("ft", "base"),
    ("ft_rag", "rag"),
    ("ft_rag", "ft"),
    ("oracle", "rag"),
)
COMPARED_METRICS = ("f1", "exact_match", "contains")
# Filled in by bench/ragas_metrics.py when run.ragas_metrics is on; summarised when present.
EXTRA_METRICS = ("string_similarity", "rouge_l", "chrf", "ragas_context_recall")


def score_answer(
    answer: str,
    answers: Sequence[str],
    *,
    failed: bool = False,
    retrieved_titles: Sequence[str] | None = None,
    retrieved_texts: Sequence[str] | None = None,
    gold_title: str | None = None,
    k: int = 3,
) -> dict[str, Any]:
    """All per-answer metrics. A failed generation scores 0 and has language "und".

    ``recall@k``/``answer_in_context@k`` are None unless retrieved lists are given (retrieval variants);
    ``recall@k`` is also None when the question has no gold title.
    """
    out: dict[str, Any] = {
        "exact_match": 0.0 if failed else exact_match(answer, answers),
        "f1": 0.0 if failed else token_f1(answer, answers),
        "contains": 0.0 if failed else contains(answer, answers),
        "lang": UNDETERMINED if failed else answer_language(answer),
        "recall@k": None,
        "answer_in_context@k": None,
    }
    if retrieved_titles is not None:
        out["recall@k"] = recall_at_k(retrieved_titles, gold_title, k) if gold_title else None
    if retrieved_texts is not None:
        out["answer_in_context@k"] = answer_in_context_at_k(retrieved_texts, answers, k)
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


def summarize_variant(rows: Sequence[dict[str, Any]], n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Aggregate answers.jsonl rows of one variant (each with "metrics", "latency", "error").

    Accuracy metrics average over all rows (failures count 0). ``lang_pt``/``lang_en`` average over rows whose
    language was determined; ``lang_undetermined`` is the share of all rows that were not.
    """
    ok = [r for r in rows if not r.get("error")]

    def col(name: str, src: Sequence[dict[str, Any]] = rows) -> list[float]:
        return [float(r["metrics"][name]) for r in src if r["metrics"].get(name) is not None]

    langs = [r["metrics"]["lang"] for r in ok]
    determined = [lang for lang in langs if lang != UNDETERMINED]
    out: dict[str, Any] = {m: mean_ci(col(m), n_boot, seed) for m in ("f1", "exact_match", "contains")}
    out["lang_pt"] = mean_ci([float(x == "pt") for x in determined], n_boot, seed)
    out["lang_en"] = mean_ci([float(x == "en") for x in determined], n_boot, seed)
    out["lang_undetermined"] = (len(rows) - len(determined)) / len(rows) if rows else None
    for m in ("recall@k", "answer_in_context@k", *EXTRA_METRICS):
        values = col(m)
        out[m] = mean_ci(values, n_boot, seed) if values else None
    total = [r["latency"]["retrieval_ms"] + r["latency"]["generation_ms"] for r in ok]
    out["latency_p50_ms"] = percentile(total, 50)
    out["latency_p95_ms"] = percentile(total, 95)
    gen_s = sum(r["latency"]["generation_ms"] for r in ok) / 1000.0
    new_tokens = sum(r["latency"]["new_tokens"] for r in ok)
    out["tokens_per_s"] = new_tokens / gen_s if gen_s > 0 else None
    out["n"] = len(rows)
    out["failed"] = len(rows) - len(ok)
    return out


def compare_variants(
    rows_by_variant: Mapping[str, Sequence[dict[str, Any]]], n_boot: int = 1000, seed: int = 0
) -> dict[str, dict[str, Any]]:
    """Paired bootstrap for each pair in COMPARISONS whose variants both ran, on their common questions."""
    out: dict[str, dict[str, Any]] = {}
    for a, b in COMPARISONS:
        if a not in rows_by_variant or b not in rows_by_variant:
            continue
        by_a = {r["question_id"]: r for r in rows_by_variant[a]}
        by_b = {r["question_id"]: r for r in rows_by_variant[b]}
        common = [q for q in by_a if q in by_b]
        out[f"{a}-{b}"] = {
            m: paired_bootstrap(
                [float(by_a[q]["metrics"][m]) for q in common],
                [float(by_b[q]["metrics"][m]) for q in common],
                n=n_boot,
                seed=seed,
            )
            for m in COMPARED_METRICS
        }
    return out
