"""Leakage guard for question-based fine-tuning (``qa``/``raft`` and the QA part of ``mixed``/``pit``):
training must not see the evaluation.

Four checks, each counted in ``train_metadata.json``:

* same id, or the same question text under another id (exact);
* **same entity** (``mixed``/``pit``, which train on the evaluated pages): a train question about a page
  (``title``) an evaluation question asks about;
* **question twins**: a train question whose content words overlap an evaluation question's by at least
  ``finetune.leak_question_overlap`` (Jaccard) *and* whose answer matches one of its gold answers (token F1
  ≥ ``finetune.leak_answer_f1``) — a reworded copy;
* **document twins**: a train question whose context shares at least ``finetune.leak_doc_overlap`` of its
  ``leak_doc_ngram``-word shingles with an evaluation gold paragraph (or the other way round) — a near-copy
  of the page the evaluation asks about.

The runner repeats the check against what the adapter it loads recorded (question texts and context hashes),
so an adapter trained elsewhere or before a data change is caught too.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from bench.config import BenchError, FinetuneConfig
from bench.core.metrics import content_words, normalize_pt, token_f1
from bench.io import nfc


def title_key(title: str) -> str:
    return " ".join(nfc(str(title or "")).casefold().split())


def question_key(text: str) -> str:
    return " ".join(nfc(str(text or "")).lower().split())


def context_hash(text: str) -> str:
    return hashlib.sha256(" ".join(normalize_pt(str(text or "")).split()).encode("utf-8")).hexdigest()[:16]


def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 0.0


def question_twins(
    train: Sequence[dict[str, Any]], evaluation: Sequence[dict[str, Any]], overlap: float, answer_f1: float
) -> dict[str, str]:
    """{train id: eval id} for reworded twins (content-word Jaccard ≥ overlap and answer F1 ≥ answer_f1)."""
    by_word: dict[str, list[int]] = defaultdict(list)
    eval_words = [content_words(str(e.get("question") or "")) for e in evaluation]
    for i, words in enumerate(eval_words):
        for w in words:
            by_word[w].append(i)
    out: dict[str, str] = {}
    for row in train:
        words = content_words(str(row.get("question") or ""))
        candidates = {i for w in words for i in by_word.get(w, ())}
        answers = [str(a) for a in row.get("answers") or []]
        for i in sorted(candidates):
            if _jaccard(words, eval_words[i]) < overlap:
                continue
            golds = [str(a) for a in evaluation[i].get("answers") or []]
            if max((token_f1(a, golds) for a in answers), default=0.0) >= answer_f1:
                out[str(row.get("id"))] = str(evaluation[i].get("id"))
                break
    return out


def _shingles(text: str, n: int) -> set[tuple[str, ...]]:
    words = normalize_pt(text).split()
    return {tuple(words[i : i + n]) for i in range(max(0, len(words) - n + 1))}


def document_twins(
    train: Sequence[dict[str, Any]], evaluation: Sequence[dict[str, Any]], n: int, overlap: float
) -> dict[str, str]:
    """{train id: eval id} where the train context and an eval gold paragraph share ≥ ``overlap`` of the
    smaller one's ``n``-word shingles."""
    eval_sh = [_shingles(str(e.get("context") or ""), n) for e in evaluation]
    owners: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for i, sh in enumerate(eval_sh):
        for s in sh:
            owners[s].append(i)
    memo: dict[str, str | None] = {}
    out: dict[str, str] = {}
    for row in train:
        ctx = str(row.get("context") or "")
        if ctx not in memo:
            memo[ctx] = None
            sh = _shingles(ctx, n)
            hits: dict[int, int] = defaultdict(int)
            for s in sh:
                for i in owners.get(s, ()):
                    hits[i] += 1
            for i, shared in sorted(hits.items()):
                if shared / max(1, min(len(sh), len(eval_sh[i]))) >= overlap:
                    memo[ctx] = str(evaluation[i].get("id"))
                    break
        if memo[ctx] is not None:
            out[str(row.get("id"))] = str(memo[ctx])
    return out


def filter_training(
    train: list[dict[str, Any]], evaluation: Sequence[dict[str, Any]], ft: FinetuneConfig
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Train rows without question twins and document twins of the evaluation, and the drop counts."""
    q_twins = question_twins(train, evaluation, ft.leak_question_overlap, ft.leak_answer_f1)
    kept = [r for r in train if str(r.get("id")) not in q_twins]
    d_twins = document_twins(kept, evaluation, ft.leak_doc_ngram, ft.leak_doc_overlap)
    kept = [r for r in kept if str(r.get("id")) not in d_twins]
    return kept, {"eval_question_twin": len(q_twins), "eval_document_twin": len(d_twins)}


def training_record(row: dict[str, Any], entity: bool = False) -> dict[str, Any]:
    """What an adapter records about one training question, for the runner's re-check (``entity``: its page
    title too, for the recipes whose guard drops questions about the evaluated pages)."""
    out = {
        "id": str(row.get("id")),
        "question": question_key(str(row.get("question") or "")),
        "context_sha": context_hash(str(row.get("context") or "")),
        "answers": [str(a) for a in row.get("answers") or []],
    }
    if entity:
        out["entity"] = title_key(str(row.get("title") or ""))
    return out


def check_adapter(
    recorded: Sequence[dict[str, Any]], evaluation: Sequence[dict[str, Any]], ft: FinetuneConfig
) -> None:
    """BenchError when the adapter's recorded training questions overlap the evaluation questions."""
    ids = {str(e.get("id")) for e in evaluation}
    texts = {question_key(str(e.get("question") or "")) for e in evaluation}
    contexts = {context_hash(str(e.get("context") or "")) for e in evaluation if e.get("context")}
    entities = {title_key(str(e.get("title") or "")) for e in evaluation} - {""}
    problems = [
        f"{r.get('id')} ({why})"
        for r in recorded
        for why in (
            "same id" if str(r.get("id")) in ids else "",
            "same question text" if r.get("question") in texts else "",
            "same context as an evaluation question" if r.get("context_sha") in contexts else "",
            "same entity as an evaluation question" if r.get("entity") in entities else "",
        )
        if why
    ]
    fuzzy = question_twins(recorded, evaluation, ft.leak_question_overlap, ft.leak_answer_f1)
    problems += [f"{t} (reworded twin of evaluation question {e})" for t, e in fuzzy.items()]
    if problems:
        raise BenchError(
            f"leakage: the adapter was trained on {len(problems)} question(s) that overlap the evaluation, "
            f"e.g. {'; '.join(problems[:3])}; retrain it (bench finetune) or evaluate another split"
        )
