"""Which evaluated pages a scheduled recipe trains, and how much of each: ``coverage`` and ``per_page`` in the
training stats (``train_metadata.json`` ``data``, and ``coverage`` at its top level).

The evaluated pages are the pages of the questions a run asks (:func:`bench.questions.load.load_questions`:
``questions`` at ``split``, ``subset``, ``sample`` and ``limit``), matched by title like ``finetune.scope``
(:func:`bench.training.sft_views.title_key`). A page is trained when at least one record of the training
sequence is about it; a question is trained when its page is. The goal is 100 %: less is logged as a warning.
"""

from __future__ import annotations

import logging
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from bench.config import BenchError, Config
from bench.training.sft_views import title_key

log = logging.getLogger(__name__)

MISSING_SHOWN = 10  # titles of untrained evaluated pages named in the stats


def evaluated_rows(cfg: Config) -> list[dict[str, Any]]:
    """The questions the run asks (empty when the question file cannot be read as such)."""
    from bench.questions.load import load_questions

    try:
        return load_questions(cfg)
    except BenchError as exc:
        log.warning("coverage: no evaluated questions (%s)", exc)
        return []


def coverage(eval_rows: Sequence[dict[str, Any]], records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """evaluated / trained pages and questions, and the first untrained titles (``missing``), for the page
    records (``part`` page, or no QA ``question_id``) among ``records``; warns below 100 %."""
    trained = {title_key(str(r.get("title") or "")) for r in records if _is_page(r)}
    titles: dict[str, str] = {}
    for row in eval_rows:
        titles.setdefault(title_key(str(row.get("title") or "")), str(row.get("title") or ""))
    titles.pop("", None)
    asked = [title_key(str(row.get("title") or "")) for row in eval_rows]
    missing = sorted(titles[k] for k in titles if k not in trained)
    questions = sum(1 for k in asked if k in trained)
    if missing or questions < len(eval_rows):
        log.warning(
            "coverage: %d of %d evaluated pages (%d of %d questions) have no training record, e.g. %s",
            len(missing),
            len(titles),
            len(eval_rows) - questions,
            len(eval_rows),
            ", ".join(missing[:3]) or "questions without a title",
        )
    return {
        "evaluated_pages": len(titles),
        "trained_pages": len(titles) - len(missing),
        "evaluated_questions": len(eval_rows),
        "trained_questions": questions,
        "missing": missing[:MISSING_SHOWN],
    }


def per_page(
    records: Sequence[dict[str, Any]], exposures: float, n_tokens: Callable[[dict[str, Any]], int]
) -> dict[str, Any]:
    """Per trained page: records in the sequence (min / median / max), distinct texts, and tokens per
    exposure (the page's records' tokens over ``exposures`` passes; median, min, max)."""
    count: Counter[str] = Counter()
    texts: defaultdict[str, set[str]] = defaultdict(set)
    tokens: Counter[str] = Counter()
    for rec in records:
        if not _is_page(rec):
            continue
        key = title_key(str(rec.get("title") or ""))
        count[key] += 1
        texts[key].add(str(rec.get("text") or rec.get("completion") or ""))
        tokens[key] += n_tokens(rec)
    if not count:
        return {}
    per_pass = [tokens[k] / exposures for k in count] if exposures else [0.0]
    return {
        "pages": len(count),
        "records": _spread(list(count.values())),
        "distinct_texts": _spread([len(v) for v in texts.values()]),
        "tokens_per_exposure": _spread(per_pass),
    }


def _spread(values: Sequence[float]) -> dict[str, float]:
    return {
        "min": round(min(values), 1),
        "median": round(float(statistics.median(values)), 1),
        "max": round(max(values), 1),
    }


def _is_page(rec: dict[str, Any]) -> bool:
    return rec.get("part") == "page" or ("part" not in rec and "question_id" not in rec)
