"""The training records of every recipe (:mod:`bench.training.recipes`), and ``bench finetune --dry-run``.

The trainer-shuffled recipes (``text``, ``instruct``, ``qa``, ``raft``) come from ``sft_data``;
the scheduled ones (``cpt``, ``mixed``, ``pit``) are built here: page records (the views of the pages in
``finetune.scope``, cut to ``finetune.page_part``) and, for ``mixed``/``pit``, train-split QA pairs in the
evaluation's closed-book prompt, each curated on its own, split for validation, then laid out in training
order by :func:`bench.training.recipes.schedule`. In ``mixed``/``pit`` every record is prompt → completion: a
page record has an empty prompt (the loss covers its whole text, as in ``cpt``), a QA pair the evaluation
prompt (the loss covers the answer only).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from bench import recipe_keys
from bench.config import BenchError, Config
from bench.io import atomic_write_text
from bench.training import augment, coverage, injection, recipes, sft_data, sft_qa
from bench.training.sft_views import title_key

log = logging.getLogger(__name__)

DRY_RUN_FIELDS = ("part", "phase", "epoch", "view", "title", "question_id", "relation")
SUMMARY = ("unique_records", "train_tokens", "coverage", "per_page", "augment", "qa_relations", "leakage")


def build_training_data(
    cfg: Config, tok: Any, use_chat: bool, articles: Iterable[Any] | None = None
) -> sft_data.SftData:
    """The records ``cfg``'s recipe trains on (``train`` in training order for a scheduled recipe)."""
    recipe = recipe_keys.recipe_of(cfg.finetune)
    if recipe not in recipe_keys.SCHEDULED:
        return sft_data.build_sft_data(cfg, tok, use_chat, articles)
    return _scheduled(cfg, tok, use_chat, recipe, articles)


def _split(records: list[dict[str, Any]], cfg: Config) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    train: list[dict[str, Any]] = []
    val: list[dict[str, Any]] = []
    for rec in records:
        key = sft_data.record_text(rec)
        (val if sft_data.in_validation(key, cfg.seed, cfg.finetune.val_fraction) else train).append(rec)
    return train, val


def _as_completion(rec: dict[str, Any]) -> dict[str, Any]:
    """A page record in the prompt → completion layout: empty prompt, the text as the completion."""
    out = {k: v for k, v in rec.items() if k != "text"}
    return {"prompt": "", "completion": rec["text"], **out}


def _scheduled(
    cfg: Config, tok: Any, use_chat: bool, recipe: str, articles: Iterable[Any] | None
) -> sft_data.SftData:
    ft = cfg.finetune
    count = _token_counter(tok)
    page_drops: Counter[str] = Counter()
    qa_drops: Counter[str] = Counter()
    eval_rows = coverage.evaluated_rows(cfg)
    page_recs, page_src, extra = _page_records(cfg, tok, eval_rows, articles, page_drops)
    qa_recs: list[dict[str, Any]] = []
    qids: frozenset[str] = frozenset()
    recorded: list[dict[str, Any]] = []
    if recipe_keys.uses_questions(recipe):
        qa_recs, q_src = _qa_records(cfg, tok, use_chat, eval_rows, qa_drops)
        page_recs = [_as_completion(r) for r in page_recs]
        qids = frozenset(str(r["question_id"]) for r in qa_recs)
        recorded = [r for r in q_src.recorded if r["id"] in qids]
        extra["leakage"] = q_src.extra["leakage"]
        extra["qa_relations"] = dict(sorted(Counter(str(r.get("relation")) for r in qa_recs).items()))
    page_train, page_val = _split(page_recs, cfg)
    qa_train, qa_val = _split(qa_recs, cfg)
    if not page_train:
        raise BenchError(f"recipe {recipe}: no page records left (dropped: {dict(page_drops)})")
    if recipe_keys.uses_questions(recipe) and not qa_train:
        raise BenchError(f"recipe {recipe}: no train-split QA pairs left (dropped: {dict(qa_drops)})")
    train = recipes.schedule(recipe, page_train, qa_train, ft, cfg.seed)
    stats = _stats(cfg, count, recipe, use_chat, train, page_train, qa_train, page_val + qa_val)
    exposures = recipes.page_exposures(train, len(page_train))
    stats.update(
        coverage=coverage.coverage(eval_rows, train),
        per_page=coverage.per_page(train, exposures, count),
        dropped=dict(sorted(page_drops.items())),
        qa_dropped=dict(sorted(qa_drops.items())),
        training_questions=recorded,
        leakage_note=sft_data.TEXT_NOTE if not qa_recs else f"{sft_data.TEXT_NOTE}; {sft_data.QA_NOTE}",
        **{k: v for k, v in page_src.extra.items() if k != "view_records"},
        **extra,
    )
    log.info("recipe %s: %d scheduled records (%s)", recipe, len(train), stats["unique_records"])
    probe: dict[str, Any] = dict(page_src.probe)
    if "trained" in probe:  # the page records as trained, not the pages' raw text (injection.trained_texts)
        probe["trained"] = injection.trained_texts(page_train, ft.probe_tokens, lambda t: count({"text": t}))
    return sft_data.SftData(recipe, train, page_val + qa_val, qids, stats, probe, scheduled=True)


def _page_records(
    cfg: Config,
    tok: Any,
    eval_rows: list[dict[str, Any]],
    articles: Iterable[Any] | None,
    drops: Counter[str],
) -> tuple[list[dict[str, Any]], sft_data.RecordSource, dict[str, Any]]:
    """The page records (views of the pages in scope, cut to ``page_part``; ``page_chunks`` per view; then
    the augmented texts), curated so that no floor or cap drops an evaluated page's records or an augmented
    text; with the page source and the augmentation's counts (``augment``, when on)."""
    ft = cfg.finetune
    evaluated = {title_key(str(r.get("title") or "")) for r in eval_rows} - {""}

    def exempt(rec: dict[str, str]) -> bool:
        return rec.get("view") == augment.VIEW or title_key(str(rec.get("title") or "")) in evaluated

    pages = articles if articles is not None else sft_data.load_articles(cfg)
    src = sft_data.article_source(cfg, tok, False, pages, drops, "text", ft.page_part)
    recs = [{**r, "part": "page"} for r in sft_data.curate(src.records, cfg, tok, drops, exempt=exempt)]
    if ft.page_chunks:
        recs = _first_chunks(recs, ft.page_chunks, drops)
    extra: dict[str, Any] = {}
    n = recipe_keys.augment_of(ft)
    if n:

        def tokenize(text: str) -> list[int]:
            return list(tok(text, add_special_tokens=False)["input_ids"])

        facts = augment.question_facts(cfg)
        aug, counts = augment.augment_records(src.pages, facts, n, cfg.seed, tokenize, ft.max_length)
        kept = sft_data.curate(aug, cfg, tok, drops, exempt=exempt)
        recs += [{**r, "part": "page"} for r in kept]
        extra["augment"] = {**counts, "kept": len(kept)}
    return recs, src, extra


def _qa_records(
    cfg: Config, tok: Any, use_chat: bool, eval_rows: list[dict[str, Any]], drops: Counter[str]
) -> tuple[list[dict[str, Any]], sft_data.RecordSource]:
    """The train-split QA pairs: every one the guard keeps, curated, then ``qa_pairs`` of them sampled to the
    evaluated questions' relation mix (:func:`bench.training.sft_qa.sample_pairs`, seeded)."""
    ft = cfg.finetune
    src = sft_data.question_source(cfg, tok, use_chat, drops, raft=False, entities=True)
    pool = [{**r, "part": "qa"} for r in sft_data.curate(src.records, cfg, tok, drops, cap=False)]
    mix = Counter(str(r["relation"]) for r in eval_rows if r.get("relation"))
    recs = sft_qa.sample_pairs(pool, mix, ft.qa_pairs or ft.max_records, cfg.seed)
    drops["qa_pairs_cap" if ft.qa_pairs else "max_records_reached"] += len(pool) - len(recs)
    return recs, src


def _first_chunks(recs: list[dict[str, Any]], n: int, drops: Counter[str]) -> list[dict[str, Any]]:
    """The first ``n`` records of each page and view (``finetune.page_chunks``; leads open with the facts)."""
    seen: Counter[tuple[str, str]] = Counter()
    kept = []
    for rec in recs:
        key = (str(rec.get("title")), str(rec.get("view")))
        seen[key] += 1
        if seen[key] <= n:
            kept.append(rec)
        else:
            drops["page_chunks_cap"] += 1
    return kept


def _token_counter(tok: Any) -> Callable[[dict[str, Any]], int]:
    """A record's token count (memoised by text)."""
    lengths: dict[str, int] = {}

    def n_tokens(rec: dict[str, Any]) -> int:
        text = sft_data.record_text(rec)
        if text not in lengths:
            lengths[text] = len(tok(text, add_special_tokens=False)["input_ids"])
        return lengths[text]

    return n_tokens


def _stats(
    cfg: Config,
    n_tokens: Callable[[dict[str, Any]], int],
    recipe: str,
    use_chat: bool,
    train: list[dict[str, Any]],
    pages: list[dict[str, Any]],
    qa: list[dict[str, Any]],
    val: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "format": recipe,
        "recipe": recipe,
        "page_part": cfg.finetune.page_part,
        "chat_template": use_chat,
        "train_records": len(train),
        "val_records": len(val),
        "unique_records": {"page": len(pages), "qa": len(qa)},
        "view_records": dict(sorted(Counter(str(r.get("view")) for r in pages).items())),
        "pass_tokens": {"page": sum(map(n_tokens, pages)), "qa": sum(map(n_tokens, qa))},
        "train_tokens": sum(map(n_tokens, train)),
        "phases": dict(Counter(str(r.get("phase")) for r in train)),
    }


def dry_run(cfg: Config, out: Path) -> dict[str, Any]:
    """Write the exact training records of ``cfg``'s recipe to ``out`` (JSON Lines, one per record, in
    training order for a scheduled recipe) without loading the model; returns a summary."""
    import json

    from transformers import AutoTokenizer

    from bench import model_registry
    from bench.generation import models

    recipe = recipe_keys.recipe_of(cfg.finetune)
    spec = model_registry.resolve_model(cfg)
    tok = AutoTokenizer.from_pretrained(models.ensure_hf_model(cfg), trust_remote_code=False)
    data = build_training_data(cfg, tok, use_chat=spec.chat_template and tok.chat_template is not None)
    lines = []
    for split, records in (("train", data.train), ("val", data.val)):
        for i, rec in enumerate(records):
            row: dict[str, Any] = {"split": split, "position": i, "recipe": recipe}
            row["part"] = rec.get("part") or ("qa" if "question_id" in rec else "page")
            row.update({k: rec[k] for k in DRY_RUN_FIELDS if k in rec and k != "part"})
            row.update({k: rec[k] for k in ("text", "prompt", "completion") if k in rec})
            lines.append(json.dumps(row, ensure_ascii=False))
    atomic_write_text(out, "".join(line + "\n" for line in lines))
    order = (
        "as trained (front to back)" if data.scheduled else "dataset order; the trainer shuffles each epoch"
    )
    summary = {"recipe": recipe, "records": len(data.train), "val_records": len(data.val), "order": order}
    summary.update({k: data.stats[k] for k in SUMMARY if k in data.stats})
    return summary
