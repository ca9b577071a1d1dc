"""Training records for fine-tuning, built from the corpus stream or a question file's train split.

Formats (``finetune.train_format``):

* ``text``: continued pre-training: the Portuguese passages packed into ``max_length``-token texts;
* ``instruct``: ``### Instruction`` / ``### Input`` / ``### Response`` records from articles (summarise the
  lead, describe a section), rendered through the chat template when the model has one;
* ``qa``: question → answer sentence, from ``finetune.train_questions`` (its ``train`` split only);
* ``raft``: like ``qa`` with the gold paragraph and deterministic distractor paragraphs in the prompt.

The leakage guard refuses to train on any question that the evaluation (``questions`` filtered by ``split``)
would ask.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.config import BenchError, Config
from bench.eval.prompts import build_messages, format_passage
from bench.io import iter_jsonl, nfc
from bench.questions import leakage
from bench.training import sft_views

log = logging.getLogger(__name__)

FORMATS = ("text", "instruct", "qa", "raft")
N_DISTRACTORS = 2


@dataclass
class SftData:
    fmt: str
    train: list[dict[str, str]]  # {"text"} for text; {"prompt", "completion"} otherwise
    val: list[dict[str, str]]
    question_ids: frozenset[str] = frozenset()
    stats: dict[str, Any] = field(default_factory=dict)
    probe_texts: dict[str, str] = field(default_factory=dict)  # "trained" / "heldout" text for the probe


# --------------------------------------------------------------------------- questions and leakage


def _questions(path: Path, split: str) -> list[dict[str, Any]]:
    return [r for r in iter_jsonl(path) if not split or r.get("split") == split]


def eval_question_ids(cfg: Config) -> set[str]:
    """Ids of the questions the evaluation asks: ``questions`` filtered by ``split``."""
    return {str(r.get("id")) for r in _questions(cfg.path(cfg.questions), cfg.split)}


def training_question_ids(cfg: Config) -> set[str]:
    """Ids of questions the fine-tuning trains on (empty for text/instruct formats)."""
    if cfg.finetune.train_format not in ("qa", "raft"):
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
        raise BenchError(
            f"train_format={cfg.finetune.train_format} needs --set finetune.train_questions=FILE"
        )
    return cfg.path(cfg.finetune.train_questions)


# --------------------------------------------------------------------------- rendering


def render_instruction(instruction: str, inp: str = "") -> str:
    parts = [f"### Instruction:\n{instruction}"]
    if inp:
        parts.append(f"### Input:\n{inp}")
    return "\n\n".join(parts) + "\n\n### Response:\n"


def _prompt_completion(tok: Any, use_chat: bool, instruction: str, inp: str, response: str) -> dict[str, str]:
    user = render_instruction(instruction, inp)
    if use_chat:
        prompt = tok.apply_chat_template(
            [{"role": "user", "content": user}], tokenize=False, add_generation_prompt=True
        )
        return {"prompt": str(prompt), "completion": response}
    return {"prompt": user, "completion": response}


# --------------------------------------------------------------------------- record builders


def _paragraphs(article: Any) -> list[str]:
    return [p.strip() for p in str(article.text or "").split("\n\n") if p.strip()]


def pack_text(articles: Iterable[Any], tok: Any, max_length: int, min_chars: int) -> Iterable[dict[str, str]]:
    """Greedy paragraph packing, per article, up to ``max_length`` tokens (long paragraphs are windowed)."""
    for art in articles:
        buf: list[str] = []
        used = 0
        for para in [f"{art.title}\n\n{p}" if i == 0 else p for i, p in enumerate(_paragraphs(art))]:
            ids = tok(para, add_special_tokens=False)["input_ids"]
            if len(ids) > max_length:
                if buf:
                    yield {"text": "\n\n".join(buf)}
                    buf, used = [], 0
                for i in range(0, len(ids), max_length):
                    piece = tok.decode(ids[i : i + max_length]).strip()
                    if len(piece) >= min_chars:
                        yield {"text": piece}
                continue
            if used + len(ids) + 2 > max_length and buf:
                yield {"text": "\n\n".join(buf)}
                buf, used = [], 0
            buf.append(para)
            used += len(ids) + 2
        if buf:
            yield {"text": "\n\n".join(buf)}


def instruct_records(articles: Iterable[Any], tok: Any, use_chat: bool) -> Iterable[dict[str, str]]:
    for art in articles:
        for sec in art.sections:
            text = str(sec.text or "").strip()
            if not sec.heading:
                rec = _prompt_completion(tok, use_chat, f"Resuma o que é {art.title}.", "", text)
            else:
                rec = _prompt_completion(tok, use_chat, f"{art.title}: {sec.heading}", "", text)
            yield rec


def eval_prompt(tok: Any, use_chat: bool, question: str, passages: Sequence[str], reader: str) -> str:
    """The prompt the evaluation sends for this question (``bench.eval.prompts``; no worked examples)."""
    from bench.generation.base import plain_prompt

    messages = build_messages(question, passages, reader=reader, fewshot=0)
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
        out.append(rec)
    return out


# --------------------------------------------------------------------------- curation and split


def _record_text(rec: dict[str, str]) -> str:
    return rec["text"] if "text" in rec else rec["prompt"] + rec["completion"]


def in_validation(key: str, seed: int, fraction: float) -> bool:
    """Deterministic split: the record's hash, not its position, decides."""
    h = int(hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()[:8], 16)
    return h / 0xFFFFFFFF < fraction


def curate(
    records: Iterable[dict[str, str]], cfg: Config, tok: Any, drops: Counter[str]
) -> list[dict[str, str]]:
    """Drop empty, short, over-long and duplicate records; cap at ``max_records`` (first ones kept)."""
    ft = cfg.finetune
    seen: set[str] = set()
    kept: list[dict[str, str]] = []
    for rec in records:
        body = rec.get("text") or rec.get("completion") or ""
        if not body.strip() or ("prompt" in rec and not rec["prompt"].strip()):
            drops["empty"] += 1
            continue
        if "question_id" not in rec and len(body) < ft.min_text_chars:
            drops["short_text"] += 1
            continue
        full = nfc(_record_text(rec))
        if len(tok(full, add_special_tokens=False)["input_ids"]) > ft.max_length:
            drops["too_long"] += 1
            continue
        key = hashlib.sha256(" ".join(full.split()).lower().encode()).hexdigest()
        if key in seen:
            drops["duplicate"] += 1
            continue
        seen.add(key)
        kept.append({k: nfc(v) for k, v in rec.items()})
        if ft.max_records and len(kept) >= ft.max_records:
            drops["max_records_reached"] += 1
            break
    return kept


def load_articles(cfg: Config) -> Iterable[Any]:
    from bench.ingest.corpus import corpus_articles

    return corpus_articles(cfg)


def build_sft_data(cfg: Config, tok: Any, use_chat: bool, articles: Iterable[Any] | None = None) -> SftData:
    """Records for ``cfg.finetune.train_format``, curated and split; raises on question leakage."""
    ft = cfg.finetune
    if ft.train_format not in FORMATS:
        raise BenchError(
            f"unknown finetune.train_format {ft.train_format!r}; use one of {', '.join(FORMATS)}"
        )
    drops: Counter[str] = Counter()
    qids: frozenset[str] = frozenset()
    recorded: list[dict[str, Any]] = []
    extra: dict[str, Any] = {}
    probe: dict[str, str] = {}

    def tokenize(text: str) -> list[int]:
        return list(tok(text, add_special_tokens=False)["input_ids"])

    if ft.train_format in ("text", "instruct"):
        arts = []
        for art in articles if articles is not None else load_articles(cfg):
            if art is None or not str(art.text or "").strip():
                drops["empty_article"] += 1
            elif len(str(art.title or "").strip()) < ft.min_title_chars:
                drops["short_title"] += 1
            else:
                arts.append(art)
        arts, held, page_stats = sft_views.split_pages(cfg, arts)
        extra.update(page_stats)
        if ft.train_format == "text":
            raw: Iterable[dict[str, str]]

            def plain(pages: list[Any]) -> Iterable[dict[str, str]]:
                return pack_text(pages, tok, ft.max_length, ft.min_text_chars)

            views = sft_views.view_records(arts, ft.views, tokenize, ft.max_length, plain)
            raw, extra["view_records"] = views
        else:
            raw = instruct_records(arts, tok, use_chat)
        if ft.probe:
            probe = {
                "trained": sft_views.probe_text(arts, tokenize, ft.probe_tokens),
                "heldout": sft_views.probe_text(sft_views.heldout_sample(held), tokenize, ft.probe_tokens),
            }
        note = "evaluation answers may appear in the training corpus (knowledge injection); no questions used"
    else:
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
        rows, twin_drops = leakage.filter_training(rows, eval_rows, ft)  # reworded twins, near-copy pages
        drops.update(twin_drops)
        raw = qa_records(
            rows, tok, use_chat, ft.train_format == "raft", cfg.seed, cfg.model.reader, ft.raft_no_gold
        )
        drops["no_answer_or_context"] += len(rows) - len(raw)
        qids = frozenset(str(r.get("id")) for r in rows)
        used = {str(rec.get("question_id")) for rec in raw}
        recorded = [leakage.training_record(r) for r in rows if str(r.get("id")) in used]
        note = "trained on train-split questions only; checked disjoint from the evaluation set"
    kept = curate(raw, cfg, tok, drops)
    if "view_records" in extra:  # after de-duplication: what each view adds
        extra["view_records"] = dict(sorted(Counter(str(r.get("view")) for r in kept).items()))
    train: list[dict[str, str]] = []
    val: list[dict[str, str]] = []
    for rec in kept:
        (val if in_validation(_record_text(rec), cfg.seed, ft.val_fraction) else train).append(rec)
    if not train:
        raise BenchError(f"no training records left for format {ft.train_format!r} (dropped: {dict(drops)})")
    stats: dict[str, Any] = {
        "format": ft.train_format,
        "train_records": len(train),
        "val_records": len(val),
        "dropped": dict(sorted(drops.items())),
        "train_tokens": sum(len(tok(_record_text(r), add_special_tokens=False)["input_ids"]) for r in train),
        "chat_template": use_chat,
        "leakage_note": note,
        "training_questions": recorded,
        **extra,
    }
    log.info(
        "sft data %s: %d train / %d val records, dropped %s",
        ft.train_format,
        len(train),
        len(val),
        dict(drops),
    )
    return SftData(ft.train_format, train, val, qids, stats, probe)
