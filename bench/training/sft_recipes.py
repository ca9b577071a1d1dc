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
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bench import recipe_keys
from bench.config import BenchError, Config
from bench.io import atomic_write_text
from bench.training import recipes, sft_data

log = logging.getLogger(__name__)

DRY_RUN_FIELDS = ("part", "phase", "epoch", "view", "title", "question_id")


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
        key = sft_data._record_text(rec)
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
    page_drops: Counter[str] = Counter()
    qa_drops: Counter[str] = Counter()
    pages = articles if articles is not None else sft_data.load_articles(cfg)
    page_src = sft_data._article_source(cfg, tok, use_chat, pages, page_drops, "text", ft.page_part)
    page_recs = [{**r, "part": "page"} for r in sft_data.curate(page_src.records, cfg, tok, page_drops)]
    if ft.page_chunks:
        page_recs = _first_chunks(page_recs, ft.page_chunks, page_drops)
    qa_recs: list[dict[str, Any]] = []
    extra: dict[str, Any] = {}
    qids: frozenset[str] = frozenset()
    recorded: list[dict[str, Any]] = []
    if recipe != "cpt":
        q_src = sft_data._question_source(cfg, tok, use_chat, qa_drops, raft=False, entities=True)
        qa_recs = [{**r, "part": "qa"} for r in sft_data.curate(q_src.records, cfg, tok, qa_drops)]
        if ft.qa_pairs:
            qa_drops["qa_pairs_cap"] += max(0, len(qa_recs) - ft.qa_pairs)
            qa_recs = qa_recs[: ft.qa_pairs]
        page_recs = [_as_completion(r) for r in page_recs]
        used = {str(r["question_id"]) for r in qa_recs}
        qids = frozenset(used)
        recorded = [r for r in q_src.recorded if r["id"] in used]
        extra["leakage"] = q_src.extra["leakage"]
    page_train, page_val = _split(page_recs, cfg)
    qa_train, qa_val = _split(qa_recs, cfg)
    if not page_train:
        raise BenchError(f"recipe {recipe}: no page records left (dropped: {dict(page_drops)})")
    if recipe != "cpt" and not qa_train:
        raise BenchError(f"recipe {recipe}: no train-split QA pairs left (dropped: {dict(qa_drops)})")
    train = recipes.schedule(recipe, page_train, qa_train, ft, cfg.seed)
    stats = _stats(cfg, tok, recipe, use_chat, train, page_train, qa_train, page_val + qa_val)
    stats.update(
        dropped=dict(sorted(page_drops.items())),
        qa_dropped=dict(sorted(qa_drops.items())),
        training_questions=recorded,
        leakage_note=sft_data.TEXT_NOTE if recipe == "cpt" else f"{sft_data.TEXT_NOTE}; {sft_data.QA_NOTE}",
        **{k: v for k, v in page_src.extra.items() if k != "view_records"},
        **extra,
    )
    log.info("recipe %s: %d scheduled records (%s)", recipe, len(train), stats["unique_records"])
    return sft_data.SftData(recipe, train, page_val + qa_val, qids, stats, page_src.probe, scheduled=True)


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


def _stats(
    cfg: Config,
    tok: Any,
    recipe: str,
    use_chat: bool,
    train: list[dict[str, Any]],
    pages: list[dict[str, Any]],
    qa: list[dict[str, Any]],
    val: list[dict[str, Any]],
) -> dict[str, Any]:
    lengths: dict[str, int] = {}

    def n_tokens(rec: dict[str, Any]) -> int:
        text = sft_data._record_text(rec)
        if text not in lengths:
            lengths[text] = len(tok(text, add_special_tokens=False)["input_ids"])
        return lengths[text]

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
    summary.update(
        {k: data.stats[k] for k in ("unique_records", "train_tokens", "leakage") if k in data.stats}
    )
    return summary
