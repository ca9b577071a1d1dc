"""Knowledge augmentation (``finetune.augment``, recipe ``aug``): N texts per trained page that restate its
facts, added to the page records of ``aug`` / ``mixed`` / ``pit`` (docs/finetune.md).

A page's facts are the (relation, first answer) pairs of the question file's rows about it (``questions``,
every split, matched by title): the facts its lead states, as the question generator read them from it. They
are page text (knowledge injection), never QA records: the QA part of ``mixed``/``pit`` stays train-split
questions about other entities (:mod:`bench.training.sft_qa`). Pages without a fact row get no augmented
text (counted as ``no_facts``). The same pairs read from the page's own text, no question file
(:func:`bench.questions.factprobe.text_facts`), are compared with these by :mod:`bench.eval.fact_source`;
the dose report renders how many pages agree.

Extension point: the texts come from an :class:`Augmenter` in :data:`AUGMENTERS` (``rules`` only:
:mod:`bench.training.augment_rules`). Paraphrases written by the generator model would be another entry:
it must cache its texts by content (a key over the generator's weights hash, its prompt and decoding
settings, and the page's lead and facts, e.g. ``results/augment/<key>.jsonl``, so reruns and every adapter
key that uses them reuse the same texts), and a config key naming the source must then enter the adapter key
(:func:`bench.recipe_keys.key_fields`) beside ``augment``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from bench.config import Config
from bench.io import iter_jsonl
from bench.training.augment_rules import Fits, PageFacts, rule_texts
from bench.training.sft_views import Tokenize, title_key

log = logging.getLogger(__name__)

RELATION_ORDER = ("birth_year", "birth_place", "death_year", "death_place", "municipality_state")
VIEW = "aug"  # the records' ``view``


class Augmenter(Protocol):
    def __call__(self, page: PageFacts, n: int, seed: int, fits: Fits) -> list[str]:
        """``n`` distinct texts, each stating every fact of ``page`` and fitting ``fits``."""
        ...


AUGMENTERS: dict[str, Augmenter] = {"rules": rule_texts}


def page_facts(rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """title key → {relation: first answer} over question rows (the first row of a relation wins)."""
    facts: dict[str, dict[str, str]] = {}
    for row in rows:
        key, rel = title_key(str(row.get("title") or "")), str(row.get("relation") or "")
        answers = [str(a) for a in row.get("answers") or [] if str(a).strip()]
        if key and rel and answers:
            facts.setdefault(key, {}).setdefault(rel, answers[0])
    return facts


def question_facts(cfg: Config) -> dict[str, dict[str, str]]:
    """:func:`page_facts` of every row of ``cfg.questions`` (all splits)."""
    return page_facts(iter_jsonl(cfg.path(cfg.questions)))


def lead_of(article: Any) -> str:
    sections = getattr(article, "sections", ()) or ()
    return str(sections[0].text if sections else article.text or "").strip()


def _ordered(facts: dict[str, str]) -> tuple[tuple[str, str], ...]:
    rank = {r: i for i, r in enumerate(RELATION_ORDER)}
    return tuple(sorted(facts.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0])))


def augment_records(
    pages: Sequence[Any],
    facts: dict[str, dict[str, str]],
    n: int,
    seed: int,
    tokenize: Tokenize,
    max_length: int,
    source: str = "rules",
) -> tuple[list[dict[str, str]], dict[str, int]]:
    """``n`` augmented page records (``text``, ``view`` = aug, ``title``) per page with facts, and counts
    (``pages``, ``records``, ``no_facts``, ``short``: pages given fewer than ``n`` distinct texts)."""
    augmenter = AUGMENTERS[source]
    counts: Counter[str] = Counter()

    def fits(text: str) -> bool:
        return len(tokenize(text)) <= max_length

    records: list[dict[str, str]] = []
    for art in pages:
        known = facts.get(title_key(art.title))
        if not known:
            counts["no_facts"] += 1
            continue
        page = PageFacts(str(art.title), lead_of(art), _ordered(known))
        texts = augmenter(page, n, seed, fits)
        counts["pages"] += 1
        counts["short"] += len(texts) < n
        records.extend({"text": t, "view": VIEW, "title": str(art.title)} for t in texts)
    counts["records"] = len(records)
    if counts["no_facts"]:
        log.info("augment: %d trained pages have no fact row in the question file", counts["no_facts"])
    return records, dict(sorted(counts.items()))
