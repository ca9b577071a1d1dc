"""Training records for fine-tuning, built from the corpus stream or a question file's train split.

Formats (the recipes before :mod:`bench.training.recipes`, selected by ``finetune.recipe``):

* ``text``: continued pre-training: the Portuguese passages packed into ``max_length``-token texts;
* ``instruct``: ``### Instruction`` / ``### Input`` / ``### Response`` records from articles (summarise the
  lead, describe a section), rendered through the chat template when the model has one;
* ``qa``: question → answer sentence, from ``finetune.train_questions`` (its ``train`` split only);
* ``raft``: like ``qa`` with the gold paragraph and deterministic distractor paragraphs in the prompt.

This module builds the article formats, curates and splits every format's records; the question formats and
the leakage guard (which refuses to train on any question the evaluation would ask) are in
:mod:`bench.training.sft_qa`.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from bench import recipe_keys
from bench.config import BenchError, Config
from bench.io import nfc
from bench.questions import leakage
from bench.training import recipes, sft_qa, sft_views

log = logging.getLogger(__name__)

FORMATS = ("text", "instruct", "qa", "raft")
TEXT_NOTE = "evaluation answers may appear in the training corpus (knowledge injection); no questions used"
QA_NOTE = "trained on train-split questions only; checked disjoint from the evaluation set"


@dataclass
class SftData:
    fmt: str
    train: list[dict[str, str]]  # {"text"} for text; {"prompt", "completion"} otherwise
    val: list[dict[str, str]]
    question_ids: frozenset[str] = frozenset()
    stats: dict[str, Any] = field(default_factory=dict)
    probe_texts: dict[str, Any] = field(default_factory=dict)  # "trained" / "heldout" text(s) for the probe
    scheduled: bool = False  # train in the records' order (recipe_keys.SCHEDULED), no shuffle


@dataclass
class RecordSource:
    """One format's records before curation, and what the stats say about where they came from."""

    records: Iterable[dict[str, str]]
    note: str
    extra: dict[str, Any] = field(default_factory=dict)
    probe: dict[str, str] = field(default_factory=dict)
    question_ids: frozenset[str] = frozenset()
    recorded: list[dict[str, Any]] = field(default_factory=list)
    pages: list[Any] = field(default_factory=list)  # the trained pages (cut to the page part), in order


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


def instruct_records(articles: Iterable[Any], tok: Any, use_chat: bool) -> Iterable[dict[str, str]]:
    for art in articles:
        for sec in art.sections:
            text = str(sec.text or "").strip()
            if not sec.heading:
                rec = _prompt_completion(tok, use_chat, f"Resuma o que é {art.title}.", "", text)
            else:
                rec = _prompt_completion(tok, use_chat, f"{art.title}: {sec.heading}", "", text)
            yield rec


# --------------------------------------------------------------------------- curation and split


def record_text(rec: dict[str, str]) -> str:
    return rec["text"] if "text" in rec else rec["prompt"] + rec["completion"]


def in_validation(key: str, seed: int, fraction: float) -> bool:
    """Deterministic split: the record's hash, not its position, decides."""
    h = int(hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()[:8], 16)
    return h / 0xFFFFFFFF < fraction


Exempt = Callable[[dict[str, str]], bool]


def curate(
    records: Iterable[dict[str, str]],
    cfg: Config,
    tok: Any,
    drops: Counter[str],
    exempt: Exempt | None = None,
    cap: bool = True,
) -> list[dict[str, str]]:
    """Drop empty, short, over-long and duplicate records; cap at ``max_records`` (first ones kept).
    ``exempt`` (scheduled recipes: an evaluated page's records): neither ``min_text_chars`` nor the cap drops
    them (the records after the cap are then dropped one by one); ``cap`` false: no cap (a QA pool)."""
    ft = cfg.finetune
    stop_at_cap = exempt is None
    is_exempt: Exempt = exempt or (lambda rec: False)
    seen: set[str] = set()
    kept: list[dict[str, str]] = []
    capped, full = 0, False  # kept records the cap counts (not the exempt ones); the cap is reached
    for rec in records:
        free = is_exempt(rec)
        if not _usable(rec, ft.min_text_chars, drops, free):
            continue
        if full and not free:
            drops["max_records_reached"] += 1
            continue
        text = nfc(record_text(rec))
        if len(tok(text, add_special_tokens=False)["input_ids"]) > ft.max_length:
            drops["too_long"] += 1
            continue
        key = hashlib.sha256(" ".join(text.split()).lower().encode()).hexdigest()
        if key in seen:
            drops["duplicate"] += 1
            continue
        seen.add(key)
        kept.append({k: nfc(v) for k, v in rec.items()})
        capped += not free
        full = bool(cap and ft.max_records and capped >= ft.max_records)
        if full and stop_at_cap:
            drops["max_records_reached"] += 1
            break
    return kept


def _usable(rec: dict[str, str], min_chars: int, drops: Counter[str], exempt: bool = False) -> bool:
    """Not empty, and (a page record not ``exempt``) at least ``min_chars`` characters long."""
    body = rec.get("text") or rec.get("completion") or ""
    if not body.strip() or ("prompt" in rec and not rec["prompt"].strip()):
        drops["empty"] += 1
        return False
    if not exempt and "question_id" not in rec and len(body) < min_chars:
        drops["short_text"] += 1
        return False
    return True


def load_articles(cfg: Config) -> Iterable[Any]:
    from bench.ingest.corpus import corpus_articles

    return corpus_articles(cfg)


def _usable_articles(articles: Iterable[Any], cfg: Config, drops: Counter[str]) -> list[Any]:
    arts = []
    for art in articles:
        if art is None or not str(art.text or "").strip():
            drops["empty_article"] += 1
        elif len(str(art.title or "").strip()) < cfg.finetune.min_title_chars:
            drops["short_title"] += 1
        else:
            arts.append(art)
    return arts


def article_source(
    cfg: Config,
    tok: Any,
    use_chat: bool,
    articles: Iterable[Any],
    drops: Counter[str],
    fmt: str,
    part: str = "page",
) -> RecordSource:
    """``text`` (packed views of each page) or ``instruct`` records of the pages in ``finetune.scope``;
    ``part``: each page cut to it (recipes.page_part; trained and held-out pages alike)."""
    ft = cfg.finetune
    arts, held, page_stats = sft_views.split_pages(cfg, _usable_articles(articles, cfg, drops))
    if part != "page":
        arts, held = [recipes.page_part(a, part) for a in arts], [recipes.page_part(a, part) for a in held]
    src = RecordSource([], TEXT_NOTE, extra=dict(page_stats), pages=arts)

    def tokenize(text: str) -> list[int]:
        return list(tok(text, add_special_tokens=False)["input_ids"])

    if fmt == "text":

        def plain(pages: list[Any]) -> Iterable[dict[str, str]]:
            return sft_views.pack_text(pages, tok, ft.max_length, ft.min_text_chars)

        src.records, src.extra["view_records"] = sft_views.view_records(
            arts, ft.views, tokenize, ft.max_length, plain
        )
    else:
        src.records = instruct_records(arts, tok, use_chat)
    if ft.probe:
        src.probe = {
            "trained": sft_views.probe_text(arts, tokenize, ft.probe_tokens),
            "heldout": sft_views.probe_text(sft_views.heldout_sample(held), tokenize, ft.probe_tokens),
        }
    return src


def question_source(
    cfg: Config, tok: Any, use_chat: bool, drops: Counter[str], raft: bool, entities: bool = False
) -> RecordSource:
    """``qa``/``raft`` records of the train questions the evaluation does not ask (``entities``: nor about
    the pages it asks about)."""
    ft = cfg.finetune
    rows = sft_qa.train_rows(cfg, drops, entities)
    records = sft_qa.qa_records(rows, tok, use_chat, raft, cfg.seed, cfg.model.reader, ft.raft_no_gold)
    drops["no_answer_or_context"] += len(rows) - len(records)
    used = {str(rec.get("question_id")) for rec in records}
    return RecordSource(
        records,
        QA_NOTE,
        question_ids=frozenset(str(r.get("id")) for r in rows),
        recorded=[leakage.training_record(r, entities) for r in rows if str(r.get("id")) in used],
        extra={"leakage": sft_qa.leakage_counts(cfg, drops, len(rows))},
    )


def build_sft_data(cfg: Config, tok: Any, use_chat: bool, articles: Iterable[Any] | None = None) -> SftData:
    """Records of a trainer-shuffled recipe (text, instruct, qa, raft), curated and split; raises on question
    leakage. The scheduled recipes are built by :mod:`bench.training.sft_recipes`."""
    ft = cfg.finetune
    fmt = recipe_keys.recipe_of(ft)
    if fmt not in FORMATS:
        raise BenchError(f"recipe {fmt!r} is scheduled: build it with bench.training.sft_recipes")
    drops: Counter[str] = Counter()
    if fmt in ("text", "instruct"):
        pages = articles if articles is not None else load_articles(cfg)
        src = article_source(cfg, tok, use_chat, pages, drops, fmt)
    else:
        src = question_source(cfg, tok, use_chat, drops, fmt == "raft")
    kept = curate(src.records, cfg, tok, drops)
    if "view_records" in src.extra:  # after de-duplication: what each view adds
        src.extra["view_records"] = dict(sorted(Counter(str(r.get("view")) for r in kept).items()))
    train: list[dict[str, str]] = []
    val: list[dict[str, str]] = []
    for rec in kept:
        (val if in_validation(record_text(rec), cfg.seed, ft.val_fraction) else train).append(rec)
    if not train:
        raise BenchError(f"no training records left for format {fmt!r} (dropped: {dict(drops)})")
    stats: dict[str, Any] = {
        "format": fmt,
        "train_records": len(train),
        "val_records": len(val),
        "dropped": dict(sorted(drops.items())),
        "train_tokens": sum(len(tok(record_text(r), add_special_tokens=False)["input_ids"]) for r in train),
        "chat_template": use_chat,
        "leakage_note": src.note,
        "training_questions": src.recorded,
        **src.extra,
    }
    log.info(
        "sft data %s: %d train / %d val records, dropped %s",
        fmt,
        len(train),
        len(val),
        dict(drops),
    )
    return SftData(fmt, train, val, src.question_ids, stats, src.probe)
