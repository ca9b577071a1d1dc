"""Pure metric functions: Portuguese normalisation, EM/F1/containment, retrieval metrics."""

from __future__ import annotations

import string
import unicodedata
from collections import Counter
from collections.abc import Sequence

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


