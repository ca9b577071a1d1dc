"""Question-based training records (recipes ``qa``, ``raft`` and the QA part of ``mixed``/``pit``) and the
leakage guard.

* ``qa``: question → answer span, from ``finetune.train_questions`` (its ``train`` split only), in the
  closed-book prompt the FT variant sends;
* ``raft``: the same with the gold paragraph and deterministic distractor paragraphs in the prompt (FT+RAG's).

The leakage guard refuses to train on any question that the evaluation (``questions`` filtered by ``split``)
would ask: the same id, the same question text under another id, a question about an entity (title) the
evaluation asks about, and (:mod:`bench.questions.leakage`) reworded twins and near-copies of the evaluation's
gold pages. :func:`leakage_counts` is what ``train_metadata.json`` records about it.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from bench.config import BenchError, Config
from bench.core.prompts import build_messages, format_passage
from bench.io import iter_jsonl, nfc
from bench.questions import leakage

N_DISTRACTORS = 2

# --------------------------------------------------------------------------- questions and leakage


def _questions(path: Path, split: str) -> list[dict[str, Any]]:
    return [r for r in iter_jsonl(path) if not split or r.get("split") == split]


def eval_question_ids(cfg: Config) -> set[str]:
    """Ids of the questions the evaluation asks: ``questions`` filtered by ``split``."""
    return {str(r.get("id")) for r in _questions(cfg.path(cfg.questions), cfg.split)}


def training_question_ids(cfg: Config) -> set[str]:
    """Ids of questions the fine-tuning trains on (empty for the recipes without QA pairs)."""
    from bench.recipe_keys import recipe_of, uses_questions

    if not uses_questions(recipe_of(cfg.finetune)):
        return set()
    return {str(r.get("id")) for r in _questions(_train_questions_path(cfg), "train")}


def check_leakage(train_ids: Iterable[str], eval_ids: Iterable[str]) -> None:
    """BenchError when a question used for training would also be evaluated."""
    overlap = set(train_ids) & set(eval_ids)
    if overlap:
        sample = ", ".join(sorted(overlap)[:3])
        raise BenchError(
            f"leakage: {len(overlap)} evaluation question(s) are in the fine-tuning data (e.g. {sample}); "
            "evaluate on another split (--set split=dev) or train on other questions"
        )


def _qkey(row: dict[str, Any]) -> str:
    return " ".join(nfc(str(row.get("question") or "")).lower().split())


def _train_questions_path(cfg: Config) -> Path:
    if not cfg.finetune.train_questions:
        raise BenchError(f"recipe {cfg.finetune.recipe} needs finetune.train_questions=FILE")
    return cfg.path(cfg.finetune.train_questions)


def train_rows(cfg: Config, drops: Counter[str], entities: bool = False) -> list[dict[str, Any]]:
    """The train split of ``finetune.train_questions`` minus every question the evaluation would ask
    (counted in ``drops``); BenchError on an id in both sets, or on a duplicate text when
    ``drop_eval_duplicates`` is false. ``entities`` (mixed/pit): also minus the questions about a page
    (``title``) an evaluation question asks about — the recipe trains on those pages' text."""
    ft = cfg.finetune
    rows = _questions(_train_questions_path(cfg), "train")
    if not rows:
        raise BenchError(f"{ft.train_questions}: no rows with split=train")
    eval_rows = _questions(cfg.path(cfg.questions), cfg.split)
    check_leakage({str(r.get("id")) for r in rows}, {str(r.get("id")) for r in eval_rows})
    eval_keys = {_qkey(r) for r in eval_rows}
    if ft.drop_eval_duplicates:  # same question text under another id: leave it out of training
        kept_rows = [r for r in rows if _qkey(r) not in eval_keys]
        drops["eval_duplicate"] += len(rows) - len(kept_rows)
        rows = kept_rows
    try:
        check_leakage({_qkey(r) for r in rows}, eval_keys)  # same question, other id
    except BenchError as exc:
        raise BenchError(f"{exc}; or --set finetune.drop_eval_duplicates=true to skip them") from None
    if entities:
        asked = {leakage.title_key(str(r.get("title") or "")) for r in eval_rows} - {""}
        kept_rows = [r for r in rows if leakage.title_key(str(r.get("title") or "")) not in asked]
        drops["eval_entity"] += len(rows) - len(
            kept_rows
        )  # a question about a page the evaluation asks about
        rows = kept_rows
    rows, twin_drops = leakage.filter_training(rows, eval_rows, ft)  # reworded twins, near-copy pages
    drops.update(twin_drops)
    return rows


def leakage_counts(cfg: Config, drops: Counter[str], kept: int) -> dict[str, Any]:
    """The guard's counts for ``train_metadata.json``: what the evaluation holds, what was dropped, why."""
    eval_rows = _questions(cfg.path(cfg.questions), cfg.split)
    train_total = len(_questions(_train_questions_path(cfg), "train"))
    return {
        "eval_split": cfg.split,
        "eval_questions": len(eval_rows),
        "eval_entities": len({leakage.title_key(str(r.get("title") or "")) for r in eval_rows} - {""}),
        "train_split_questions": train_total,
        "dropped_same_question_text": drops["eval_duplicate"],
        "dropped_eval_entity": drops["eval_entity"],
        "dropped_question_twin": drops["eval_question_twin"],
        "dropped_document_twin": drops["eval_document_twin"],
        "kept": kept,
    }


# --------------------------------------------------------------------------- records


def eval_prompt(
    tok: Any, use_chat: bool, question: str, passages: Sequence[str], reader: str, fewshot: int = 0
) -> str:
    """The prompt the evaluation sends for this question (``bench.core.prompts``); training records use no
    worked examples (``fewshot`` 0: they would not fit ``finetune.max_length``), the probe the run's."""
    from bench.generation.base import plain_prompt

    messages = build_messages(question, passages, reader=reader, fewshot=fewshot)
    if use_chat:
        return str(tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
    return plain_prompt(messages)


def qa_records(
    rows: Sequence[dict[str, Any]],
    tok: Any,
    use_chat: bool,
    raft: bool,
    seed: int,
    reader: str = "extractive",
    no_gold: float = 0.0,
) -> list[dict[str, str]]:
    """Question → short gold span, in the evaluation's prompt: closed-book for ``qa`` (the FT variant's
    prompt), with passages for ``raft`` (FT+RAG's): the gold paragraph among distractors, or, for a share
    ``no_gold`` of the records, only distractors (RAFT, Zhang et al. 2024)."""
    contexts = [(str(r.get("title") or ""), str(r.get("context") or "")) for r in rows]
    distinct = sorted({c for c in contexts if c[1]}, key=lambda c: hashlib.sha256(c[1].encode()).hexdigest())
    out = []
    for row in rows:
        answers = [a for a in row.get("answers") or [] if a]
        question, context = str(row.get("question") or ""), str(row.get("context") or "")
        if not answers or not question.strip() or not context.strip():
            continue
        passages: list[str] = []
        if raft:
            rng = random.Random(f"{seed}:{row.get('id')}")
            pool = [c for c in distinct if c[1] != context]
            gold = [] if rng.random() < no_gold else [(str(row.get("title") or ""), context)]
            docs = [*rng.sample(pool, min(N_DISTRACTORS + 1 - len(gold), len(pool))), *gold]
            rng.shuffle(docs)
            passages = [format_passage(c, t) for t, c in docs]
        prompt = eval_prompt(tok, use_chat, question, passages, reader)
        rec = {"prompt": prompt, "completion": str(answers[0]), "question_id": str(row.get("id"))}
        rec["title"] = str(row.get("title") or "")
        if row.get("relation"):
            rec["relation"] = str(row["relation"])
        out.append(rec)
    return out


def relation_quotas(mix: Counter[str], available: Counter[str], n: int) -> dict[str, int]:
    """``n`` pairs split over the relations in the shares of ``mix`` (largest remainders, ties by name),
    none above what ``available`` holds: a relation short of its quota passes the rest to the others, and
    what the mix's relations cannot fill goes to the other relations by their size."""
    quotas = dict.fromkeys(available, 0)
    left = _fill(quotas, mix, available, min(n, sum(available.values())))
    _fill(quotas, available, available, left)
    return quotas


def _fill(quotas: dict[str, int], weights: Counter[str], available: Counter[str], left: int) -> int:
    """Add ``left`` pairs to ``quotas`` by ``weights`` within ``available``; returns what found no room."""
    open_ = {r for r in available if weights.get(r) and quotas[r] < available[r]}
    while left > 0 and open_:
        total = sum(weights[r] for r in open_)
        share = {r: left * weights[r] / total for r in sorted(open_)}
        take = {r: int(share[r]) for r in share}
        for r in sorted(share, key=lambda r: (take[r] - share[r], r))[: left - sum(take.values())]:
            take[r] += 1
        for r in sorted(open_):
            got = min(take[r], available[r] - quotas[r])
            quotas[r] += got
            left -= got
        open_ = {r for r in open_ if quotas[r] < available[r]}
    return left


def sample_pairs(
    records: Sequence[dict[str, str]], mix: Counter[str], n: int, seed: int
) -> list[dict[str, str]]:
    """``n`` of the QA ``records`` (0 or more than there are: all), stratified by ``relation`` to the shares
    of ``mix`` (the evaluated questions' relations), each relation's pairs in a seeded hash order of their
    question ids; kept in the pool's order. Without relations (or a mix), a seeded sample of them all."""
    if not n or len(records) <= n:
        return list(records)
    rel = [str(r.get("relation") or "") for r in records]
    usable = Counter(x for x in rel if x and mix.get(x))
    pool = Counter(rel) if usable else Counter({"": len(records)})
    quotas = relation_quotas(mix if usable else Counter({"": 1}), pool, n)

    def rank(i: int) -> str:
        return hashlib.sha256(f"{seed}\0qa\0{records[i].get('question_id')}".encode()).hexdigest()

    chosen: set[int] = set()
    for relation, quota in quotas.items():
        members = [i for i, x in enumerate(rel) if (x if usable else "") == relation]
        chosen.update(sorted(members, key=rank)[:quota])
    return [records[i] for i in sorted(chosen)]


def answer_probe_items(cfg: Config, tok: Any, use_chat: bool) -> list[dict[str, Any]]:
    """The evaluated questions (``questions``, ``split``, ``limit``) in the FT variant's closed-book prompt
    (reader, ``model.fewshot`` worked examples, chat template), each with its first gold answer, and its
    ``stratum`` / ``relation`` when the row has them: the answer-level injection probe's inputs."""
    from bench.questions.load import load_questions

    items = []
    for row in load_questions(cfg):
        prompt = eval_prompt(tok, use_chat, str(row["question"]), [], cfg.model.reader, cfg.model.fewshot)
        item = {"id": str(row["id"]), "prompt": prompt, "answer": str(row["answers"][0])}
        item.update({k: row[k] for k in ("stratum", "relation") if row.get(k) not in (None, "")})
        items.append(item)
    return items
